"""Outer and inner (crack/void) surface areas of the particles of a mosaic, smoothed and unsmoothed.

Surfaces are marching-cubes isosurfaces, their areas summed cube by cube without building meshes
(:mod:`nmc_assets.features._surface_kernels`, equal to ``mesh_surface_area(marching_cubes(...))``).
Arrays are ``(z, y, x)``; smoothing widths and margins are in voxels, areas in voxel units (voxel
edge = 1); intensities and the solid threshold in the tomogram's units (phase).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nmc_assets.features._compiled import kernels
from nmc_assets.features._lookup_tables import CORNERS, EDGES
from nmc_assets.features.mosaic import Mosaic

#: Gaussian smoothing (voxels) of the filled mask before its outer isosurface (removes the voxel staircase).
OUTER_SMOOTHING_VOX = 0.7
#: Gaussian smoothing (voxels) of the intensity before the inner (crack/void) isosurface: suppresses noise.
INNER_SMOOTHING_VOX = 1.0
#: Erosion (voxels, cube) of the filled mask that delimits where inner surfaces are searched (keeps the outer edge out).
INNER_MARGIN_VOX = 2
#: Gaussian kernels end at this many sigma (``ndimage.gaussian_filter(..., truncate=3.0)``).
GAUSSIAN_TRUNCATE = 3.0


class Surfaces(NamedTuple):
    """Per tile of a mosaic, (n,) float64 areas in voxel units."""

    s_out: np.ndarray  #: outer isosurface (level 0.5) of the smoothed filled mask
    s_out_raw: np.ndarray  #: outer isosurface of the unsmoothed filled mask (the voxel staircase)
    s_in: np.ndarray  #: isosurface of the smoothed intensity at the solid threshold, inside the eroded particle
    s_in_raw: np.ndarray  #: unsmoothed isosurface of the void voxels next to that surface


def particle_surfaces(mosaic: Mosaic, thr: float) -> Surfaces:
    """:class:`Surfaces` of each tile's filled particle; ``thr``: solid threshold (intensity units)."""
    k = kernels()
    tiles = mosaic.tile_sums
    filled = mosaic.filled

    # outer surface: isosurface (0.5) of the Gaussian-smoothed filled mask; unsmoothed one for roughness
    s_out = tiles(isosurface_area_per_z(gaussian_smooth(filled, OUTER_SMOOTHING_VOX), 0.5))
    s_out_raw = tiles(voxel_area_per_z(filled))
    s_out = np.where(s_out > 0, s_out, s_out_raw)  # a particle too thin to survive the smoothing

    # inner surface: isosurface of the smoothed intensity at the threshold inside the eroded particle
    # (cube erosion); the unsmoothed void voxels next to that surface give the roughness ratio
    interior = k.morphology.erode_cube(filled, INNER_MARGIN_VOX)
    # the smoothed intensity is read only at interior voxels and at the corners of cubes whose upper
    # corner is interior: rows (z, y) with interior voxels in rows (z..z+1, y..y+1)
    rows = interior.view(bool).any(axis=2)
    near_rows = rows.copy()
    near_rows[:-1] |= rows[1:]
    near_rows[:, :-1] |= near_rows[:, 1:].copy()
    g = gaussian_smooth(mosaic.img, INNER_SMOOTHING_VOX, rows=near_rows)
    rough_void, n_void = k.morphology.rough_void_mask(interior, g, mosaic.img, np.float32(thr))
    if n_void:
        s_in = tiles(isosurface_area_per_z(g, thr, mask=interior))
        s_in_raw = tiles(voxel_area_per_z(rough_void))
    else:
        s_in = s_in_raw = np.zeros(mosaic.n_tiles)
    return Surfaces(s_out=s_out, s_out_raw=s_out_raw, s_in=s_in, s_in_raw=s_in_raw)


