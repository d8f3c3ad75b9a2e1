"""Compiled (numba) kernels of feature extraction: marching-cubes isosurface areas without building meshes.

Imported lazily by :mod:`nmc_assets.features.extract` (numba is a dependency of shap, already pinned).
Each kernel walks the 2x2x2 cubes of a ``(z, y, x)`` mosaic once and returns the surface area (voxel
units) per z index of the cube's corner (0, 0, 0); the caller sums those per tile.

The triangulation of each of the 256 corner configurations is the one skimage's Lewiner marching cubes
produces for that configuration (read off ``skimage.measure.marching_cubes`` run on binary 2x2x2 cubes,
see :func:`triangle_table`), with vertices interpolated linearly along the cut edges exactly as
marching cubes does; so the areas equal ``mesh_surface_area(marching_cubes(...))`` except in the rare
ambiguous configurations, where Lewiner's value-dependent face/interior tests may pick another
(equally valid) tiling -- a difference of a small fraction of one cube's area.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Corner k of a cube sits at offset (z, y, x) = CORNERS[k]; bit k of the configuration is set when
#: that corner lies above the level.
CORNERS = np.array([(z, y, x) for z in (0, 1) for y in (0, 1) for x in (0, 1)], dtype=np.int64)
#: The 12 cube edges as corner pairs.
EDGES = np.array(
    [(i, j) for i in range(8) for j in range(i + 1, 8) if np.abs(CORNERS[i] - CORNERS[j]).sum() == 1], dtype=np.int64
)
#: Vertex index 12 = the cube's interior vertex (mean of its edge vertices), used by some Lewiner tilings.
CENTRE = 12
MAX_TRIANGLES = 12


def triangle_table() -> np.ndarray:
    """``int8[256, MAX_TRIANGLES, 3]``: per configuration, triangles as vertex indices (edges 0-11,
    ``CENTRE``), ``-1`` padded; taken from skimage's marching cubes on binary cubes (level 0.5)."""
    from skimage.measure import marching_cubes

    midpoint = {tuple((CORNERS[i] + CORNERS[j]) * 5): k for k, (i, j) in enumerate(EDGES)}
    table = np.full((256, MAX_TRIANGLES, 3), -1, np.int8)
    for config in range(1, 255):
        cube = np.zeros((2, 2, 2), np.float32)
        for bit, (z, y, x) in enumerate(CORNERS):
            cube[z, y, x] = (config >> bit) & 1
        verts, faces, _, _ = marching_cubes(cube, 0.5, allow_degenerate=True)
        ids = []
        for v in verts:
            key = tuple(int(round(c * 10)) for c in v)
            ids.append(midpoint.get(key, CENTRE if key == (5, 5, 5) else -2))
        if min(ids) < -1 or len(faces) > MAX_TRIANGLES:
            raise RuntimeError(f"unexpected marching-cubes tiling for configuration {config}")
        table[config, : len(faces)] = np.asarray(ids, np.int8)[faces]
    return table


def ambiguous_table() -> np.ndarray:
    """``uint8[256]``: 1 for the configurations whose Lewiner tiling depends on the corner values (an
    ambiguous face -- two diagonal corners above, the other two below -- or only two body-diagonal
    corners on one side: Lewiner's cases 3, 4, 6, 7, 10, 12, 13 and complements; 128 of 256)."""
    table = np.zeros(256, np.uint8)
    for config in range(256):
        bit = {tuple(c): (config >> k) & 1 for k, c in enumerate(CORNERS.tolist())}
        ambiguous = False
        for axis in range(3):
            rest = [a for a in range(3) if a != axis]
            for side in (0, 1):
                square = []
                for u in (0, 1):
                    for v in (0, 1):
                        c = [0, 0, 0]
                        c[axis], c[rest[0]], c[rest[1]] = side, u, v
                        square.append(bit[tuple(c)])
                a0, a1, a2, a3 = square  # (0,0), (0,1), (1,0), (1,1)
                if a0 == a3 and a1 == a2 and a0 != a1:
                    ambiguous = True
        n = sum(bit.values())
        if n in (2, 6):
            pair = [c for c, b in bit.items() if b == (1 if n == 2 else 0)]
            if all(abs(pair[0][i] - pair[1][i]) == 1 for i in range(3)):
                ambiguous = True
        table[config] = ambiguous
    return table


