"""Streaming a drop-folder scan into ``warehouse/tomograms/<scan>.zarr`` with bounded memory.

The volume file is read in slabs of planes (TIFF pages, HDF5 slices); each slab is validated (non-finite
values, float32 range), moved to tomogram axes (thickness first) and written to the Zarr store, while
the file's SHA-256 is computed in a second thread and the intensity statistics are accumulated. Peak
memory is a few slabs, whatever the scan size.

Stored dtype: 8- and 16-bit integers and float32 are kept as they are (1-2 bytes per voxel for beamline
scans); other dtypes become float32 as before. Grey values are never rescaled: the normalisation that
segmentation uses lives in the ``percentiles`` attribute. Percentiles are exact for 8/16-bit integer
scans (from the full histogram) and for any scan up to 2**24 voxels; larger float scans use a regular
stride of the file's voxels (the same sample as :func:`~nmc_assets.ingest.readers.intensity_percentiles`).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nmc_assets.ingest.errors import ScanError
from nmc_assets.ingest.formats import VolumeReader
from nmc_assets.ngff import PYRAMID_MIN_SIDE
from nmc_assets.ingest.readers import PERCENTILES, _AXIS_INDEX, _source_meta, check_scan_header, tomogram_attrs

#: Source dtypes stored as they are; anything else is stored as float32.
KEPT_DTYPES = ("uint8", "uint16", "int8", "int16", "float32")
#: Chunk shape of stored tomograms (z, y, x), clipped to the volume: whole-plane slabs and 3D blocks
#: both read a handful of chunks.
TOMOGRAM_CHUNKS = (64, 256, 256)
#: Sample size for percentiles of float scans (same as ``intensity_percentiles``).
MAX_PERCENTILE_SAMPLES = 1 << 24


def stored_dtype(source: np.dtype) -> np.dtype:
    """The dtype a tomogram is stored in for a given source dtype (see the module docstring)."""
    return np.dtype(source) if np.dtype(source).name in KEPT_DTYPES else np.dtype(np.float32)


def tomogram_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(min(c, s) for c, s in zip(TOMOGRAM_CHUNKS, shape))


def percentiles_from_histogram(counts: np.ndarray, offset: int) -> dict[str, float]:
    """``np.percentile`` (linear) of integer data given its histogram: ``counts[k]`` voxels of value ``offset + k``."""
    cum = np.cumsum(counts, dtype=np.int64)
    n = int(cum[-1])
    out = {}
    for key in PERCENTILES:
        pos = (n - 1) * (float(key) / 100.0)
        lo_rank, hi_rank = math.floor(pos), math.ceil(pos)
        a = float(np.searchsorted(cum, lo_rank, side="right") + offset)
        b = float(np.searchsorted(cum, hi_rank, side="right") + offset)
        t = pos - lo_rank
        # numpy's _lerp: a + (b - a) t, computed from the nearer end
        out[key] = float(b - (b - a) * (1 - t)) if t >= 0.5 else float(a + (b - a) * t)
    return out


class _Statistics:
    """Running min/max, non-finite counts and the percentile sample over slabs in file order."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        self.size = int(np.prod(shape))
        self.histogram = self.dtype.kind in "ui" and self.dtype.itemsize <= 2
        if self.histogram:
            info = np.iinfo(self.dtype)
            self.offset = int(info.min)
            self.counts = np.zeros(int(info.max) - int(info.min) + 1, np.int64)
        self.step = max(1, math.ceil(self.size / MAX_PERCENTILE_SAMPLES))
        self.sample: list[np.ndarray] = []
        self.seen = 0
        self.lo = self.hi = None
        self.n_nan = self.n_inf = 0

    def add(self, slab: np.ndarray) -> None:
        if self.dtype.kind == "f":
            self.n_nan += int(np.count_nonzero(np.isnan(slab)))
            self.n_inf += int(np.count_nonzero(np.isinf(slab)))
        if not (self.n_nan or self.n_inf):
            lo, hi = slab.min(), slab.max()
            self.lo = lo if self.lo is None else min(self.lo, lo)
            self.hi = hi if self.hi is None else max(self.hi, hi)
        flat = slab.reshape(-1)
        if self.histogram:
            # signed 8/16-bit values as unsigned with the sign bit flipped: same order, no wide copy
            codes = flat.view(np.dtype(f"u{self.dtype.itemsize}")) ^ np.uint16(1 << (8 * self.dtype.itemsize - 1)).astype(
                f"u{self.dtype.itemsize}") if self.dtype.kind == "i" else flat
            self.counts += np.bincount(codes, minlength=self.counts.size)
        else:
            first = (-self.seen) % self.step  # global flat indices that are multiples of the step
            self.sample.append(flat[first :: self.step].astype(np.float32))
        self.seen += flat.size

    def percentiles(self) -> dict[str, float]:
        if self.histogram:
            return percentiles_from_histogram(self.counts, self.offset)
        values = np.percentile(np.concatenate(self.sample), [float(p) for p in PERCENTILES])
        return {k: float(v) for k, v in zip(PERCENTILES, values)}


