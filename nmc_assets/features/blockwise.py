"""Per-particle features of a scan stored as Zarr, block by block: bounded memory, parallel, exact.

:func:`compute_particle_features_zarr` gives the table :func:`~nmc_assets.features.compute_particle_features`
gives for the same volumes read whole, value for value, while holding only blocks, crops and mosaics in
memory. The blocks run on Dask through :class:`~nmc_assets.blockwise.BlockRunner` (the local machine's
cores by default, or a Dask cluster), in four passes (tasks: :mod:`nmc_assets.features.block_tasks`):

1. labels, block by block: each label's bounding box (merged exactly: min / max over blocks), and the
   foreground bits to the scratch folder;
2. labels + tomogram, block by block: every particle's crop region cut into its parts per block, to the
   scratch folder (:mod:`nmc_assets.features.crop_store`), and the same flat-stride subsample
   :func:`~nmc_assets.features.threshold.estimate_solid_threshold` takes from the whole volume (each
   block contributes its voxels whose flat index is a multiple of the stride), so the threshold is equal;
3. one task per mosaic: the particles are packed into exactly the mosaics of the in-memory path
   (:func:`~nmc_assets.features.measure.mosaic_chunks`, a function of the crop sizes alone), each built
   from its particles' parts and measured by the same code;
4. foreground bits, block by block: each particle's p_density window count is the sum of its counts in
   the blocks (integers, so exact); then the same neighbour statistics and derived columns.

Axes ``(z, y, x)``; shapes and boxes in voxels; memory in bytes. The scratch folder (next to the label
store unless ``scratch_dir`` is given; it must be visible to every Dask worker) holds about 1/8 byte per
voxel of foreground bits plus each particle's region (1 byte of codes, compressed, and the tomogram's
bytes per voxel) and is removed at the end.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nmc_assets.blockwise import (
    Block,
    BlockRunner,
    Progress,
    block_grid,
    default_memory_budget,
    gib,
    parse_bytes,
    workers_within_budget,
)
from nmc_assets.features import block_tasks as tasks
from nmc_assets.features.crop_store import crop_regions
from nmc_assets.features.extract import FeatureSettings, density_windows, empty_features_frame, feature_frame
from nmc_assets.features.measure import ContactRule, crop_boxes, gather_chunks, mosaic_chunks
from nmc_assets.features.neighbours import packing_density
from nmc_assets.features.threshold import IntensityLevels, levels_from_sample, sample_step

#: Blocks hold about this many voxels (aligned to the stores' chunks; see :func:`io_block_shape`).
BLOCK_VOXELS = 2**23
#: Peak bytes per mosaic voxel while a mosaic is measured (masks, intensity, smoothed copies, erosion).
MOSAIC_BYTES_PER_VOXEL = 40
#: Client-side bytes per particle (boxes, part index, measurements, the table).
BYTES_PER_PARTICLE = 2048


@dataclass(frozen=True)
class ZarrFeatures:
    """Result of :func:`compute_particle_features_zarr`: the feature ``table`` (as
    :func:`~nmc_assets.features.compute_particle_features`), the ``solid_threshold`` used (intensity
    units; NaN when the scan has no particle and none was given), and the ``blocks`` / ``mosaics`` run."""

    table: pd.DataFrame
    solid_threshold: float
    blocks: int
    mosaics: int


def io_block_shape(shape: Sequence[int], *chunk_shapes: Sequence[int], target_voxels: int = BLOCK_VOXELS
                   ) -> tuple[int, int, int]:
    """A block shape aligned to every store's chunks (per axis their least common multiple, or the
    largest chunk when that is more than 4x it), doubled along the shortest axis up to ``target_voxels``
    and clipped to ``shape``, so each block reads every chunk it touches once."""
    unit = []
    for ax in range(3):
        sizes = [int(c[ax]) for c in chunk_shapes] or [64]
        lcm = math.lcm(*sizes)
        unit.append(lcm if lcm <= 4 * max(sizes) else max(sizes))
    mult = [1, 1, 1]

    def block() -> list[int]:
        return [min(int(s), u * m) for s, u, m in zip(shape, unit, mult)]

    while True:
        b = block()
        growable = [ax for ax in range(3) if b[ax] < shape[ax]]
        if not growable:
            break
        ax = min(growable, key=lambda a: b[a])
        mult[ax] *= 2
        if math.prod(block()) > target_voxels:
            mult[ax] //= 2
            break
    return tuple(block())


def compute_particle_features_zarr(
    labels_path: str | os.PathLike, tomogram_path: str | os.PathLike, voxel_size_um: float, *, scan_id: str,
    cycles: int | None, local_window_um: float = 20.0, solid_threshold: float | None = None,
    settings: FeatureSettings | None = None, runner: BlockRunner | None = None,
    progress: Callable[[str], None] | None = None, memory_budget: int | str | None = None,
    block_shape: Sequence[int] | None = None, scratch_dir: str | os.PathLike | None = None,
) -> ZarrFeatures:
    """The feature table of the (z, y, x) label and tomogram Zarr arrays at ``labels_path`` /
    ``tomogram_path`` (each pinned to its current version), equal to
    :func:`~nmc_assets.features.compute_particle_features` on the same arrays read whole.

    ``voxel_size_um``: isotropic voxel edge (um); ``local_window_um``: p_density cube side (um);
    ``solid_threshold``: intensity units, default estimated as in memory. ``runner``: where blocks run
    (default: a local Dask cluster on every core; one already entered is reused). ``progress``: receives
    "done/total, elapsed, ETA" messages per pass. ``memory_budget``: bytes (or "6GiB") for the step,
    default :func:`~nmc_assets.blockwise.default_memory_budget`; it caps the blocks in flight, and a
    :class:`~nmc_assets.blockwise.MemoryBudgetError` (naming scan, pass and bytes) is raised before a
    pass starts when not even one task fits. ``block_shape``: voxels per block (default
    :func:`io_block_shape`); ``scratch_dir``: where the scratch folder is made (default: next to the labels).
    """
    from nmc_assets.storage import open_zarr, resolve_version

    settings = settings or FeatureSettings()
    if settings.feature_set != "default":
        raise ValueError(f"feature_set {settings.feature_set!r} is computed on whole volumes "
                         "(compute_particle_features), not block by block")
    v = float(voxel_size_um)
    labels_at, image_at = str(resolve_version(labels_path)), str(resolve_version(tomogram_path))
    lz, iz = open_zarr(labels_at), open_zarr(image_at)
    shape = tuple(int(s) for s in lz.shape)
    _validate(shape, tuple(iz.shape), np.dtype(lz.dtype), v, labels_path, tomogram_path)
    l_dtype, i_dtype = (np.dtype(d).newbyteorder("=") for d in (lz.dtype, iz.dtype))
    blocks = block_grid(shape, tuple(block_shape) if block_shape else io_block_shape(shape, lz.chunks, iz.chunks))
    budget = parse_bytes(memory_budget) if memory_budget is not None else default_memory_budget()
    n_vox = math.prod(shape)
    bv = max(math.prod(b.shape) for b in blocks)
    step = sample_step(n_vox)  # the intensity levels (solid threshold, contact level) come from this sample
    sample_bytes = -(-n_vox // step) * (2 * (l_dtype.itemsize + 4) + 8)
    report = progress or (lambda message: None)
    run = runner or BlockRunner()
    plan = _Plan(scan_id, budget, run, report)
    scan_task = bv * (2 * l_dtype.itemsize + 14)
    plan.in_flight("bounding boxes", 0, scan_task)  # fail before starting anything when even that cannot fit

    with _entered(run), _scratch(labels_path, scratch_dir) as scratch:
        report(f"particle_features {scan_id}: {'x'.join(map(str, shape))} voxels in {len(blocks)} blocks of "
               f"{'x'.join(map(str, blocks[0].shape))} on {run.where}, memory budget {gib(budget)}")

        # 1. bounding boxes, foreground bits
        boxes = plan.map("bounding boxes", tasks.scan_block, blocks, fixed=0, per_task=scan_task,
                         labels_path=labels_at, scratch=scratch)
        if min((b.min_label for b in boxes), default=0) < 0:
            raise ValueError(f"{labels_path}: labels must be non-negative (0 = background)")
        ids, box_lo, box_hi = tasks.merge_boxes(boxes)
        if ids.size == 0:
            return ZarrFeatures(empty_features_frame(), float("nan") if solid_threshold is None else
                                float(solid_threshold), len(blocks), 0)
        n = ids.size
        fixed = n * BYTES_PER_PARTICLE

        # 2. crop parts, threshold sample
        margin = ContactRule(settings.contact_gap_vox, settings.contact_window_vox(v)).margin
        starts, sizes, touches = crop_boxes(box_lo, box_hi, shape, margin)
        r_lo, r_hi = crop_regions(starts, sizes, shape)
        items = []
        for number, block in enumerate(blocks):
            rows = _reaching(block, r_lo, r_hi)
            items.append(tasks.ExtractItem(block, number, rows, ids[rows], r_lo[rows], r_hi[rows]))
        region = int(np.prod(r_hi - r_lo, axis=1).max())
        rows_per_block = max(b.shape[0] * b.shape[1] for b in blocks)
        per_task = (bv * (l_dtype.itemsize + i_dtype.itemsize) + region * (24 + 2 * i_dtype.itemsize)
                    + (bv // step + rows_per_block) * 26)
        extracted = plan.map("crop parts", tasks.extract_block, items, fixed=fixed + sample_bytes, per_task=per_task,
                             labels_path=labels_at, image_path=image_at, scratch=scratch, shape=shape, step=step)
        levels = _levels(extracted, n_vox, step, l_dtype)
        thr = float(levels.solid_threshold if solid_threshold is None else solid_threshold)
        contact = settings.contact_rule(v, levels, thr)
        part_rows = np.concatenate([e.rows for e in extracted])
        part_table = np.concatenate([e.parts for e in extracted])
        order = np.argsort(part_rows, kind="stable")
        parts_of = np.split(part_table[order], np.searchsorted(part_rows[order], np.arange(1, n)))
        del extracted, part_table

        # 3. mosaics
        chunks = mosaic_chunks(sizes)
        mosaics = [tasks.MosaicItem(starts[c], sizes[c], r_lo[c], r_hi[c], touches[c], [parts_of[r] for r in c])
                   for c in chunks]
        mosaic_vox = max(_mosaic_voxels(sizes[c]) for c in chunks)
        per_task = mosaic_vox * MOSAIC_BYTES_PER_VOXEL + region * (9 + i_dtype.itemsize)
        measured = plan.map("mosaics", tasks.measure_chunk, mosaics, fixed=fixed, per_task=per_task, unit="mosaics",
                            scratch=scratch, image_dtype=i_dtype.str, thr=thr, contact=contact)
        m = gather_chunks(measured, chunks)
        del measured, mosaics, parts_of

        # 4. packing density
        w_lo, w_hi = density_windows(m, v, local_window_um, shape)
        items = []
        for block in blocks:
            rows = _reaching(block, w_lo, w_hi)
            items.append(tasks.DensityItem(block, rows, w_lo[rows], w_hi[rows]))
        counts = np.zeros(n, np.int64)
        sat_bytes = 8 if bv >= 2**31 else 4
        for rows, c in plan.map("packing density", tasks.density_block, items, fixed=fixed,
                                per_task=bv * (1 + sat_bytes) + bv // 8 + 64, scratch=scratch):
            counts[rows] += c
        table = feature_frame(ids, m, packing_density(counts, w_lo, w_hi), v, scan_id=scan_id, cycles=cycles)
    return ZarrFeatures(table, thr, len(blocks), len(chunks))


def _validate(shape: tuple, image_shape: tuple, dtype: np.dtype, v: float, labels_path, tomogram_path) -> None:
    if len(shape) != 3:
        raise ValueError(f"{labels_path}: labels must be a 3D (z, y, x) array, got shape {shape}")
    if image_shape != shape:
        raise ValueError(f"labels {labels_path} have shape {shape}, tomogram {tomogram_path} has {image_shape}")
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"{labels_path}: labels must be integers, got dtype {dtype}")
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"voxel_size_um must be a positive number, got {v!r}")


def _reaching(block: Block, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Rows of the (n, 3) boxes ``lo : hi`` that overlap the block's core (non-empty boxes only)."""
    b_lo = np.array([s.start for s in block.core])
    b_hi = np.array([s.stop for s in block.core])
    return np.flatnonzero(np.all((lo < b_hi) & (hi > b_lo) & (hi > lo), axis=1))