@njit(cache=True, nogil=True)
def iso_area_per_z(field, level, mask, use_mask, table, corners, edges, ambiguous):
    """Isosurface area (voxel units) of ``field`` at ``level`` per z of the cube's corner (0, 0, 0);
    with ``use_mask`` only cubes whose corner (1, 1, 1) is in ``mask`` (skimage's ``mask=`` semantics:
    its loop indexes each cube by the upper corner). Cubes in an ``ambiguous`` configuration are not
    summed but returned, as (n, 3) corner (0, 0, 0) indices, for skimage to tile (see
    :func:`ambiguous_table`): returns (area per z, ambiguous cubes)."""
    nz, ny, nx = field.shape
    out = np.zeros(nz)
    vals = np.empty(8)
    pts = np.empty((13, 3))
    amb = np.empty((1024, 3), np.int64)
    n_amb = 0
    col = np.empty(nx, np.int64)
    spread = np.array([0, 1, 4, 5, 16, 17, 20, 21, 64, 65, 68, 69, 80, 81, 84, 85], np.int64)
    # rows (z, y) with some / all values above the level: a row pair with none (or all) above is skipped
    some = np.zeros((nz, ny), np.bool_)
    every = np.zeros((nz, ny), np.bool_)
    for z in range(nz):
        for y in range(ny):
            n_above = 0
            for x in range(nx):
                if field[z, y, x] > level:
                    n_above += 1
            some[z, y] = n_above > 0
            every[z, y] = n_above == nx
    for z in range(nz - 1):
        acc = 0.0
        for y in range(ny - 1):
            if not (some[z, y] or some[z, y + 1] or some[z + 1, y] or some[z + 1, y + 1]):
                continue
            if every[z, y] and every[z, y + 1] and every[z + 1, y] and every[z + 1, y + 1]:
                continue
            # 4 corners of each (z, y) column: bit 2 dz + dy; a cube's configuration interleaves two columns
            for x in range(nx):
                col[x] = (
                    (field[z, y, x] > level)
                    + 2 * (field[z, y + 1, x] > level)
                    + 4 * (field[z + 1, y, x] > level)
                    + 8 * (field[z + 1, y + 1, x] > level)
                )
            for x in range(nx - 1):
                c0 = col[x]
                c1 = col[x + 1]
                if c0 == c1 and (c0 == 0 or c0 == 15):
                    continue
                if use_mask and not mask[z + 1, y + 1, x + 1]:
                    continue
                config = spread[c0] | (spread[c1] << 1)
                if ambiguous[config]:
                    if n_amb == amb.shape[0]:
                        grown = np.empty((2 * n_amb, 3), np.int64)
                        grown[:n_amb] = amb
                        amb = grown
                    amb[n_amb, 0] = z
                    amb[n_amb, 1] = y
                    amb[n_amb, 2] = x
                    n_amb += 1
                    continue
                for k in range(8):
                    vals[k] = field[z + corners[k, 0], y + corners[k, 1], x + corners[k, 2]]
                ncut = 0
                cx = 0.0
                cy = 0.0
                cz = 0.0
                for e in range(12):
                    i = edges[e, 0]
                    j = edges[e, 1]
                    if ((config >> i) & 1) != ((config >> j) & 1):
                        t = (level - vals[i]) / (vals[j] - vals[i])
                        for d in range(3):
                            pts[e, d] = corners[i, d] + t * (corners[j, d] - corners[i, d])
                        cz += pts[e, 0]
                        cy += pts[e, 1]
                        cx += pts[e, 2]
                        ncut += 1
                pts[12, 0] = cz / ncut
                pts[12, 1] = cy / ncut
                pts[12, 2] = cx / ncut
                for tri in range(table.shape[1]):
                    a = table[config, tri, 0]
                    if a < 0:
                        break
                    b = table[config, tri, 1]
                    c = table[config, tri, 2]
                    u0 = pts[b, 0] - pts[a, 0]
                    u1 = pts[b, 1] - pts[a, 1]
                    u2 = pts[b, 2] - pts[a, 2]
                    w0 = pts[c, 0] - pts[a, 0]
                    w1 = pts[c, 1] - pts[a, 1]
                    w2 = pts[c, 2] - pts[a, 2]
                    q0 = u1 * w2 - u2 * w1
                    q1 = u2 * w0 - u0 * w2
                    q2 = u0 * w1 - u1 * w0
                    acc += 0.5 * np.sqrt(q0 * q0 + q1 * q1 + q2 * q2)
        out[z] = acc
    return out, amb[:n_amb]


