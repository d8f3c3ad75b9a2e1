"""Compiled (numba) filters and order statistics: Gaussian smoothing, summed-area table, thresholds.

Inputs are C-ordered ``(z, y, x)`` volumes (float32 intensities or uint8 masks of a mosaic or a whole
scan) or flat 1-D arrays of voxel values. Kernel widths, radii and offsets are in voxels; intensities
keep the tomogram's units (phase). Boundary handling follows scipy.ndimage's "reflect" mode.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def reflect_indices(n, r):
    """Source index of each of ``n + 2 r`` positions of an axis padded by ``r`` on both sides, with
    mirror ('reflect', edge included: d c b a | a b c d | d c b a) boundary handling, as scipy.ndimage."""
    out = np.empty(n + 2 * r, np.int64)
    for i in range(n + 2 * r):
        j = i - r
        while j < 0 or j >= n:
            j = -j - 1 if j < 0 else 2 * n - j - 1
        out[i] = j
    return out


@njit(cache=True, nogil=True)
def _rows_near(flags, r, along_z, only):
    """(nz, ny) uint8: 1 at rows set in ``only`` that have a row set in ``flags`` within ``r`` rows
    (along z when ``along_z``, else along y)."""
    nz, ny = flags.shape
    out = np.zeros((nz, ny), np.uint8)
    for z in range(nz):
        for y in range(ny):
            if not only[z, y]:
                continue
            c, n = (z, nz) if along_z else (y, ny)
            for t in range(max(0, c - r), min(n, c + r + 1)):
                if (flags[t, y] if along_z else flags[z, t]):
                    out[z, y] = 1
                    break
    return out


@njit(cache=True, nogil=True)
def _filter_row_x(row, weights, cols, out, acc):
    """The x pass of one row: ``out[x]`` = sum over t of ``weights[t] * row[cols[x + t]]`` (``cols``:
    :func:`reflect_indices` of the row, r = len(weights) // 2), float64 sums in ``acc`` (scratch, len(row))."""
    nx = row.shape[0]
    r = weights.shape[0] // 2
    lo = min(r, nx)
    hi = max(nx - r, lo)
    acc[:] = 0.0
    for t in range(weights.shape[0]):
        w = weights[t]
        for x in range(lo, hi):
            acc[x] += w * row[x - r + t]
    for x in range(nx):
        if lo <= x < hi:
            out[x] = acc[x]
            continue
        s = 0.0  # the first and last r columns read reflected indices
        for t in range(weights.shape[0]):
            s += weights[t] * row[cols[x + t]]
        out[x] = s


@njit(cache=True, nogil=True)
def _gather_rows(src, dst, weights, index, src_rows, dst_rows, along_z):
    """One pass of the separable filter along z (``along_z``) or y: each x row (z, y) flagged in
    ``dst_rows`` of ``dst`` = sum over t of ``weights[t]`` * the source row ``index[z + t]`` (or
    ``index[y + t]``) of ``src``, float64 sums; source rows not flagged in ``src_rows`` are zero and skipped."""
    nz, ny, nx = src.shape
    acc = np.empty(nx)
    for z in range(nz):
        for y in range(ny):
            if not dst_rows[z, y]:
                continue
            acc[:] = 0.0
            for t in range(weights.shape[0]):
                sz, sy = (index[z + t], y) if along_z else (z, index[y + t])
                if not src_rows[sz, sy]:
                    continue
                w = weights[t]
                for x in range(nx):
                    acc[x] += w * src[sz, sy, x]
            for x in range(nx):
                dst[z, y, x] = acc[x]


@njit(cache=True, nogil=True)
def smooth3_rows(volume, weights, need):
    """Separable convolution of a (z, y, x) volume (any real dtype) with the odd, symmetric 1-D kernel
    ``weights`` along x, then y, then z (float64 sums, float32 after each pass; array edges extended by
    reflection, scipy's "reflect"), computed only on the x rows (z, y) flagged in ``need`` (uint8
    (nz, ny)); every other row of the float32 result is 0. Rows whose inputs within the kernel reach are
    all zero are skipped exactly (their result is 0), so a sparse mask costs little."""
    nz, ny, nx = volume.shape
    r = weights.shape[0] // 2
    # rows with a nonzero input; rows of each pass that can be nonzero
    flag_in = np.zeros((nz, ny), np.uint8)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if volume[z, y, x] != 0:
                    flag_in[z, y] = 1
                    break
    flag_b = _rows_near(flag_in, r, False, np.ones((nz, ny), np.uint8))  # after the y pass
    do_c = _rows_near(flag_b, r, True, need)
    # rows of flag_b within r of a do_c row (the relation is symmetric: the same gather, roles swapped)
    do_b = _rows_near(do_c, r, True, flag_b)
    do_a = _rows_near(do_b, r, False, flag_in)
    cols = reflect_indices(nx, r)
    a = np.zeros((nz, ny, nx), np.float32)
    acc = np.empty(nx)
    for z in range(nz):
        for y in range(ny):
            if do_a[z, y]:
                _filter_row_x(volume[z, y], weights, cols, a[z, y], acc)
    b = np.zeros((nz, ny, nx), np.float32)
    _gather_rows(a, b, weights, reflect_indices(ny, r), do_a, do_b, False)
    # the x pass is no longer needed: its array takes the result (rows not recomputed are cleared)
    for z in range(nz):
        for y in range(ny):
            if do_a[z, y] and not do_c[z, y]:
                a[z, y, :] = 0.0
    _gather_rows(b, a, weights, reflect_indices(nz, r), do_b, do_c, True)
    return a


@njit(cache=True, nogil=True)
def summed_area_table(volume, out):
    """Fill ``out`` (shape of ``volume`` + 1 per axis, zero first planes) with the 3-D summed-area table
    of ``volume != 0`` in one pass: out[z+1, y+1, x+1] = count of nonzero voxels in [0..z, 0..y, 0..x]."""
    nz, ny, nx = volume.shape
    plane = np.zeros(nx + 1, out.dtype)  # 2-D prefix of the current plane, previous row
    for z in range(nz):
        plane[:] = 0
        for y in range(ny):
            run = 0
            for x in range(nx):
                if volume[z, y, x] != 0:
                    run += 1
                plane[x + 1] += run
                out[z + 1, y + 1, x + 1] = out[z, y + 1, x + 1] + plane[x + 1]


@njit(cache=True, nogil=True)
def split_by_label(labels, values):
    """(values where labels > 0, values where labels == 0) of two 1-D arrays, as float32 arrays."""
    n_in = 0
    for i in range(labels.shape[0]):
        if labels[i] > 0:
            n_in += 1
    inside = np.empty(n_in, np.float32)
    outside = np.empty(labels.shape[0] - n_in, np.float32)
    a = 0
    b = 0
    for i in range(labels.shape[0]):
        if labels[i] > 0:
            inside[a] = values[i]
            a += 1
        else:
            outside[b] = values[i]
            b += 1
    return inside, outside


@njit(cache=True, nogil=True)
def gap_around(values, threshold):
    """(largest value <= threshold, smallest value > threshold, both found) of a 1-D array."""
    lo = -np.inf
    hi = np.inf
    has_lo = False
    has_hi = False
    for v in values:
        if v <= threshold:
            if v > lo or not has_lo:
                lo = v
            has_lo = True
        else:
            if v < hi or not has_hi:
                hi = v
            has_hi = True
    return lo, hi, has_lo and has_hi


@njit(cache=True, nogil=True)
def order_statistics(values, k):
    """(k-th, (k+1)-th) smallest values (0-based; the second clipped to the last) of a non-empty 1-D
    array, exactly, in three linear passes: range, a histogram of 4096 bins (monotone in the value, so
    the bin holding rank k is known), then a sort of the few values in the bins holding ranks k, k+1."""
    n = values.shape[0]
    k2 = min(k + 1, n - 1)
    lo = values[0]
    hi = values[0]
    for v in values:
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    if not hi > lo:
        return float(lo), float(lo)
    n_bins = 4096
    scale = (n_bins - 1) / (float(hi) - float(lo))
    counts = np.zeros(n_bins, np.int64)
    for v in values:
        counts[int((float(v) - float(lo)) * scale)] += 1
    below = 0
    b1 = 0
    while below + counts[b1] <= k:
        below += counts[b1]
        b1 += 1
    b2 = b1
    upto = below + counts[b1]
    while upto <= k2:
        b2 += 1
        upto += counts[b2]
    sel = np.empty(upto - below, values.dtype)
    i = 0
    for v in values:
        b = int((float(v) - float(lo)) * scale)
        if b1 <= b <= b2:
            sel[i] = v
            i += 1
    sel.sort()
    return float(sel[k - below]), float(sel[k2 - below])
