"""Look-up tables of marching cubes on one 2x2x2 cube, indexed by the cube's corner configuration.

A cube's corner k sits at offset ``CORNERS[k] = (dz, dy, dx)`` along the volume axes (z, y, x), with
k = 4 dz + 2 dy + dx; a *configuration* (0-255) has bit k set when corner k lies above the level. The
tables are read off skimage's Lewiner marching cubes run on binary cubes (corner values 0 / 1, level
0.5), so the compiled kernels of :mod:`nmc_assets.features._surface_kernels` tile and measure each cube
as skimage does:

- :func:`triangle_table`: the triangles of each configuration, as cut-edge vertex indices;
- :func:`ambiguous_table`: the configurations whose Lewiner tiling depends on the corner values;
- :func:`cube_area_table`: the isosurface area of each configuration in voxel units (voxel edge = 1).

Plain numpy; skimage is imported when a table is built (once, by :func:`nmc_assets.features._compiled.kernels`).
"""

from __future__ import annotations

import numpy as np


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


def _binary_cube_mesh(config: int) -> tuple[np.ndarray, np.ndarray]:
    """(verts, faces) of skimage's marching cubes (level 0.5) on the binary (z, y, x) cube of ``config``."""
    from skimage.measure import marching_cubes

    cube = np.zeros((2, 2, 2), np.float32)
    for bit, (z, y, x) in enumerate(CORNERS):
        cube[z, y, x] = (config >> bit) & 1
    verts, faces, _, _ = marching_cubes(cube, 0.5, allow_degenerate=True)
    return verts, faces


def triangle_table() -> np.ndarray:
    """``int8[256, MAX_TRIANGLES, 3]``: per configuration, triangles as vertex indices (edges 0-11,
    ``CENTRE``), ``-1`` padded; taken from skimage's marching cubes on binary cubes (level 0.5)."""
    midpoint = {tuple((CORNERS[i] + CORNERS[j]) * 5): k for k, (i, j) in enumerate(EDGES)}
    table = np.full((256, MAX_TRIANGLES, 3), -1, np.int8)
    for config in range(1, 255):
        verts, faces = _binary_cube_mesh(config)
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


def cube_area_table() -> np.ndarray:
    """``float64[256]``: marching-cubes isosurface area (voxel units) of each binary configuration
    (level 0.5); 0 for configurations 0 and 255."""
    from skimage.measure import mesh_surface_area

    lut = np.zeros(256)
    for config in range(1, 255):
        lut[config] = mesh_surface_area(*_binary_cube_mesh(config))
    return lut