def _mosaic_voxels(sizes: np.ndarray) -> int:
    """Voxels of the mosaic of crops of (k, 3) ``sizes`` (see :mod:`~nmc_assets.features.mosaic`)."""
    from nmc_assets.features.mosaic import TILE_PAD

    pad = 2 * TILE_PAD
    return int((sizes[:, 0] + pad).sum() * (sizes[:, 1].max() + pad) * (sizes[:, 2].max() + pad))


def _levels(extracted: list[tasks.ExtractResult], n_vox: int, step: int, l_dtype: np.dtype) -> IntensityLevels:
    """The intensity levels from the blocks' shares of the flat-stride subsample, put back in flat order."""
    m = -(-n_vox // step)
    lab = np.empty(m, l_dtype)
    val = np.empty(m, np.float32)
    seen = 0
    for e in extracted:
        lab[e.sample_at] = e.sample_lab
        val[e.sample_at] = e.sample_val
        seen += e.sample_at.size
    if seen != m:
        raise RuntimeError(f"threshold subsample: the blocks gave {seen} of {m} voxels")
    return levels_from_sample(lab, val)


class _Plan:
    """Runs one pass after checking its memory: ``fixed`` + ``per_task`` bytes per task in flight."""

    def __init__(self, scan_id: str, budget: int, runner: BlockRunner, report: Callable[[str], None]):
        self.scan_id, self.budget, self.runner, self.report = scan_id, budget, runner, report

    def in_flight(self, what: str, fixed: int, per_task: int) -> int:
        """Tasks of the pass ``what`` that fit at once (:class:`~nmc_assets.blockwise.MemoryBudgetError` if none)."""
        return workers_within_budget(scan=self.scan_id, step=f"particle_features ({what})", budget=self.budget,
                                     fixed=int(fixed), per_worker=int(per_task), workers=self.runner.workers)

    def map(self, what: str, func, items: list, *, fixed: int, per_task: int, unit: str = "blocks", **kwargs) -> list:
        in_flight = self.in_flight(what, fixed, per_task)
        if self.runner.scheduler is None and in_flight >= self.runner.workers:
            # every local thread may be busy: queue as many again, so no thread waits for the next block
            in_flight *= 2
        progress = Progress(f"particle_features {self.scan_id}: {what}", len(items), self.report, unit=unit)
        return self.runner.map(func, items, progress=progress, max_in_flight=in_flight, **kwargs)


@contextlib.contextmanager
def _entered(runner: BlockRunner) -> Iterator[BlockRunner]:
    """``runner`` entered for the duration; one the caller entered already is left as it is."""
    if getattr(runner, "_client", None) is not None:
        yield runner
    else:
        with runner:
            yield runner


@contextlib.contextmanager
def _scratch(labels_path: str | os.PathLike, scratch_dir: str | os.PathLike | None) -> Iterator[str]:
    """A fresh scratch folder, removed afterwards: in ``scratch_dir``, else next to the label store as
    ``.<name>.features.tmp-<id>`` (swept by :func:`~nmc_assets.storage.remove_stale_temporaries` if a
    killed run leaves it)."""
    labels_path = Path(labels_path)
    parent = Path(scratch_dir) if scratch_dir is not None else labels_path.parent
    path = parent / f".{labels_path.name}.features.tmp-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    try:
        yield str(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)
