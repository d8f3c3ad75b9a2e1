"""Per-particle moments of a mosaic: voxel counts, centroid, principal axes and intensity statistics.

Voxels of the filled particle count as unit cubes at their (x, y, z) indices (x = volume axis 2, z =
axis 0): centroids are in voxel indices, second moments in voxel^2, angles in degrees. Intensities keep
the tomogram's units (phase); a voxel is solid when its intensity is at least the solid threshold.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from nmc_assets.features._compiled import kernels
from nmc_assets.features.mosaic import TILE_PAD, Mosaic


class Moments(NamedTuple):
    """Per tile of a mosaic, (n,) float64 arrays unless noted."""

    centroid_xyz: np.ndarray  #: (n, 3) voxel indices in the volume
    yaw_deg: np.ndarray  #: frame = Rz(yaw) Ry(pitch) Rx(roll), see :func:`rotation_matrix`
    pitch_deg: np.ndarray
    roll_deg: np.ndarray
    major_axis: np.ndarray  #: (n, 3) unit vector (x, y, z), x >= 0
    l1: np.ndarray  #: largest second-moment eigenvalue (voxel^2)
    l3: np.ndarray  #: smallest second-moment eigenvalue (voxel^2)
    n_filled: np.ndarray  #: voxels of the filled particle
    n_solid: np.ndarray  #: of those, voxels at or above the solid threshold
    e_density: np.ndarray  #: mean intensity over the filled particle
    homogeneity: np.ndarray  #: 1 / standard deviation of that intensity (inf when constant)


def particle_moments(mosaic: Mosaic, thr: float) -> Moments:
    """:class:`Moments` of each tile's filled particle; ``thr``: solid threshold (intensity units)."""
    k = kernels().mosaic
    sums = k.moment_sums_per_z(mosaic.filled, mosaic.img, np.float32(thr), TILE_PAD)
    c, sx, sxx, sy, syy, sxy, s_img, n_solid = sums.T
    zl = mosaic.local_z()
    tiles = mosaic.tile_sums
    cnt = tiles(c)
    mx, my, mz = tiles(sx) / cnt, tiles(sy) / cnt, tiles(zl * c) / cnt
    # + 1/12: the second moment of each voxel's own unit cube (continuous voxels, never singular)
    cov = np.empty((mosaic.n_tiles, 3, 3))
    cov[:, 0, 0] = tiles(sxx) / cnt - mx**2 + 1 / 12
    cov[:, 1, 1] = tiles(syy) / cnt - my**2 + 1 / 12
    cov[:, 2, 2] = tiles(zl**2 * c) / cnt - mz**2 + 1 / 12
    cov[:, 0, 1] = cov[:, 1, 0] = tiles(sxy) / cnt - mx * my
    cov[:, 0, 2] = cov[:, 2, 0] = tiles(zl * sx) / cnt - mx * mz
    cov[:, 1, 2] = cov[:, 2, 1] = tiles(zl * sy) / cnt - my * mz
    evals, frame = principal_frames(cov)
    yaw, pitch, roll = rotation_angles_deg(frame)

    # intensity: mean, standard deviation (two-pass)
    mean = tiles(s_img) / cnt
    var = tiles(k.squared_deviation_per_z(mosaic.filled, mosaic.img, mean[mosaic.tile_of_z])) / cnt
    sd = np.sqrt(np.maximum(var, 0))
    start = mosaic.starts[:, ::-1].astype(np.float64)  # (x, y, z)
    return Moments(
        centroid_xyz=np.stack([mx + start[:, 0], my + start[:, 1], mz + start[:, 2]], axis=1),
        yaw_deg=yaw,
        pitch_deg=pitch,
        roll_deg=roll,
        major_axis=frame[:, :, 0],
        l1=evals[:, 0],
        l3=evals[:, 2],
        n_filled=cnt,
        n_solid=tiles(n_solid),
        e_density=mean,
        homogeneity=np.where(sd > 0, 1.0 / np.where(sd > 0, sd, 1), np.inf),
    )


def principal_frames(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (n, 3), descending, and right-handed frames (n, 3, 3) with columns [major,
    intermediate, minor] of a stack of (n, 3, 3) covariances of (x, y, z), in canonical signs: the major
    axis has x >= 0 and the minor axis (major x intermediate) z >= 0, so the yaw, pitch and roll angles
    all lie in [-90, 90] degrees."""
    evals, evecs = np.linalg.eigh(cov)  # ascending
    evals = evals[:, ::-1]
    e1, e2 = evecs[:, :, 2].copy(), evecs[:, :, 1].copy()
    e1[e1[:, 0] < 0] *= -1
    e3 = np.cross(e1, e2)
    flip = e3[:, 2] < 0
    e2[flip] *= -1
    e3[flip] *= -1
    return evals, np.stack([e1, e2, e3], axis=2)


def rotation_angles_deg(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(yaw, pitch, roll) arrays in degrees of a stack of (n, 3, 3) frames ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``
    (columns in x, y, z)."""
    yaw = np.degrees(np.arctan2(frames[:, 1, 0], frames[:, 0, 0]))
    pitch = np.degrees(-np.arcsin(np.clip(frames[:, 2, 0], -1.0, 1.0)))
    roll = np.degrees(np.arctan2(frames[:, 2, 1], frames[:, 2, 2]))
    return yaw, pitch, roll


def rotation_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` acting on (x, y, z) column vectors (angles in degrees)."""
    a, b, c = (math.radians(t) for t in (yaw_deg, pitch_deg, roll_deg))
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rx = np.array([[1, 0, 0], [0, math.cos(c), -math.sin(c)], [0, math.sin(c), math.cos(c)]])
    return rz @ ry @ rx
