"""Compiled (numba) passes that pack particle crops into a mosaic and sum over its tiles.

Inputs: the ``(z, y, x)`` label volume (integer, 0 = background) and float32 intensity of a scan, and
the mosaic arrays (C order, uint8 masks and float32 intensity, crops stacked along z; see
:mod:`nmc_assets.features.mosaic`). Coordinates are voxel indices; the per-z sums are float64 arrays
for the caller to sum per tile (``bincount`` over the tile index of each z slice).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def label_boxes(labels, max_label):
    """Bounding boxes of labels 1..max_label in one pass: (lo, hi) int64 arrays (max_label + 1, 3),
    hi exclusive; lo = -1 for absent labels (as ``ndimage.find_objects``, one row per label value)."""
    nz, ny, nx = labels.shape
    lo = np.full((max_label + 1, 3), -1, np.int64)
    hi = np.zeros((max_label + 1, 3), np.int64)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                v = labels[z, y, x]
                if v <= 0:
                    continue
                if lo[v, 0] < 0:
                    lo[v, 0] = z
                    lo[v, 1] = y
                    lo[v, 2] = x
                    hi[v, 0] = z + 1
                    hi[v, 1] = y + 1
                    hi[v, 2] = x + 1
                    continue
                if y < lo[v, 1]:
                    lo[v, 1] = y
                if x < lo[v, 2]:
                    lo[v, 2] = x
                hi[v, 0] = z + 1
                if y >= hi[v, 1]:
                    hi[v, 1] = y + 1
                if x >= hi[v, 2]:
                    hi[v, 2] = x + 1
    return lo, hi


@njit(cache=True, nogil=True)
def build_mosaic(labels, intensity, starts, sizes, pids, z_starts, pad, own, other, img):
    """Fill the mosaic arrays: tile t holds the crop ``starts[t] : starts[t] + sizes[t]`` (z, y, x) of the
    volume at z offset ``z_starts[t] + pad`` and (y, x) offset ``pad``; ``own`` = label ``pids[t]``,
    ``other`` = any other label (uint8), ``img`` = intensity including a ``pad``-voxel rim, read with
    edge replication where the volume ends."""
    vz, vy, vx = labels.shape
    for t in range(pids.shape[0]):
        pid = pids[t]
        s0 = starts[t, 0]
        s1 = starts[t, 1]
        s2 = starts[t, 2]
        d0 = sizes[t, 0]
        d1 = sizes[t, 1]
        d2 = sizes[t, 2]
        z0 = z_starts[t]
        for z in range(d0):
            for y in range(d1):
                for x in range(d2):
                    lab = labels[s0 + z, s1 + y, s2 + x]
                    if lab == pid:
                        own[z0 + pad + z, pad + y, pad + x] = 1
                    elif lab != 0:
                        other[z0 + pad + z, pad + y, pad + x] = 1
        for z in range(-pad, d0 + pad):
            zz = min(max(s0 + z, 0), vz - 1)
            for y in range(-pad, d1 + pad):
                yy = min(max(s1 + y, 0), vy - 1)
                for x in range(-pad, d2 + pad):
                    xx = min(max(s2 + x, 0), vx - 1)
                    img[z0 + pad + z, pad + y, pad + x] = intensity[zz, yy, xx]


@njit(cache=True, nogil=True)
def moment_sums_per_z(filled, img, thr, origin):
    """Per z, sums over the voxels of ``filled`` (uint8): count, x, x^2, y, y^2, x*y (x, y = index -
    ``origin``), intensity ``img`` and solid voxels (``img >= thr``); float64 array (nz, 8)."""
    nz, ny, nx = filled.shape
    out = np.zeros((nz, 8))
    for z in range(nz):
        c = 0.0
        sx = 0.0
        sxx = 0.0
        sy = 0.0
        syy = 0.0
        sxy = 0.0
        si = 0.0
        ns = 0.0
        for y in range(ny):
            yv = y - origin
            rc = 0.0
            rx = 0.0
            rxx = 0.0
            for x in range(nx):
                if filled[z, y, x]:
                    xv = x - origin
                    rc += 1.0
                    rx += xv
                    rxx += xv * xv
                    si += img[z, y, x]
                    if img[z, y, x] >= thr:
                        ns += 1.0
            c += rc
            sx += rx
            sxx += rxx
            sy += yv * rc
            syy += yv * yv * rc
            sxy += yv * rx
        out[z, 0] = c
        out[z, 1] = sx
        out[z, 2] = sxx
        out[z, 3] = sy
        out[z, 4] = syy
        out[z, 5] = sxy
        out[z, 6] = si
        out[z, 7] = ns
    return out


@njit(cache=True, nogil=True)
def squared_deviation_per_z(filled, img, mean_of_z):
    """Per z, the sum over the voxels of ``filled`` of ``(img - mean_of_z[z])^2`` (float64)."""
    nz, ny, nx = filled.shape
    out = np.zeros(nz)
    for z in range(nz):
        m = mean_of_z[z]
        acc = 0.0
        for y in range(ny):
            for x in range(nx):
                if filled[z, y, x]:
                    d = img[z, y, x] - m
                    acc += d * d
        out[z] = acc
    return out