@njit(cache=True, nogil=True)
def binary_area_per_z(mask, lut):
    """Unsmoothed marching-cubes area (voxel units) of a binary (uint8 0/1) mosaic per z of the cube,
    from the per-configuration area look-up table ``lut``."""
    nz, ny, nx = mask.shape
    out = np.zeros(nz)
    for z in range(nz - 1):
        acc = 0.0
        for y in range(ny - 1):
            for x in range(nx - 1):
                config = (
                    mask[z, y, x]
                    | (mask[z, y, x + 1] << 1)
                    | (mask[z, y + 1, x] << 2)
                    | (mask[z, y + 1, x + 1] << 3)
                    | (mask[z + 1, y, x] << 4)
                    | (mask[z + 1, y, x + 1] << 5)
                    | (mask[z + 1, y + 1, x] << 6)
                    | (mask[z + 1, y + 1, x + 1] << 7)
                )
                if config != 0 and config != 255:
                    acc += lut[config]
        out[z] = acc
    return out


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
def contact_per_z(filled, other, gap):
    """Per z: boundary voxels of ``filled`` (a 6-neighbour outside it or outside the array) and those of
    them with an ``other`` voxel within ``gap`` voxels (chessboard), as float64 counts."""
    nz, ny, nx = filled.shape
    n_boundary = np.zeros(nz)
    n_contact = np.zeros(nz)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if not filled[z, y, x]:
                    continue
                if not (
                    z == 0 or y == 0 or x == 0 or z == nz - 1 or y == ny - 1 or x == nx - 1
                    or not filled[z - 1, y, x] or not filled[z + 1, y, x]
                    or not filled[z, y - 1, x] or not filled[z, y + 1, x]
                    or not filled[z, y, x - 1] or not filled[z, y, x + 1]
                ):
                    continue
                n_boundary[z] += 1
                found = False
                for zz in range(max(0, z - gap), min(nz, z + gap + 1)):
                    for yy in range(max(0, y - gap), min(ny, y + gap + 1)):
                        for xx in range(max(0, x - gap), min(nx, x + gap + 1)):
                            if other[zz, yy, xx]:
                                found = True
                                break
                        if found:
                            break
                    if found:
                        break
                if found:
                    n_contact[z] += 1
    return n_boundary, n_contact


#: (dz, dy, dx) to the six face neighbours of a voxel.
FACE_OFFSETS = np.array([(-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)], dtype=np.int64)


@njit(cache=True, nogil=True)
def contact_faces_per_z(filled, other):
    """Per z: outer voxel faces of ``filled`` (face to a voxel outside it; faces on the array border are
    not counted; the caller's crops pad the volume border with background) and those of them whose neighbour across the face is ``other``, as float64 counts."""
    nz, ny, nx = filled.shape
    n_faces = np.zeros(nz)
    n_contact = np.zeros(nz)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if not filled[z, y, x]:
                    continue
                for d in range(6):
                    zz, yy, xx = z + FACE_OFFSETS[d, 0], y + FACE_OFFSETS[d, 1], x + FACE_OFFSETS[d, 2]
                    if zz < 0 or yy < 0 or xx < 0 or zz >= nz or yy >= ny or xx >= nx:
                        continue
                    if filled[zz, yy, xx]:
                        continue
                    n_faces[z] += 1
                    if other[zz, yy, xx]:
                        n_contact[z] += 1
    return n_faces, n_contact


