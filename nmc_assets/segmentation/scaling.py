"""Pixel scale: the model works at a fixed pixel size; scans are binned to it and labels upsampled back.

Particles are 5-12 um across. The default model works at ``DEFAULT_WORKING_PIXEL_UM`` = 0.4 um, where
they are 12-30 px across (median 20): enough for 32 rays, and 8x fewer voxels than 0.2 um scans, which
is what makes three-view prediction of a full scan fast on a CPU. The bin factor of a scan is the
integer closest to working / voxel size (0.2 um -> 2, 0.1 um -> 4, 0.07 um -> 6).
"""

from __future__ import annotations

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


def bin_volume_slabwise(source, factor: int, normalize: tuple[float, float] | None = None) -> np.ndarray:
    """Bin a (z, y, x) array-like (numpy or lazy Zarr) slab by slab; peak memory ~ one slab + the result.

    ``normalize=(lo, hi)`` maps intensities to ``(v - lo) / (hi - lo)`` (float32) on the fly.
    """
    shape = tuple(source.shape)
    out = np.empty(binned_shape(shape, factor), np.float32)
    for i, z0 in enumerate(range(0, shape[0], factor)):
        slab = np.asarray(source[z0 : z0 + factor], dtype=np.float32)
        if normalize is not None:
            lo, hi = normalize
            slab = (slab - lo) / max(hi - lo, 1e-12)
        if slab.shape[0] < factor:  # last partial slab: replicate edge
            slab = np.concatenate([slab, np.repeat(slab[-1:], factor - slab.shape[0], 0)])
        out[i] = bin_mean(slab, factor)[0]
    return out


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
