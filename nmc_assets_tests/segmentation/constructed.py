"""Constructed volumes for segmentation tests: balls, touching balls, cracked balls, with their maps."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def ball_labels(shape, centers, radii) -> np.ndarray:
    """uint32 labels of balls (later balls overwrite earlier ones where they overlap)."""
    g = np.indices(shape, dtype=np.float32)
    lab = np.zeros(shape, np.uint32)
    for i, (c, r) in enumerate(zip(centers, radii), start=1):
        d2 = sum((g[a] - c[a]) ** 2 for a in range(3))
        lab[d2 <= r * r] = i
    return lab


def ideal_maps(labels: np.ndarray, solid: np.ndarray | None = None, mouth_px: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """What a StarDist model trained on filled particles predicts: prob = normalised per-object EDT,
    dist = per-object EDT (px), both from the *filled* labels.

    ``solid`` (bool): crack voxels within ``mouth_px`` of the outer surface (the crack's mouth) are
    seen as background (prob 0); deeper crack voxels keep the filled-particle probability, as the
    default model does on virtual scans (its median probability in cracks is 0.75 vs 0.59 in solid).
    """
    dist = np.zeros(labels.shape, np.float32)
    prob = np.zeros(labels.shape, np.float32)
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        sl = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in sl)
        m = labels[sl] == i
        e = ndimage.distance_transform_edt(m).astype(np.float32)
        dist[sl][m] = e[m]
        prob[sl][m] = e[m] / e.max()
    if solid is not None:
        mouth = (labels > 0) & ~solid & (dist <= mouth_px)
        prob = np.where(mouth, 0, prob)
    return prob, dist


def noisy(a: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return (a + np.random.default_rng(seed).normal(0, sigma, a.shape)).astype(np.float32)


def phantom_image(labels: np.ndarray, solid: np.ndarray | None = None, noise: float = 0.08, seed: int = 0) -> np.ndarray:
    """A tomogram-like image: bright solid, dark background and cracks, blurred, with noise (float32)."""
    s = labels > 0 if solid is None else solid
    img = np.where(s, 0.8, 0.2).astype(np.float32)
    img = ndimage.gaussian_filter(img, 1.0)
    return noisy(img, noise, seed)


def crack(labels: np.ndarray, label: int, normal=(0.0, 0.3, 1.0), width: float = 1.0, open_to_surface: bool = False) -> np.ndarray:
    """Solid mask with a planar crack through the centre of ``label``.

    The crack stays 2 px short of the surface, or (``open_to_surface``) reaches it on one side.
    """
    m = labels == label
    c = np.array(ndimage.center_of_mass(m))
    g = np.indices(labels.shape, dtype=np.float32)
    n = np.asarray(normal, np.float32) / np.linalg.norm(normal)
    plane = np.abs(sum((g[a] - c[a]) * n[a] for a in range(3))) <= width / 2
    region = m if open_to_surface else ndimage.binary_erosion(m, iterations=2)
    if open_to_surface:  # only the half on one side of the centre (a crack from the surface inwards)
        t = np.cross(n, [1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.cross(n, [0.0, 1.0, 0.0])
        region = region & (sum((g[a] - c[a]) * t[a] for a in range(3)) > -2)
    return (labels > 0) & ~(plane & region)


def packed_balls(shape, n: int, r_range=(6, 10), seed: int = 0, touch: float = 0.9) -> np.ndarray:
    """Random balls that may touch slightly (centre distance >= touch * (r1 + r2)), as uint32 labels."""
    rng = np.random.default_rng(seed)
    centers, radii = [], []
    tries = 0
    while len(centers) < n and tries < 5000:
        tries += 1
        r = rng.uniform(*r_range)
        c = rng.uniform(0, 1, 3) * np.array(shape)
        if all(np.linalg.norm(c - c2) >= touch * (r + r2) for c2, r2 in zip(centers, radii)):
            centers.append(c)
            radii.append(r)
    return ball_labels(shape, centers, radii)


def phantom_scan(shape=(48, 96, 96), n: int = 40, seed: int = 0, cracked: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(image, labels): packed balls with a crack in every other one, rendered with blur and noise."""
    labels = packed_balls(shape, n, seed=seed)
    solid = labels > 0
    if cracked:
        rng = np.random.default_rng(seed + 1)
        for i in range(1, int(labels.max()) + 1, 2):
            if (labels == i).sum() > 500:
                solid &= crack(labels, i, normal=rng.normal(size=3), width=1.5)
    return phantom_image(labels, solid, noise=0.06, seed=seed), labels


def write_view_maps(path, probs: dict, dist, *, bin_factor: int, full_shape, voxel_size_um: float):
    """A view-map store as :mod:`nmc_assets.segmentation.views` writes it (plain Zarr arrays): ``probs``
    maps view ("xy", "xz", "yz") -> binned probability, ``dist`` one binned distance map used for every view."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    for view, prob in probs.items():
        for name, a in ((f"prob_{view}", prob), (f"dist_{view}", dist)):
            root.create_array(name, data=np.asarray(a, np.float16), chunks=a.shape)
    binned = tuple(np.asarray(dist).shape)
    root.attrs.update({"views": list(probs), "binned_shape": list(binned), "full_shape": [int(s) for s in full_shape],
                       "bin_factor": int(bin_factor), "voxel_size_um": float(voxel_size_um),
                       "pixel_um": float(voxel_size_um) * bin_factor})
    return path
