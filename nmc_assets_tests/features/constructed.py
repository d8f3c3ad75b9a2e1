"""Constructed volumes with known geometry for the feature tests."""

from __future__ import annotations

import numpy as np

from nmc_assets.features.moments import rotation_matrix


def ball_mask(shape, centre_zyx, radius) -> np.ndarray:
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    c = centre_zyx
    return (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= radius**2


def ellipsoid_mask(shape, centre_zyx, semi_axes, yaw=0.0, pitch=0.0, roll=0.0) -> np.ndarray:
    """Ellipsoid whose semi-axes (a, b, c) lie along the columns of Rz(yaw) Ry(pitch) Rx(roll)."""
    rot = rotation_matrix(yaw, pitch, roll)
    zz, yy, xx = np.meshgrid(*(np.arange(s, dtype=float) for s in shape), indexing="ij")
    p = np.stack([xx - centre_zyx[2], yy - centre_zyx[1], zz - centre_zyx[0]], axis=-1)
    q = p @ rot  # coordinates in the ellipsoid's frame
    a, b, c = semi_axes
    return (q[..., 0] / a) ** 2 + (q[..., 1] / b) ** 2 + (q[..., 2] / c) ** 2 <= 1.0


def phase_image(solid: np.ndarray, *, solid_value=1.0, background=0.2, blur=0.0, noise=0.0, seed=0) -> np.ndarray:
    """Phase-like intensity: solid_value in solid voxels, background elsewhere, optional blur and noise."""
    from scipy import ndimage

    img = np.where(solid, solid_value, background).astype(np.float32)
    if blur > 0:
        img = ndimage.gaussian_filter(img, blur)
    if noise > 0:
        img = img + np.random.default_rng(seed).normal(0, noise, img.shape).astype(np.float32)
    return img


def crowded_scene() -> tuple[np.ndarray, np.ndarray]:
    """(labels uint16, intensity float32) of a (56, 60, 64) scene: five anisotropic ellipsoids (so their
    orientations are well defined), two of them touching, two cut by the volume border, one with a crack
    and one with a void; blurred, noisy intensity."""
    shape = (56, 60, 64)
    labels = np.zeros(shape, np.uint16)
    for label, centre, axes, angles in [
        (4, (18, 18, 18), (11, 8, 6), (20, 10, 5)),
        (9, (18, 34, 20), (10, 7, 5.5), (-35, 15, 60)),
        (15, (38, 38, 44), (15, 9, 6), (30, 20, 40)),
        (2, (50, 8, 58), (9, 6, 4.5), (60, -20, 10)),
        (21, (6, 52, 8), (12, 7, 5), (-10, 30, -25)),
    ]:
        labels[ellipsoid_mask(shape, centre, axes, *angles)] = label
    solid = labels > 0
    solid[36:40, 36:44, 40:48] = False  # a crack through particle 15
    solid[17:20, 16:20, 16:19] = False  # a void inside particle 4
    return labels, phase_image(solid, blur=0.8, noise=0.04, seed=2)
