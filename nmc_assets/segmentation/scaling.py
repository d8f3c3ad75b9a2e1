"""Pixel scale: the model works at a fixed pixel size; scans are binned to it and labels upsampled back.

Particles are 5-12 um across. The default model works at ``DEFAULT_WORKING_PIXEL_UM`` = 0.4 um, where
they are 12-30 px across (median 20): enough for 32 rays, and 8x fewer voxels than 0.2 um scans, which
is what makes three-view prediction of a full scan fast on a CPU. The bin factor of a scan is the
integer closest to working / voxel size (0.2 um -> 2, 0.1 um -> 4, 0.07 um -> 6).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np

DEFAULT_WORKING_PIXEL_UM = 0.4


def bin_factor_for(voxel_size_um: float, working_pixel_um: float = DEFAULT_WORKING_PIXEL_UM) -> int:
    """Integer bin factor that brings ``voxel_size_um`` closest to ``working_pixel_um`` (>= 1)."""
    if not voxel_size_um or voxel_size_um <= 0:
        raise ValueError(f"voxel_size_um must be > 0, got {voxel_size_um!r}")
    return max(1, int(round(working_pixel_um / voxel_size_um)))


def binned_shape(shape: tuple[int, ...], factor: int) -> tuple[int, ...]:
    """Shape after block binning (partial blocks at the end are kept)."""
    return tuple(-(-s // factor) for s in shape)


def bin_mean(volume: np.ndarray, factor: int) -> np.ndarray:
    """Block-mean binning of a 2D/3D array by ``factor`` along every axis (float32).

    The array is padded by edge replication to a multiple of ``factor`` first.
    """
    vol = np.asarray(volume, dtype=np.float32)
    if factor == 1:
        return vol
    pad = [(0, (-s) % factor) for s in vol.shape]
    if any(p[1] for p in pad):
        vol = np.pad(vol, pad, mode="edge")
    new = []
    for s in vol.shape:
        new += [s // factor, factor]
    return vol.reshape(new).mean(axis=tuple(range(1, 2 * vol.ndim, 2)), dtype=np.float32)


def bin_volume_slabwise(source, factor: int, normalize: tuple[float, float] | None = None, *, runner=None, progress=None) -> np.ndarray:
    """Bin a (z, y, x) array-like (numpy, lazy Zarr array or the path of a stored Zarr array) to
    float32 by ``factor`` (voxels) per axis; peak memory ~ one slab of source chunks + the result.

    ``normalize=(lo, hi)`` maps intensities to ``(v - lo) / (hi - lo)`` (float32) on the fly. The scan
    is read in z segments of whole source chunks and bins (:func:`bin_segments`), each chunk once;
    ``runner`` (:class:`nmc_assets.blockwise.BlockRunner`) bins the segments in parallel, ``progress``
    (:class:`nmc_assets.blockwise.Progress`) counts them. Every bin is the mean of the same float32
    values in the same order whatever the segments, so the result does not depend on them.
    """
    from ..storage import open_zarr

    src = open_zarr(source) if isinstance(source, (str, os.PathLike)) else source
    segments = bin_segments(tuple(src.shape), factor, _chunk_depth(src))
    if progress is not None:
        progress.total = len(segments)
    if runner is None:
        parts = []
        for seg in segments:
            parts.append(bin_segment(seg, source=src, factor=factor, normalize=normalize))
            if progress is not None:
                progress.advance()
    else:
        # a Zarr array pickles as its (version-pinned) path: every segment reads the same version
        parts = runner.map(bin_segment, segments, progress=progress, source=src, factor=factor, normalize=normalize)
    return np.concatenate(parts, axis=0)


def _chunk_depth(source) -> int:
    chunks = getattr(source, "chunks", None)
    return int(chunks[0]) if chunks else 64


def bin_segments(shape: tuple[int, ...], factor: int, chunk_depth: int, min_depth: int = 64) -> list[slice]:
    """z ranges (full-resolution voxels) that start on both a chunk and a bin boundary (multiples of
    ``lcm(factor, chunk_depth)``, at least ``min_depth`` deep) and tile ``range(shape[0])``."""
    step = math.lcm(int(factor), int(chunk_depth))
    step *= max(1, -(-min_depth // step))
    return [slice(z0, min(shape[0], z0 + step)) for z0 in range(0, shape[0], step)]


def bin_segment(segment: slice, *, source, factor: int, normalize: tuple[float, float] | None) -> np.ndarray:
    """The binned planes of one z ``segment`` (see :func:`bin_segments`) of ``source`` (array or
    Zarr path): reads whole chunk slabs, bins each run of ``factor`` planes as :func:`bin_mean`."""
    from ..storage import open_zarr

    src = open_zarr(source) if isinstance(source, (str, os.PathLike)) else source
    depth, end = _chunk_depth(src), segment.stop
    out = np.empty((-(-(end - segment.start) // factor), *binned_shape(tuple(src.shape[1:]), factor)), np.float32)
    carry, i = None, 0
    for z0 in range(segment.start, end, depth):
        slab = np.asarray(src[z0 : min(end, z0 + depth)])
        if carry is not None:
            slab = np.concatenate([carry, slab])
        whole = slab.shape[0] - slab.shape[0] % factor if min(end, z0 + depth) < end else slab.shape[0]
        for a in range(0, whole, factor):
            out[i] = _bin_planes(slab[a : a + factor], factor, normalize)
            i += 1
        carry = slab[whole:] if whole < slab.shape[0] else None
    return out


def _bin_planes(planes: np.ndarray, factor: int, normalize: tuple[float, float] | None) -> np.ndarray:
    """One binned plane from up to ``factor`` source planes (a short last run is edge-replicated)."""
    slab = np.asarray(planes, dtype=np.float32)
    if normalize is not None:
        lo, hi = normalize
        slab = (slab - lo) / max(hi - lo, 1e-12)
    if slab.shape[0] < factor:  # last partial slab: replicate edge
        slab = np.concatenate([slab, np.repeat(slab[-1:], factor - slab.shape[0], 0)])
    return bin_mean(slab, factor)[0]


def bin_labels_mode(labels: np.ndarray, factor: int) -> np.ndarray:
    """Downsample a label image by blocks of ``factor``: a block is foreground when most of it is;
    it takes the id of its centre voxel (or, when that is background, the largest id in the block)."""
    labels = np.asarray(labels)
    if factor == 1:
        return labels
    pad = [(0, (-s) % factor) for s in labels.shape]
    lab = np.pad(labels, pad, mode="edge") if any(p[1] for p in pad) else labels
    fg = bin_mean(lab > 0, factor) > 0.5
    c = (factor - 1) // 2
    centre = lab[tuple(slice(c, None, factor) for _ in lab.shape)]
    largest = np.zeros_like(centre)
    for offs in np.ndindex(*(factor,) * lab.ndim):
        np.maximum(largest, lab[tuple(slice(o, None, factor) for o in offs)], out=largest)
    return np.where(fg, np.where(centre > 0, centre, largest), 0).astype(labels.dtype)


def upsample_labels_slabs(labels: np.ndarray, factor: int, full_shape: tuple[int, int, int], slab: int = 32) -> Iterator[tuple[int, np.ndarray]]:
    """Nearest-neighbour upsampling of binned (z, y, x) labels, yielded as ``(z0, full-resolution slab)``.

    Each yielded slab covers ``slab`` full-resolution z planes (last one may be shorter).
    """
    Z, Y, X = full_shape
    for z0 in range(0, Z, slab):
        z1 = min(Z, z0 + slab)
        zi = np.arange(z0, z1) // factor
        block = labels[zi]
        block = np.repeat(np.repeat(block, factor, axis=1), factor, axis=2)[:, :Y, :X]
        yield z0, block


def upsample_region(labels: np.ndarray, factor: int, region: tuple[slice, ...]) -> np.ndarray:
    """Nearest-neighbour upsampling of binned (z, y, x) labels, only the full-resolution ``region``
    (slices with explicit start/stop, in full-resolution voxels) -- what a block reads with its halo."""
    index = [np.arange(s.start, s.stop) // factor for s in region]
    return labels[np.ix_(*index)]
