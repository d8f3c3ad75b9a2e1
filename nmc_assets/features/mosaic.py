"""Particle crops packed into one array, so each filter and sum runs once for many particles.

A mosaic stacks crops of the ``(z, y, x)`` label volume and tomogram along z: tile t holds its crop at
offset :data:`TILE_PAD` along every axis, the tiles separated by that zero rim. Per-particle results
come from per-z sums, summed per tile (``bincount`` over the tile index of each z slice). Coordinates
are voxel indices.
"""

from __future__ import annotations

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
    rim (edge values where the volume ends). ``starts``: (n, 3) int64 crop starts in the volume
    (z, y, x); ``z_start``: (n + 1,) first z slice of each tile, then nz; ``tile_of_z``: (nz,) tile
    index of each z slice.
    """

    filled: np.ndarray
    other: np.ndarray
    img: np.ndarray
    starts: np.ndarray
    z_start: np.ndarray
    tile_of_z: np.ndarray

    @property
    def n_tiles(self) -> int:
        return len(self.starts)

    def tile_sums(self, per_z: np.ndarray) -> np.ndarray:
        """(n_tiles,) sums of a per-z-slice quantity over each tile's slices."""
        return np.bincount(self.tile_of_z, weights=per_z, minlength=self.n_tiles)

    def local_z(self) -> np.ndarray:
        """(nz,) float64 z index of each slice in its tile's crop (0 = the crop's first slice)."""
        return (np.arange(len(self.tile_of_z)) - self.z_start[self.tile_of_z] - TILE_PAD).astype(np.float64)


def build_mosaic(labels: np.ndarray, intensity: np.ndarray, pids: np.ndarray, starts: np.ndarray,
                 sizes: np.ndarray) -> Mosaic:
    """The mosaic of the crops ``starts[t] : starts[t] + sizes[t]`` ((n, 3) int64, z, y, x) of particles
    ``pids`` (label values). Enclosed background (not 6-connected to the mosaic's outside through the
    zero rim) joins each filled particle; other labels never do."""
    p = TILE_PAD
    cz = sizes[:, 0]
    ymax = int(sizes[:, 1].max()) + 2 * p
    xmax = int(sizes[:, 2].max()) + 2 * p
    z_start = np.concatenate([[0], np.cumsum(cz + 2 * p)])
    nz = int(z_start[-1])
    k = kernels()
    own = np.zeros((nz, ymax, xmax), np.uint8)
    other = np.zeros((nz, ymax, xmax), np.uint8)
    img = np.zeros((nz, ymax, xmax), np.float32)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    k.mosaic.build_mosaic(labels, intensity, starts, np.ascontiguousarray(sizes), pids.astype(labels.dtype),
                          np.ascontiguousarray(z_start[:-1], dtype=np.int64), p, own, other, img)
    k.morphology.fill_holes_excluding(own, other)  # in place: own becomes the filled particle
    return Mosaic(filled=own, other=other, img=img, starts=starts, z_start=z_start,
                  tile_of_z=np.repeat(np.arange(len(starts)), cz + 2 * p))
