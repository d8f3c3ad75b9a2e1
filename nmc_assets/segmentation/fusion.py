"""3D instance labels from the fused (view-averaged) probability and mean-ray-distance maps.

Two methods, both on (z, y, x) arrays at one resolution (lengths in pixels of that resolution):

``watershed`` (default, improves on the published recipe)
    foreground = fused probability above ``fg_threshold``, closed and hole-filled (cracks are inside
    particles, not background); seeds = h-maxima of the smoothed fused distance map (a seed needs a
    dynamic of ``h`` pixels and ``min_radius`` height); seeded watershed on the negated distance map
    inside the foreground splits touching particles; each particle is then hole-filled on its own
    (a crack cut into its surface stays inside it) and tiny pieces are dropped.

``kmeans`` (Li et al. 2022, ``viewFusion.m``)
    k-means (5 classes) on the voxel values of the summed distance maps, everything above the lowest
    class is foreground, 3D connected components, small components dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FusionConfig:
    method: str = "watershed"  # "watershed" | "kmeans"
    fg_threshold: float = 0.25  # on the mean of the view probabilities
    smooth_sigma: float = 1.0  # Gaussian sigma (px) applied to the distance map before seeding
    h: float = 1.5  # minimal dynamic (px of mean ray distance) of a seed
    min_radius: float = 3.0  # seeds need a mean ray distance of at least this (px)
    min_size: int = 64  # components with fewer voxels are dropped
    closing_radius: int = 1  # foreground closing (px) before hole filling
    kmeans_classes: int = 5
    seed: int = 0


def _ball(r: int) -> np.ndarray:
    g = np.mgrid[tuple(slice(-r, r + 1) for _ in range(3))]
    return (g**2).sum(0) <= r * r


def fill_holes_per_label(labels: np.ndarray) -> np.ndarray:
    """Fill enclosed holes of every label separately (in its bounding box), only into background voxels."""
    from scipy import ndimage

    out = labels.copy()
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        crop = out[sl]
        filled = ndimage.binary_fill_holes(crop == i)
        crop[filled & (crop == 0)] = i
    return out


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Drop labels with fewer than ``min_size`` voxels and renumber 1..n (order of first appearance)."""
    from skimage.segmentation import relabel_sequential

    if labels.max() == 0:
        return labels
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    if small.any():
        labels = np.where(small[labels], 0, labels)
    return relabel_sequential(labels)[0]


def foreground_mask(prob: np.ndarray, threshold: float, closing_radius: int = 1) -> np.ndarray:
    """Binary foreground: probability above threshold, closed, 3D-hole-filled."""
    from scipy import ndimage

    fg = prob > threshold
    if closing_radius > 0:
        fg = ndimage.binary_closing(fg, structure=_ball(closing_radius), border_value=0) | fg
    return ndimage.binary_fill_holes(fg)


def seeds_from_distance(dist: np.ndarray, fg: np.ndarray, h: float, min_radius: float, smooth_sigma: float = 1.0) -> np.ndarray:
    """Seed labels at the h-maxima (dynamic >= ``h``) of the smoothed distance map, inside ``fg``."""
    from scipy import ndimage
    from skimage.morphology import h_maxima

    d = ndimage.gaussian_filter(dist, smooth_sigma) if smooth_sigma > 0 else dist
    d = np.where(fg, d, 0).astype(np.float32)
    peaks = h_maxima(d, h).astype(bool) & fg & (d >= min_radius)
    markers, _ = ndimage.label(peaks, structure=np.ones((3, 3, 3)))
    return markers


def fuse_watershed(prob: np.ndarray, dist: np.ndarray, cfg: FusionConfig = FusionConfig()) -> np.ndarray:
    """Seeded watershed fusion (see module doc). ``prob``, ``dist``: view means, (z, y, x)."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    fg = foreground_mask(prob, cfg.fg_threshold, cfg.closing_radius)
    markers = seeds_from_distance(dist, fg, cfg.h, cfg.min_radius, cfg.smooth_sigma)
    d = ndimage.gaussian_filter(dist, cfg.smooth_sigma) if cfg.smooth_sigma > 0 else dist
    labels = watershed(-d, markers, mask=fg).astype(np.uint32)
    # foreground parts without any seed (tiny or flat blobs): keep as their own components
    rest, n_rest = ndimage.label(fg & (labels == 0))
    if n_rest:
        labels = np.where(rest > 0, rest.astype(np.uint32) + labels.max(), labels)
    labels = fill_holes_per_label(labels)
    return remove_small(labels, cfg.min_size).astype(np.uint32)


def fuse_kmeans(dist_sum: np.ndarray, cfg: FusionConfig = FusionConfig()) -> np.ndarray:
    """The published recipe: k-means classes of the summed distance map, components above the lowest class."""
    from scipy import ndimage
    from sklearn.cluster import KMeans

    v = dist_sum.ravel()
    rng = np.random.default_rng(cfg.seed)
    sample = v[rng.choice(v.size, size=min(v.size, 200_000), replace=False)].reshape(-1, 1)
    km = KMeans(n_clusters=cfg.kmeans_classes, n_init=4, random_state=cfg.seed).fit(sample)
    centers = np.sort(km.cluster_centers_.ravel())
    threshold = 0.5 * (centers[0] + centers[1])
    labels, _ = ndimage.label(dist_sum > threshold, structure=np.ones((3, 3, 3)))
    return remove_small(labels.astype(np.uint32), cfg.min_size).astype(np.uint32)


def fuse(prob: np.ndarray, dist: np.ndarray, cfg: FusionConfig = FusionConfig()) -> np.ndarray:
    """Dispatch on ``cfg.method``; ``prob``/``dist`` are the view means (kmeans uses 3 x dist as the sum)."""
    if prob.shape != dist.shape:
        raise ValueError(f"probability {prob.shape} and distance {dist.shape} maps differ in shape")
    if cfg.method == "watershed":
        return fuse_watershed(prob, dist, cfg)
    if cfg.method == "kmeans":
        return fuse_kmeans(3 * dist, cfg)
    raise ValueError(f"unknown fusion method {cfg.method!r}: use 'watershed' or 'kmeans'")
