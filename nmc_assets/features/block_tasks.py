"""The tasks of blockwise feature extraction, one per block of the volume or per mosaic.

Module-level functions over small picklable items (paths, slices, index arrays), so they run on any
Dask worker (:class:`nmc_assets.blockwise.BlockRunner`); each reads its inputs itself with
:func:`nmc_assets.storage.open_zarr` (the caller passes version-pinned paths) or from the scan's scratch
folder (:mod:`nmc_assets.features.crop_store`). Arrays are ``(z, y, x)``; boxes are voxel indices of the
volume, hi exclusive; counts in voxels.

1. :func:`scan_block`: label bounding boxes of the block, and its foreground bits to scratch.
2. :func:`extract_block`: the block's parts of every particle region to scratch, and the block's share of
   the threshold's flat-stride subsample.
3. :func:`measure_chunk`: one mosaic, built from its particles' parts, measured.
4. :func:`density_block`: per particle, the foreground voxels of its p_density window inside the block.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmc_assets.blockwise import Block
from nmc_assets.features.crop_store import PartReader, write_block_parts
from nmc_assets.features.measure import ContactRule, ParticleMeasurements, measure_mosaic
from nmc_assets.features.mosaic import build_mosaic_from_crops
from nmc_assets.features.neighbours import window_counts


@functools.lru_cache(maxsize=8)
def _opened(path: str):
    """The Zarr array at ``path``, opened once per worker process (opening costs ~20 ms; ``path`` is a
    version folder, which never changes once written)."""
    from nmc_assets.storage import open_zarr

    return open_zarr(path)


def read_block(path: str, block: Block) -> np.ndarray:
    """The block's core of the Zarr array at ``path`` (a version folder), C order, native byte order."""
    a = np.asarray(_opened(path)[block.core])
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))


def _lo(block: Block) -> np.ndarray:
    return np.array([s.start for s in block.core], np.int64)


def fg_file(scratch: str, block: Block) -> Path:
    return Path(scratch) / f"fg-{'-'.join(map(str, block.index))}.bin"


# --------------------------------------------------------------------------------------------------
# 1. bounding boxes + foreground bits
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockBoxes:
    """Labels present in a block: ``ids`` (k,) int64 ascending, their boxes ``lo``/``hi`` (k, 3) int64 in
    the volume; ``min_label``: the block's smallest label value (negative labels are an error)."""

    ids: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    min_label: int


def scan_block(block: Block, *, labels_path: str, scratch: str) -> BlockBoxes:
    """Bounding boxes of the labels in ``block``; writes its packed foreground (labels != 0) to scratch."""
    from nmc_assets.features.extract import bounding_boxes

    lab = read_block(labels_path, block)
    fg = lab != 0
    path = fg_file(scratch, block)
    tmp = path.with_name(f".{path.name}.tmp-{os.urandom(4).hex()}")
    tmp.write_bytes(np.packbits(fg).tobytes())
    os.replace(tmp, path)
    lowest = int(lab.min()) if lab.size else 0
    top = int(lab.max()) if lab.size else 0
    if top <= 0 or lowest < 0:
        empty = np.zeros((0, 3), np.int64)
        return BlockBoxes(np.zeros(0, np.int64), empty, empty, lowest)
    ids, lo, hi = bounding_boxes(lab, top)
    off = _lo(block)
    return BlockBoxes(ids, lo + off, hi + off, lowest)


