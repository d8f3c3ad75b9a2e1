"""Particle crops packed into one array, so each filter and sum runs once for many particles.

A mosaic stacks crops of the ``(z, y, x)`` label volume and tomogram along z: tile t holds its crop at
offset :data:`TILE_PAD` along every axis, the tiles separated by that zero rim. Per-particle results
come from per-z sums, summed per tile (``bincount`` over the tile index of each z slice). Coordinates
are voxel indices.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from nmc_assets.features._compiled import kernels

#: Voxels between tiles of the mosaic (zeros for masks, edge values for the intensity). Tiles hold the
#: particle's bounding box plus a 1-voxel margin, so the 0.7-voxel smoothing of neighbouring masks never
#: meets, and the intensity smoothing reaches the interior only at faces cut by the volume boundary.
TILE_PAD = 1


@dataclass(frozen=True)
class Mosaic:
    """One mosaic: C-ordered (nz, ymax, xmax) arrays and where each tile lies.

    ``filled``: uint8 0/1, each tile's filled particle (its label plus the background it encloses);
    ``other``: uint8 0/1, any other label; ``img``: float32 intensity, crop plus the :data:`TILE_PAD`
    rim (edge values where the volume ends). ``starts``, ``sizes``: (n, 3) int64 crop starts in the
    volume and crop sizes (z, y, x); ``z_start``: (n + 1,) first z slice of each tile, then nz; ``tile_of_z``: (nz,) tile
    index of each z slice.
    """

    filled: np.ndarray
    other: np.ndarray
    img: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    z_start: np.ndarray
    tile_of_z: np.ndarray

    @property
    def n_tiles(self) -> int:
        return len(self.starts)

    def tile_sums(self, per_z: np.ndarray) -> np.ndarray:
        """(n_tiles,) sums of a per-z-slice quantity over each tile's slices."""
        return np.bincount(self.tile_of_z, weights=per_z, minlength=self.n_tiles)

    def tile_extents(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(z_lo, z_hi, y_hi, x_hi): (nz,) int64 per z slice, the slices of its tile (``[z_lo, z_hi)``) and
        the tile's y and x extent (crop plus rims)."""
        t = self.tile_of_z
        z_start = np.asarray(self.z_start, np.int64)
        pad = 2 * TILE_PAD
        return z_start[t], z_start[t + 1], self.sizes[t, 1] + pad, self.sizes[t, 2] + pad

    def local_z(self) -> np.ndarray:
        """(nz,) float64 z index of each slice in its tile's crop (0 = the crop's first slice)."""
        return (np.arange(len(self.tile_of_z)) - self.z_start[self.tile_of_z] - TILE_PAD).astype(np.float64)


def build_mosaic(labels: np.ndarray, intensity: np.ndarray, pids: np.ndarray, starts: np.ndarray,
                 sizes: np.ndarray) -> Mosaic:
    """The mosaic of the crops ``starts[t] : starts[t] + sizes[t]`` ((n, 3) int64, z, y, x) of particles
    ``pids`` (label values). Enclosed background (not 6-connected to the mosaic's outside through the
    zero rim) joins each filled particle; other labels never do."""
    own, other, img, z_start = _empty_mosaic(sizes)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    kernels().mosaic.build_mosaic(labels, intensity, starts, np.ascontiguousarray(sizes), pids.astype(labels.dtype),
                                  np.ascontiguousarray(z_start[:-1], dtype=np.int64), TILE_PAD, own, other, img)
    return _finish_mosaic(own, other, img, starts, sizes, z_start)


def build_mosaic_from_crops(crops: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], starts: np.ndarray,
                            sizes: np.ndarray) -> Mosaic:
    """:func:`build_mosaic` from each particle's crop instead of the whole volume, the same mosaic.

    ``crops`` yields per tile ``(codes, img, at)``: ``codes`` uint8 (z, y, x) over the tile's *region*
    (the crop ``starts[t] : starts[t] + sizes[t]`` grown by :data:`TILE_PAD`, clipped to the volume),
    1 = the particle, 2 = another label, 0 = background; ``img`` float32 intensity over the same region;
    ``at`` (3,) int64: where the crop starts inside the region (0 or :data:`TILE_PAD` per axis). The
    region ends where the volume does, so the rim's edge values are the ones read from the volume.
    """
    own, other, img, z_start = _empty_mosaic(sizes)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    sizes = np.ascontiguousarray(sizes, dtype=np.int64)
    fill = kernels().mosaic.build_mosaic
    one = np.ones(1, np.uint8)
    for t, (codes, region_img, at) in enumerate(crops):
        fill(codes, region_img, np.asarray(at, np.int64).reshape(1, 3), sizes[t : t + 1], one,
             z_start[t : t + 1].astype(np.int64), TILE_PAD, own, other, img)
    return _finish_mosaic(own, other, img, starts, sizes, z_start)


def _empty_mosaic(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Zeroed (own, other, img) arrays of the mosaic of crops of (n, 3) ``sizes``, and ``z_start``."""
    p = TILE_PAD
    ymax = int(sizes[:, 1].max()) + 2 * p
    xmax = int(sizes[:, 2].max()) + 2 * p
    z_start = np.concatenate([[0], np.cumsum(sizes[:, 0] + 2 * p)])
    nz = int(z_start[-1])
    return (np.zeros((nz, ymax, xmax), np.uint8), np.zeros((nz, ymax, xmax), np.uint8),
            np.zeros((nz, ymax, xmax), np.float32), z_start)


def _finish_mosaic(own: np.ndarray, other: np.ndarray, img: np.ndarray, starts: np.ndarray, sizes: np.ndarray,
                   z_start: np.ndarray) -> Mosaic:
    kernels().morphology.fill_holes_excluding(own, other)  # in place: own becomes the filled particle
    return Mosaic(filled=own, other=other, img=img, starts=starts, sizes=np.asarray(sizes, np.int64), z_start=z_start,
                  tile_of_z=np.repeat(np.arange(len(starts)), sizes[:, 0] + 2 * TILE_PAD))