def gaussian_weights(sigma: float, truncate: float = GAUSSIAN_TRUNCATE) -> np.ndarray:
    """float64 (2 r + 1,) normalised Gaussian of ``sigma`` voxels, r = ``int(truncate * sigma + 0.5)``:
    the weights ``ndimage.gaussian_filter`` uses (same formula and order of operations, bit for bit)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    return phi / phi.sum()


def gaussian_smooth(volume: np.ndarray, sigma: float, rows: np.ndarray | None = None) -> np.ndarray:
    """``ndimage.gaussian_filter(volume.astype(np.float32), sigma, truncate=3.0)`` (compiled separable
    pass, float64 sums, same kernel and "reflect" edges). ``rows``: optional (nz, ny) bool flags of
    the x rows wanted; the others are left 0 (rows provably 0 are skipped either way)."""
    if volume.dtype not in (np.float32, np.uint8):
        volume = volume.astype(np.float32)
    volume = np.ascontiguousarray(volume)
    need = np.ones(volume.shape[:2], np.uint8) if rows is None else np.ascontiguousarray(rows).view(np.uint8)
    return kernels().filters.smooth3_rows(volume, gaussian_weights(sigma), need)


def isosurface_area_per_z(field: np.ndarray, level: float, mask: np.ndarray | None = None) -> np.ndarray:
    """Marching-cubes isosurface area (voxel units) of ``field`` at ``level`` per z index of each cube's
    corner (0, 0, 0): summed, equal to ``mesh_surface_area(marching_cubes(field, level, mask=mask))``."""
    k = kernels()
    field = np.ascontiguousarray(field, dtype=np.float32)
    use_mask = mask is not None
    m = np.ascontiguousarray(mask).view(np.uint8) if use_mask else np.zeros((1, 1, 1), np.uint8)
    level = np.float32(level)
    per_z, cubes = k.surface.iso_area_per_z(field, level, m, use_mask, k.triangles, CORNERS, EDGES, k.ambiguous)
    if len(cubes):
        # ambiguous configurations: Lewiner's face/interior tests decide the tiling; let skimage do them
        per_z = per_z + np.bincount(cubes[:, 0], weights=_ambiguous_cube_areas(field, float(level), cubes),
                                    minlength=len(per_z))
    return per_z


def _ambiguous_cube_areas(field: np.ndarray, level: float, cubes: np.ndarray) -> np.ndarray:
    """Marching-cubes area of each given cube (rows of (z, y, x) corner indices) as skimage tiles it:
    the cubes are laid side by side along x in one (2, 2, 2n) array, and a mask admits only them."""
    from skimage.measure import marching_cubes

    n = len(cubes)
    z, y, x = cubes.T
    block = np.empty((2, 2, 2 * n), np.float32)
    for dz in (0, 1):
        for dy in (0, 1):
            block[dz, dy, 0::2] = field[z + dz, y + dy, x]
            block[dz, dy, 1::2] = field[z + dz, y + dy, x + 1]
    mask = np.zeros(block.shape, bool)
    mask[1, 1, 1::2] = True  # skimage's mask selects cubes by their upper corner
    verts, faces, _, _ = marching_cubes(block, level=level, mask=mask, allow_degenerate=True)
    if len(faces) == 0:
        return np.zeros(n)
    v0 = verts[faces[:, 0]].astype(np.float64)
    cross = np.cross(verts[faces[:, 1]] - v0, verts[faces[:, 2]] - v0)
    area = 0.5 * np.sqrt((cross.astype(np.float64) ** 2).sum(axis=1))
    cube = np.minimum((v0[:, 2] // 2).astype(np.int64), n - 1)
    return np.bincount(cube, weights=area, minlength=n)


def voxel_area_per_z(mask: np.ndarray) -> np.ndarray:
    """Unsmoothed marching-cubes area (voxel units) of a binary (z, y, x) mask per z index of each
    cube's corner (0, 0, 0), from the per-configuration look-up table (the voxel staircase)."""
    k = kernels()
    return k.surface.binary_area_per_z(np.ascontiguousarray(mask).view(np.uint8), k.cube_areas)