@njit(cache=True, nogil=True)
def rough_void_mask(interior, smoothed, raw, thr):
    """(mask, n_void): void = ``interior & (smoothed < thr)``; mask = unsmoothed void voxels next to it,
    ``interior & (raw < thr) & dilate(void, 3x3x3 cube)`` (uint8), n_void = voxels in void."""
    nz, ny, nx = interior.shape
    out = np.zeros_like(interior)
    n_void = 0
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if not interior[z, y, x]:
                    continue
                if smoothed[z, y, x] < thr:
                    n_void += 1
                if not raw[z, y, x] < thr:
                    continue
                found = False
                for zz in range(max(0, z - 1), min(nz, z + 2)):
                    for yy in range(max(0, y - 1), min(ny, y + 2)):
                        for xx in range(max(0, x - 1), min(nx, x + 2)):
                            if interior[zz, yy, xx] and smoothed[zz, yy, xx] < thr:
                                found = True
                                break
                        if found:
                            break
                    if found:
                        break
                if found:
                    out[z, y, x] = 1
    return out, n_void


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
def smooth3(volume, weights):
    """Separable convolution (float32 in and out, float64 sums) of a (z, y, x) volume with the odd 1-D
    kernel ``weights`` along each axis; the array edge is extended by reflection (scipy's "reflect")."""
    nz, ny, nx = volume.shape
    r = weights.shape[0] // 2
    a = np.empty_like(volume)
    cols = reflect_indices(nx, r)
    acc_x = np.empty(nx)
    lo = min(r, nx)
    hi = max(nx - r, lo)
    for z in range(nz):
        for y in range(ny):
            acc_x[:] = 0.0
            for t in range(2 * r + 1):
                w = weights[t]
                for x in range(lo, hi):
                    acc_x[x] += w * volume[z, y, x - r + t]
            for x in range(0, lo):
                acc = 0.0
                for t in range(2 * r + 1):
                    acc += weights[t] * volume[z, y, cols[x + t]]
                acc_x[x] = acc
            for x in range(hi, nx):
                acc = 0.0
                for t in range(2 * r + 1):
                    acc += weights[t] * volume[z, y, cols[x + t]]
                acc_x[x] = acc
            for x in range(nx):
                a[z, y, x] = acc_x[x]
    b = np.empty_like(volume)
    rows = reflect_indices(ny, r)
    acc_row = np.empty(nx)
    for z in range(nz):
        for y in range(ny):
            acc_row[:] = 0.0
            for t in range(2 * r + 1):
                w = weights[t]
                src = rows[y + t]
                for x in range(nx):
                    acc_row[x] += w * a[z, src, x]
            for x in range(nx):
                b[z, y, x] = acc_row[x]
    c = np.empty_like(volume)
    planes = reflect_indices(nz, r)
    acc_plane = np.empty((ny, nx))
    for z in range(nz):
        acc_plane[:, :] = 0.0
        for t in range(2 * r + 1):
            w = weights[t]
            src = planes[z + t]
            for y in range(ny):
                for x in range(nx):
                    acc_plane[y, x] += w * b[src, y, x]
        for y in range(ny):
            for x in range(nx):
                c[z, y, x] = acc_plane[y, x]
    return c


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
def moment_sums_per_z(filled, img, test, thr, origin):
    """Per z, sums over the voxels of ``filled`` (uint8): count, x, x^2, y, y^2, x*y (x, y = index -
    ``origin``), intensity ``img`` and solid voxels (``test >= thr``); float64 array (nz, 8)."""
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
                    if test[z, y, x] >= thr:
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
def smooth3_rows(volume, weights, need):
    """:func:`smooth3` (float32 result, any real input dtype) computed only on the x rows (z, y) flagged in ``need`` (uint8 (nz, ny)) and not
    provably zero; every other row of the result is 0. Rows whose inputs within the kernel reach are
    all zero are skipped exactly (their result is 0), so a sparse mask costs little."""
    nz, ny, nx = volume.shape
    r = weights.shape[0] // 2
    w_n = 2 * r + 1
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
    rows = reflect_indices(ny, r)
    planes = reflect_indices(nz, r)
    lo = min(r, nx)
    hi = max(nx - r, lo)
    a = np.zeros((nz, ny, nx), np.float32)
    acc = np.empty(nx)
    for z in range(nz):
        for y in range(ny):
            if not do_a[z, y]:
                continue
            acc[:] = 0.0
            for t in range(w_n):
                w = weights[t]
                for x in range(lo, hi):
                    acc[x] += w * volume[z, y, x - r + t]
            for x in range(0, lo):
                s = 0.0
                for t in range(w_n):
                    s += weights[t] * volume[z, y, cols[x + t]]
                acc[x] = s
            for x in range(hi, nx):
                s = 0.0
                for t in range(w_n):
                    s += weights[t] * volume[z, y, cols[x + t]]
                acc[x] = s
            for x in range(nx):
                a[z, y, x] = acc[x]
    b = np.zeros((nz, ny, nx), np.float32)
    for z in range(nz):
        for y in range(ny):
            if not do_b[z, y]:
                continue
            acc[:] = 0.0
            for t in range(w_n):
                src = rows[y + t]
                if not do_a[z, src]:
                    continue
                w = weights[t]
                for x in range(nx):
                    acc[x] += w * a[z, src, x]
            for x in range(nx):
                b[z, y, x] = acc[x]
    c = a  # the x pass is no longer needed: its array takes the result
    for z in range(nz):
        for y in range(ny):
            if not do_c[z, y]:
                if do_a[z, y]:
                    c[z, y, :] = 0.0
                continue
            acc[:] = 0.0
            for t in range(w_n):
                src = planes[z + t]
                if not do_b[src, y]:
                    continue
                w = weights[t]
                for x in range(nx):
                    acc[x] += w * b[src, y, x]
            for x in range(nx):
                c[z, y, x] = acc[x]
    return c


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
