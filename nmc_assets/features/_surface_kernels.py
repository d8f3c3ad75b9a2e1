"""Compiled (numba) marching-cubes isosurface areas, summed cube by cube without building meshes.

Inputs are C-ordered ``(z, y, x)`` mosaics (particle crops stacked along z, see
:mod:`nmc_assets.features.mosaic`): a float32 field with a level, or a uint8 0/1 mask. Each kernel walks
the 2x2x2 cubes once and returns the area in voxel units (voxel edge = 1, so voxel^2) per z index of the
cube's corner (0, 0, 0), float64 (nz,); the caller sums those per tile.

The triangulation of each of the 256 corner configurations is the one skimage's Lewiner marching cubes
produces for it (:mod:`nmc_assets.features._lookup_tables`), with vertices interpolated linearly along
the cut edges exactly as marching cubes does; so the areas equal ``mesh_surface_area(marching_cubes(...))``.
Cubes in an ambiguous configuration, where Lewiner's value-dependent face/interior tests pick the
tiling, are returned to the caller for skimage to tile.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def iso_area_per_z(field, level, mask, use_mask, table, corners, edges, ambiguous):
    """Isosurface area (voxel units) of ``field`` at ``level`` per z of the cube's corner (0, 0, 0);
    with ``use_mask`` only cubes whose corner (1, 1, 1) is in ``mask`` (skimage's ``mask=`` semantics:
    its loop indexes each cube by the upper corner). Cubes in an ``ambiguous`` configuration are not
    summed but returned, as (n, 3) corner (0, 0, 0) indices, for skimage to tile (see
    :func:`~nmc_assets.features._lookup_tables.ambiguous_table`): returns (area per z, ambiguous cubes)."""
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
