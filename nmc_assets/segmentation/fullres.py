"""Fused labels at full resolution, block by block: nearest upsampling of the binned labels and the
boundary refinement (:mod:`.refine`), each block read with its halo and written as whole output chunks.

The label ids come from the fusion of the whole binned volume (:mod:`.fusion`), so a particle that
crosses block borders keeps one id; the refinement is exact per block (see :mod:`.refine`), so the
stored labels are the same bytes for any block shape, worker count or Dask cluster. Blocks run
through :class:`nmc_assets.blockwise.BlockRunner` (``runner=None``: one after the other in this
process); at most as many at once as the memory budget allows.

Axes are (z, y, x); shapes, halos and the bin factor in voxels; memory in bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..blockwise import Block, Progress, block_grid, check_halo, workers_within_budget
from .refine import Refinement, refine_block
from .scaling import upsample_region

#: Peak bytes per voxel of a block read with its halo: upsampled labels (4), smoothed intensity (4),
#: intensity as read (1-4), voxel classes and distances (4), flood labels, costs and fronts (~10).
REFINE_BYTES_PER_VOXEL = 27
#: The same without refinement: the upsampled labels and the chunk being written.
UPSAMPLE_BYTES_PER_VOXEL = 8
#: Default block core in output chunks (z, y, x): 128 x 512 x 512 voxels with 128-voxel chunks.
DEFAULT_BLOCK_CHUNKS = (1, 4, 4)


@dataclass(frozen=True)
class FullResJob:
    """What every block needs (picklable: paths, small arrays): the output Zarr path being written,
    the bin factor and full shape, and for the refinement the intensity (Zarr array or path), the
    settings and the keep table (:func:`nmc_assets.segmentation.refine.keep_table`)."""

    out: str
    factor: int
    full_shape: tuple[int, ...]
    intensity: Any = None
    refinement: Refinement | None = None
    keep: np.ndarray | None = None


def binned_window(block: Block, factor: int, refine: bool) -> tuple[slice, ...]:
    """Binned voxels a block's upsampled region covers (its outer region when refining, else its core)."""
    region = block.outer if refine else block.core
    return tuple(slice(s.start // factor, -(-s.stop // factor)) for s in region)


def label_block(item: tuple[Block, np.ndarray], *, job: FullResJob) -> tuple[int, int, np.ndarray]:
    """Upsample (and refine) one block and write its core into ``job.out``; returns the labelled voxel
    counts of the core before and after the refinement and the core's voxels per label value
    (``bincount``). ``item``: the block and its binned window."""
    import zarr

    from ..storage import open_zarr

    block, window = item
    refine = job.refinement is not None
    region = block.outer if refine else block.core
    start = tuple(s.start // job.factor * job.factor for s in region)
    local = tuple(slice(s.start - a, s.stop - a) for s, a in zip(region, start))
    labels = upsample_region(window, job.factor, local).astype(np.uint32, copy=False)
    before = labels[block.core_in_outer] if refine else labels
    if refine:
        src = open_zarr(job.intensity) if isinstance(job.intensity, (str, os.PathLike)) else job.intensity
        refined = refine_block(labels, np.asarray(src[block.outer]), job.refinement, job.keep)
        after = refined[block.core_in_outer]
    else:
        after = labels
    zarr.open_array(job.out, mode="r+")[block.core] = after
    return int(np.count_nonzero(before)), int(np.count_nonzero(after)), np.bincount(after.ravel())


def block_shape_for(full_shape: tuple[int, ...], chunks: tuple[int, ...], block_chunks: tuple[int, ...] = DEFAULT_BLOCK_CHUNKS) -> tuple[int, ...]:
    """Block core shape: ``block_chunks`` output chunks per axis, clipped to the scan."""
    return tuple(min(s, c * n) for s, c, n in zip(full_shape, chunks, block_chunks))


def block_bytes(block_shape: tuple[int, ...], halo: int, refine: bool) -> int:
    """Peak bytes of one block in flight (core + halo on each side)."""
    voxels = int(np.prod([b + 2 * halo for b in block_shape]))
    return voxels * (REFINE_BYTES_PER_VOXEL if refine else UPSAMPLE_BYTES_PER_VOXEL)


def write_full_resolution(
    binned: np.ndarray,
    factor: int,
    full_shape: tuple[int, ...],
    out_path: str | os.PathLike,
    attrs: dict,
    *,
    intensity: Any = None,
    refinement: Refinement | None = None,
    keep: np.ndarray | None = None,
    source_name: str = "intensity",
    block_shape: tuple[int, ...] | None = None,
    chunks: tuple[int, ...] | None = None,
    runner=None,
    progress: Progress | None = None,
    memory_budget: int | None = None,
    scan: str = "",
    voxel_um: float = 1.0,
    source_image: str | None = None,
) -> dict:
    """Write the binned (z, y, x) labels at ``full_shape`` (uint32 OME-Zarr label image at ``out_path``,
    atomic; voxel edge ``voxel_um`` in um, the label image's ``source_image`` relative to it; a nearest
    pyramid is computed from level 0 after the blocks),
    refined against ``intensity`` when ``refinement`` is given. ``block_shape``: block cores in voxels,
    whole output ``chunks`` (default :data:`DEFAULT_BLOCK_CHUNKS` of ``default_chunks(full_shape)``);
    results do not depend on either.
    ``memory_budget`` (bytes; None = no limit) caps the blocks in flight and raises
    :class:`nmc_assets.blockwise.MemoryBudgetError` when even one block does not fit.
    Returns the block count, the labelled voxel counts before / after the refinement and the pyramid's
    levels and seconds.
    """
    from ..ngff import ImageWriter
    from ..storage import atomic_path, default_chunks

    full_shape = tuple(int(s) for s in full_shape)
    refine = refinement is not None
    if refine and tuple(intensity.shape) != full_shape:
        raise ValueError(f"{source_name}: shape {tuple(intensity.shape)} differs from the labels' full shape {full_shape}")
    halo = refinement.halo if refine else 0
    if refine:
        check_halo(full_shape, halo, source_name)
    chunks = tuple(chunks or default_chunks(full_shape))
    block_shape = tuple(block_shape or block_shape_for(full_shape, chunks))
    if any(b % c and b < s for b, c, s in zip(block_shape, chunks, full_shape)):
        raise ValueError(f"block shape {block_shape} is not a whole number of output chunks {chunks}")
    blocks = block_grid(full_shape, block_shape, halo)
    items = [(b, binned[binned_window(b, factor, refine)]) for b in blocks]
    workers = getattr(runner, "workers", 1) if runner is not None else 1
    in_flight = workers_within_budget(scan=scan or source_name, step="fused_labels", budget=memory_budget or 2**62,
                                      fixed=int(binned.nbytes) + sum(w.nbytes for _, w in items),
                                      per_worker=block_bytes(block_shape, halo, refine), workers=workers)
    if progress is not None:
        progress.total = len(blocks)
    with atomic_path(out_path) as tmp:
        image = ImageWriter(tmp, full_shape, "uint32", chunks, voxel_um, labels=True, name=scan or Path(out_path).name)
        job = FullResJob(image.level_path(0), int(factor), full_shape, intensity, refinement, keep)
        if runner is None:
            counts = []
            for item in items:
                counts.append(label_block(item, job=job))
                if progress is not None:
                    progress.advance()
        else:
            counts = runner.map(label_block, items, progress=progress, max_in_flight=in_flight, job=job)
        n_labels = int(binned.max()) if binned.size else 0
        voxels = np.zeros(n_labels + 1, np.int64)
        for c in counts:
            voxels[: len(c[2])] += c[2]
        image.finish(attrs, source_image=source_image, n_labels=n_labels, label_voxels=voxels, workers=workers)
    before, after = (sum(c[i] for c in counts) for i in (0, 1))
    return {"blocks": len(blocks), "block_shape": list(block_shape), "halo": halo, "blocks_in_flight": in_flight,
            "labelled_before": before, "labelled_after": after, "path": str(Path(out_path)),
            "pyramid_levels": len(image.arrays), "pyramid_seconds": round(image.pyramid_seconds, 3)}