def merge_boxes(parts: list[BlockBoxes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, lo, hi) of the whole volume from every block's boxes: the union of the ids (ascending) and
    per id the min of the ``lo`` and the max of the ``hi`` (exact: a box is a min/max over voxels)."""
    all_ids = np.concatenate([p.ids for p in parts]) if parts else np.zeros(0, np.int64)
    ids, inverse = np.unique(all_ids, return_inverse=True)
    lo = np.full((ids.size, 3), np.iinfo(np.int64).max, np.int64)
    hi = np.zeros((ids.size, 3), np.int64)
    if ids.size:
        np.minimum.at(lo, inverse, np.concatenate([p.lo for p in parts]))
        np.maximum.at(hi, inverse, np.concatenate([p.hi for p in parts]))
    return ids.astype(np.int64), lo, hi


# --------------------------------------------------------------------------------------------------
# 2. crop parts + threshold sample
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtractItem:
    """A block and the particles whose regions reach into it: ``rows`` (k,) row numbers, ``pids`` (k,)
    label values, ``region_lo``/``region_hi`` (k, 3) regions (:func:`~nmc_assets.features.crop_store.crop_regions`)."""

    block: Block
    number: int
    rows: np.ndarray
    pids: np.ndarray
    region_lo: np.ndarray
    region_hi: np.ndarray


@dataclass(frozen=True)
class ExtractResult:
    """``rows`` (k,) and their part table (k, 10); the block's threshold sample: positions ``sample_at``
    (m,) in the subsample, labels ``sample_lab`` and float32 intensities ``sample_val``."""

    rows: np.ndarray
    parts: np.ndarray
    sample_at: np.ndarray
    sample_lab: np.ndarray
    sample_val: np.ndarray


def stride_sample(block: Block, shape, step: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """The voxels of ``block`` whose flat (C-order) index in the volume ``shape`` is a multiple of
    ``step``: their (z, y, x) indices inside the block, and their positions ``flat // step`` in the
    whole volume's subsample ``volume.reshape(-1)[::step]``."""
    (z0, z1), (y0, y1), (x0, x1) = ((s.start, s.stop) for s in block.core)
    ny, nx = int(shape[1]), int(shape[2])
    base = ((np.arange(z0, z1, dtype=np.int64)[:, None] * ny + np.arange(y0, y1, dtype=np.int64)[None, :]) * nx + x0)
    first = (-base) % step  # x offset of each row's first sampled voxel
    per_row = (x1 - x0 + step - 1) // step
    xs = first[:, :, None] + step * np.arange(per_row, dtype=np.int64)
    zi, yi, k = np.nonzero(xs < x1 - x0)
    xi = xs[zi, yi, k]
    return (zi, yi, xi), (base[zi, yi] + xi) // step


def extract_block(item: ExtractItem, *, labels_path: str, image_path: str, scratch: str, shape: tuple,
                  step: int | None) -> ExtractResult:
    """Cut the block's parts of the items' regions to scratch; take its share of the threshold sample
    (``step``: the subsample stride, None = no sample needed)."""
    block = item.block
    lab = read_block(labels_path, block)
    img = read_block(image_path, block)
    parts = write_block_parts(scratch, item.number, _lo(block), lab, img, item.pids, item.region_lo, item.region_hi)
    if step is None:
        at, s_lab, s_val = np.zeros(0, np.int64), lab[:0, 0, 0], np.zeros(0, np.float32)
    else:
        where, at = stride_sample(block, shape, step)
        s_lab, s_val = lab[where], img[where].astype(np.float32)
    return ExtractResult(item.rows, parts, at, s_lab, s_val)


# --------------------------------------------------------------------------------------------------
# 3. measuring one mosaic
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MosaicItem:
    """One mosaic's particles, in mosaic order: crop ``starts``/``sizes`` and regions (k, 3) int64,
    ``touches`` (k,) bool, and ``parts``: per particle its rows of the part tables."""

    starts: np.ndarray
    sizes: np.ndarray
    region_lo: np.ndarray
    region_hi: np.ndarray
    touches: np.ndarray
    parts: list[np.ndarray]


def measure_chunk(item: MosaicItem, *, scratch: str, image_dtype: str, thr: float,
                  contact: ContactRule) -> ParticleMeasurements:
    """:class:`~nmc_assets.features.measure.ParticleMeasurements` of one mosaic, built from scratch."""
    with PartReader(scratch, image_dtype) as reader:
        def crops():
            for k in range(len(item.starts)):
                codes, img = reader.region(item.region_lo[k], item.region_hi[k], item.parts[k])
                yield codes, img, item.starts[k] - item.region_lo[k]

        mosaic = build_mosaic_from_crops(crops(), item.starts, item.sizes)
    return measure_mosaic(mosaic, thr, contact, item.touches)


# --------------------------------------------------------------------------------------------------
# 4. packing density counts
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DensityItem:
    """A block and the particles whose p_density windows (``lo``/``hi`` (k, 3), volume) reach into it."""

    block: Block
    rows: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def density_block(item: DensityItem, *, scratch: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, counts): per particle, int64 foreground voxels of its window inside the block (from the
    block's foreground bits); summed over the blocks these are the whole window's counts."""
    block = item.block
    bits = np.frombuffer(fg_file(scratch, block).read_bytes(), np.uint8)
    fg = np.unpackbits(bits, count=int(np.prod(block.shape))).reshape(block.shape)
    off = _lo(block)
    return item.rows, window_counts(fg, item.lo - off, item.hi - off)
