"""3D instance labels from the fused (view-averaged) probability and mean-ray-distance maps.

Two methods, both on (z, y, x) arrays at one resolution (lengths in pixels of that resolution):

``watershed`` (default, improves on the published recipe)
    foreground = fused probability above ``fg_threshold``, closed and hole-filled (cracks are inside
    particles, not background); seeds = h-maxima (dynamic >= ``h``) of the smoothed seed map, which is
    the fused probability by default (StarDist's probability is a learned, normalised distance to the
    particle boundary: it dips sharply at contacts between particles, where the mean ray distance
    only flattens) or the fused mean ray distance (``seed_map="dist"``, ``h`` in pixels); seeds need
    a mean ray distance of ``min_radius`` pixels; a seeded watershed on the negated seed map inside the
    foreground splits touching particles; each particle is then hole-filled on its own and tiny
    pieces are dropped. On the validation scans of the default model, probability seeds gave
    AP@0.5 0.92 where distance seeds gave 0.72 (merged neighbours).

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
    fg_threshold: float = 0.2  # on the mean of the view probabilities
    seed_map: str = "prob"  # "prob" (fused probability) | "dist" (fused mean ray distance)
    smooth_sigma: float = 1.0  # Gaussian sigma (px) applied to the seed map
    h: float = 0.1  # minimal dynamic of a seed, in units of the seed map (probability, or px for "dist")
    min_radius: float = 2.0  # seeds need a mean ray distance of at least this (px)
    merge_ratio: float = 0.0  # merge neighbours whose contact has a mean ray distance >= ratio x the smaller peak (0 = off)
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


def seeds_from_map(seed_map: np.ndarray, fg: np.ndarray, h: float, smooth_sigma: float = 1.0, min_height: np.ndarray | None = None) -> np.ndarray:
    """Seed labels at the h-maxima (dynamic >= ``h``) of the smoothed ``seed_map`` inside ``fg``.

    ``min_height``: optional boolean mask a seed must also lie in (e.g. mean ray distance >= r).
    """
    from scipy import ndimage
    from skimage.morphology import h_maxima

    m = ndimage.gaussian_filter(seed_map.astype(np.float32), smooth_sigma) if smooth_sigma > 0 else seed_map.astype(np.float32)
    m = np.where(fg, m, 0).astype(np.float32)
    peaks = h_maxima(m, h).astype(bool) & fg
    if min_height is not None:
        peaks &= min_height
    markers, _ = ndimage.label(peaks, structure=np.ones((3, 3, 3)))
    return markers


def seeds_from_distance(dist: np.ndarray, fg: np.ndarray, h: float, min_radius: float, smooth_sigma: float = 1.0) -> np.ndarray:
    """Seeds at the h-maxima of a distance map (``h`` and ``min_radius`` in pixels)."""
    return seeds_from_map(dist, fg, h, smooth_sigma, dist >= min_radius)


def fuse_watershed(prob: np.ndarray, dist: np.ndarray, cfg: FusionConfig = FusionConfig()) -> np.ndarray:
    """Seeded watershed fusion (see module doc). ``prob``, ``dist``: view means, (z, y, x)."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    fg = foreground_mask(prob, cfg.fg_threshold, cfg.closing_radius)
    if cfg.seed_map not in ("prob", "dist"):
        raise ValueError(f"seed_map must be 'prob' or 'dist', got {cfg.seed_map!r}")
    landscape = prob if cfg.seed_map == "prob" else dist
    markers = seeds_from_map(landscape, fg, cfg.h, cfg.smooth_sigma, dist >= cfg.min_radius)
    smooth = ndimage.gaussian_filter(landscape.astype(np.float32), cfg.smooth_sigma) if cfg.smooth_sigma > 0 else landscape
    labels = watershed(-smooth, markers, mask=fg).astype(np.uint32)
    if cfg.merge_ratio > 0:
        labels = merge_through_cracks(labels, ndimage.gaussian_filter(dist.astype(np.float32), cfg.smooth_sigma), cfg.merge_ratio)
    # foreground parts without any seed (tiny or flat blobs): keep as their own components
    rest, n_rest = ndimage.label(fg & (labels == 0))
    if n_rest:
        labels = np.where(rest > 0, rest.astype(np.uint32) + labels.max(), labels)
    labels = fill_holes_per_label(labels)
    return remove_small(labels, cfg.min_size).astype(np.uint32)


def boundary_pairs(labels: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face-adjacent voxel pairs with two different non-zero labels: ``(pairs (n, 2) sorted, mean value)``.

    Returns unique label pairs and the mean of ``values`` over their contact faces.
    """
    codes, vals = [], []
    base = int(labels.max()) + 1
    for ax in range(labels.ndim):
        a = np.moveaxis(labels, ax, 0)
        v = np.moveaxis(values, ax, 0)
        l0, l1 = a[:-1], a[1:]
        m = (l0 != l1) & (l0 > 0) & (l1 > 0)
        lo, hi = np.minimum(l0[m], l1[m]).astype(np.int64), np.maximum(l0[m], l1[m]).astype(np.int64)
        codes.append(lo * base + hi)
        vals.append(0.5 * (v[:-1][m] + v[1:][m]))
    codes = np.concatenate(codes)
    vals = np.concatenate(vals)
    if not codes.size:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    uniq, inv = np.unique(codes, return_inverse=True)
    mean = np.bincount(inv, weights=vals) / np.bincount(inv)
    return np.stack([uniq // base, uniq % base], 1), mean


def merge_through_cracks(labels: np.ndarray, dist: np.ndarray, ratio: float) -> np.ndarray:
    """Merge neighbouring regions that meet where the mean ray distance is still high.

    Two touching particles meet at a neck, where rays hit the boundary soon (mean ray distance well
    below either particle's peak); two halves of one cracked particle meet at the crack, where rays
    still reach the outer surface (mean ray distance close to the peak). Regions whose contact has a
    mean distance >= ``ratio`` x the smaller of their two peak distances are merged.
    """
    from scipy import ndimage

    n = int(labels.max())
    if n < 2:
        return labels
    pairs, contact = boundary_pairs(labels, dist)
    if not len(pairs):
        return labels
    peak = np.zeros(n + 1)
    peak[1:] = ndimage.maximum(dist, labels, index=np.arange(1, n + 1))
    merge = contact >= ratio * np.minimum(peak[pairs[:, 0]], peak[pairs[:, 1]])
    if not merge.any():
        return labels
    parent = np.arange(n + 1)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs[merge]:
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    lut = np.array([find(i) for i in range(n + 1)])
    return lut[labels].astype(labels.dtype)


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
