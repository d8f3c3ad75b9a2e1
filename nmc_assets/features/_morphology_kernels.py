"""Compiled (numba) binary morphology on particle mosaics: hole filling, erosion, contact, void masks.

Inputs are C-ordered ``(z, y, x)`` uint8 0/1 masks of one mosaic (``filled``: each tile's filled
particle; ``other``: voxels of any other label), plus float32 intensities for :func:`rough_void_mask`.
Distances are in voxels (6-neighbourhood faces, or chessboard cubes of side 2 r + 1). Counts come per
z index as float64 (nz,) arrays, for the caller to sum per tile.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def fill_holes_excluding(filled, other):
    """In place: ``filled |= holes; filled &= ~other`` (uint8 0/1 arrays), holes = the background voxels
    (``filled == 0``) not 6-connected to the array border, as ``ndimage.binary_fill_holes`` fills. Only voxels lying between filled voxels along all
    three axis lines can be enclosed; their components are flooded and kept when no voxel of theirs
    touches other background."""
    nz, ny, nx = filled.shape
    cand = np.zeros_like(filled)
    for z in range(nz):
        for y in range(ny):
            first = -1
            last = -1
            for x in range(nx):
                if filled[z, y, x]:
                    if first < 0:
                        first = x
                    last = x
            for x in range(first + 1, last):
                if not filled[z, y, x]:
                    cand[z, y, x] = 1
    first_y = np.empty(nx, np.int64)
    last_y = np.empty(nx, np.int64)
    for z in range(nz):
        first_y[:] = -1
        last_y[:] = -1
        for y in range(ny):
            for x in range(nx):
                if filled[z, y, x]:
                    if first_y[x] < 0:
                        first_y[x] = y
                    last_y[x] = y
        for y in range(ny):
            for x in range(nx):
                if cand[z, y, x] and not (first_y[x] < y < last_y[x]):
                    cand[z, y, x] = 0
    first_z = np.full((ny, nx), -1, np.int64)
    last_z = np.full((ny, nx), -1, np.int64)
    n_cand = 0
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if filled[z, y, x]:
                    if first_z[y, x] < 0:
                        first_z[y, x] = z
                    last_z[y, x] = z
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if cand[z, y, x]:
                    if first_z[y, x] < z < last_z[y, x]:
                        n_cand += 1
                    else:
                        cand[z, y, x] = 0
    # flood the candidate components (cand: 1 = unvisited, 2 = visited, 3 = enclosed)
    queue = np.empty((n_cand, 3), np.int64)
    for z0 in range(nz):
        for y0 in range(ny):
            for x0 in range(nx):
                if cand[z0, y0, x0] != 1:
                    continue
                head = 0
                tail = 1
                queue[0, 0] = z0
                queue[0, 1] = y0
                queue[0, 2] = x0
                cand[z0, y0, x0] = 2
                leaks = False
                while head < tail:
                    z = queue[head, 0]
                    y = queue[head, 1]
                    x = queue[head, 2]
                    head += 1
                    for d in range(6):
                        zz = z + (d == 0) - (d == 1)
                        yy = y + (d == 2) - (d == 3)
                        xx = x + (d == 4) - (d == 5)
                        if filled[zz, yy, xx]:
                            continue
                        state = cand[zz, yy, xx]
                        if state == 0:
                            leaks = True
                        elif state == 1:
                            cand[zz, yy, xx] = 2
                            queue[tail, 0] = zz
                            queue[tail, 1] = yy
                            queue[tail, 2] = xx
                            tail += 1
                if not leaks:
                    for i in range(tail):
                        cand[queue[i, 0], queue[i, 1], queue[i, 2]] = 3
                # reuse the queue from the start for the next component
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if other[z, y, x]:
                    filled[z, y, x] = 0
                elif cand[z, y, x] == 3:
                    filled[z, y, x] = 1


@njit(cache=True, nogil=True)
def erode_cube(mask, radius):
    """Binary erosion (uint8 0/1) by a cube of side ``2 * radius + 1``, outside the array = 0 (as
    ``ndimage.minimum_filter(mask, 2 * radius + 1, mode="constant", cval=0)``); three run-length passes."""
    nz, ny, nx = mask.shape
    w = 2 * radius + 1
    a = np.zeros_like(mask)
    for z in range(nz):
        for y in range(ny):
            run = 0
            for x in range(nx):
                run = run + 1 if mask[z, y, x] else 0
                if run >= w:
                    a[z, y, x - radius] = 1
    b = np.zeros_like(mask)
    cnt = np.zeros(nx, np.int64)
    for z in range(nz):
        cnt[:] = 0
        for y in range(ny):
            for x in range(nx):
                cnt[x] = cnt[x] + 1 if a[z, y, x] else 0
                if cnt[x] >= w:
                    b[z, y - radius, x] = 1
    c = np.zeros_like(mask)
    cnt2 = np.zeros((ny, nx), np.int64)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                cnt2[y, x] = cnt2[y, x] + 1 if b[z, y, x] else 0
                if cnt2[y, x] >= w:
                    c[z - radius, y, x] = 1
    return c


@njit(cache=True, nogil=True)
def _any_near(mask, z, y, x, r):
    """True when ``mask`` is set within chessboard distance ``r`` of voxel (z, y, x) (inside the array)."""
    nz, ny, nx = mask.shape
    for zz in range(max(0, z - r), min(nz, z + r + 1)):
        for yy in range(max(0, y - r), min(ny, y + r + 1)):
            for xx in range(max(0, x - r), min(nx, x + r + 1)):
                if mask[zz, yy, xx]:
                    return True
    return False


@njit(cache=True, nogil=True)
def _on_boundary(filled, z, y, x):
    """True when voxel (z, y, x) has a 6-neighbour outside ``filled`` or lies on the array border."""
    nz, ny, nx = filled.shape
    return (
        z == 0 or y == 0 or x == 0 or z == nz - 1 or y == ny - 1 or x == nx - 1
        or not filled[z - 1, y, x] or not filled[z + 1, y, x]
        or not filled[z, y - 1, x] or not filled[z, y + 1, x]
        or not filled[z, y, x - 1] or not filled[z, y, x + 1]
    )


@njit(cache=True, nogil=True)
def contact_per_z(filled, other, gap):
    """Per z: boundary voxels of ``filled`` (a 6-neighbour outside it or outside the array) and those of
    them with an ``other`` voxel within ``gap`` voxels (chessboard), as float64 counts."""
    nz, ny, nx = filled.shape
    counts = np.zeros((2, nz))  # boundary voxels, those in contact
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if filled[z, y, x] and _on_boundary(filled, z, y, x):
                    counts[0, z] += 1
                    if _any_near(other, z, y, x, gap):
                        counts[1, z] += 1
    return counts[0], counts[1]


#: (dz, dy, dx) to the six face neighbours of a voxel.
FACE_OFFSETS = np.array([(-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)], dtype=np.int64)


@njit(cache=True, nogil=True)
def contact_faces_bright_per_z(filled, other, img, level, window, z_lo, z_hi, y_hi, x_hi):
    """Per z: outer voxel faces of ``filled`` (faces on the array border are not counted; the caller's
    crops pad the volume border with background) and those of them whose neighbour across the face is
    ``other`` and where ``img`` stays at or above ``level`` along the face normal (``window`` 0: every
    face to ``other``): the ``2 * window`` voxels from ``window - 1`` inside
    ``filled`` to ``window`` beyond the face (no darker gap between the two particles). The line is cut
    to the voxel's tile: z in ``[z_lo[z], z_hi[z])``, y below ``y_hi[z]``, x below ``x_hi[z]``."""
    nz, ny, nx = filled.shape
    n_faces = np.zeros(nz)
    n_contact = np.zeros(nz)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if not filled[z, y, x]:
                    continue
                for d in range(6):
                    dz, dy, dx = FACE_OFFSETS[d, 0], FACE_OFFSETS[d, 1], FACE_OFFSETS[d, 2]
                    zz, yy, xx = z + dz, y + dy, x + dx
                    if zz < 0 or yy < 0 or xx < 0 or zz >= nz or yy >= ny or xx >= nx:
                        continue
                    if filled[zz, yy, xx]:
                        continue
                    n_faces[z] += 1
                    if not other[zz, yy, xx]:
                        continue
                    bright = True
                    for s in range(1 - window, window + 1):
                        pz, py, px = z + s * dz, y + s * dy, x + s * dx
                        if pz < z_lo[z] or pz >= z_hi[z] or py < 0 or py >= y_hi[z] or px < 0 or px >= x_hi[z]:
                            continue
                        if img[pz, py, px] < level:
                            bright = False
                            break
                    if bright:
                        n_contact[z] += 1
    return n_faces, n_contact


@njit(cache=True, nogil=True)
def rough_void_mask(interior, smoothed, raw, thr):
    """(mask, n_void): void = ``interior & (smoothed < thr)``; mask = unsmoothed void voxels next to it,
    ``interior & (raw < thr) & dilate(void, 3x3x3 cube)`` (uint8), n_void = voxels in void."""
    nz, ny, nx = interior.shape
    void = np.zeros_like(interior)
    n_void = 0
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if interior[z, y, x] and smoothed[z, y, x] < thr:
                    void[z, y, x] = 1
                    n_void += 1
    out = np.zeros_like(interior)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if interior[z, y, x] and raw[z, y, x] < thr and _any_near(void, z, y, x, 1):
                    out[z, y, x] = 1
    return out, n_void