def _hash_in_thread(path: Path) -> tuple[threading.Thread, dict[str, Any]]:
    from nmc_assets.storage import sha256_file

    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["sha256"] = sha256_file(path)
        except OSError as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, name=f"sha256 {path.name}", daemon=True)
    thread.start()
    return thread, result


def write_tomogram(
    scan_id: str,
    incoming_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    slab: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    pyramid_min_side: int | None = PYRAMID_MIN_SIDE,
) -> tuple[dict[str, Any], list[str]]:
    """Validate one scan of the drop folder and stream it into an OME-Zarr tomogram at ``out_path`` (atomic).

    ``slab``: planes of the file read at a time (default: the chunk edge along the axis they map to).
    ``progress(done_planes, total_planes)`` is called after each slab. The pyramid's level 1 (mean of
    2x2x2 cells) is written from the slabs in memory when they are an even number of planes; the
    coarser levels from it (:mod:`nmc_assets.ngff`; ``pyramid_min_side=None``: level 0 only).
    Returns ``(attrs, warnings)``: the attributes written on the image and its level 0
    (:func:`~nmc_assets.ingest.readers.tomogram_attrs`) and the warnings. Raises :class:`ScanError`
    naming the file and the problem; nothing is written then.
    """
    from nmc_assets.ngff import ImageWriter
    from nmc_assets.storage import atomic_path

    files, sidecar, header_shape, dtype, warnings = check_scan_header(scan_id, incoming_dir)
    path = files.volume
    axis = _AXIS_INDEX[sidecar["thickness_axis"]]
    out_dtype = stored_dtype(dtype)
    hasher, digest = _hash_in_thread(path)
    stats = _Statistics(header_shape, dtype)
    with VolumeReader(path) as reader, atomic_path(out_path) as tmp:
        warnings += reader.warnings
        shape = tuple(int(s) for s in header_shape)
        moved = (shape[axis],) + tuple(s for i, s in enumerate(shape) if i != axis)
        chunks = tomogram_chunks(moved)
        # file z maps to tomogram axis 0 (thickness z) or 1 (thickness y / x)
        step = int(slab or chunks[0 if axis == 0 else 1])
        image = ImageWriter(tmp, moved, out_dtype, chunks, float(sidecar["voxel_size_um"]), min_side=pyramid_min_side,
                            name=scan_id)
        store = image.level0
        stream_level1 = step % 2 == 0
        for z0 in range(0, shape[0], step):
            z1 = min(shape[0], z0 + step)
            data = reader.read(z0, z1)
            stats.add(data)
            if stats.n_nan or stats.n_inf:
                continue  # finish counting, then fail with the totals
            block = data.astype(out_dtype, copy=False)
            if out_dtype.kind == "f" and data.dtype != out_dtype and not np.isfinite(block).all():
                raise ScanError(path, "values overflow float32 (magnitude above 3.4e38)")
            region = (slice(z0, z1), slice(None), slice(None)) if axis == 0 else (slice(None), slice(z0, z1), slice(None))
            block = block if axis == 0 else np.moveaxis(block, axis, 0)
            store[region] = block
            if stream_level1:
                image.write_level1(tuple(slice(r.start or 0, moved[i] if r.stop is None else r.stop)
                                         for i, r in enumerate(region)), block)
            if progress is not None:
                progress(z1, shape[0])
        if stats.n_nan or stats.n_inf:
            raise ScanError(path, f"volume has non-finite values: {stats.n_nan} NaN and {stats.n_inf} Inf "
                                  f"of {stats.size} voxels")
        if stats.lo == stats.hi:
            raise ScanError(path, f"volume is constant (every voxel is {stats.lo.item()!r})")
        if dtype.kind in "ui" and dtype.itemsize > 2 and int(stats.hi) > 2**24:
            warnings.append(f"{dtype} values above 2**24 lose precision as float32")
        hasher.join()
        if "error" in digest:
            raise ScanError(path, f"cannot read the file to checksum it ({digest['error']})")
        meta = _source_meta(scan_id, files, sidecar, shape, dtype, digest["sha256"])
        attrs = tomogram_attrs(meta, store, warnings, stats.percentiles())
        image.finish(attrs)
    return attrs, warnings
