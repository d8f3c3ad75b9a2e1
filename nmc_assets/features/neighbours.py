"""Statistics of each particle's surroundings: local packing density and its nearest neighbours.

Centroids are (x, y, z) rows (x = volume axis 2, z = axis 0), in voxels for
:func:`local_packing_density` and in micrometres for :func:`neighbour_statistics`.
"""

from __future__ import annotations

import numpy as np

from nmc_assets.features._compiled import kernels


def local_packing_density(foreground: np.ndarray, centres_xyz_vox: np.ndarray, window_vox: float) -> np.ndarray:
    """Foreground fraction in a cube of side ``window_vox`` around each centre, clipped to the volume.

    ``foreground``: (z, y, x) bool mask, or a label volume (nonzero = foreground).

    One summed-area table (int32/int64, one more voxel per axis than the volume) answers every cube in
    O(1): 8 look-ups per particle.
    """
    lo, hi = packing_windows(centres_xyz_vox, window_vox, foreground.shape)
    return packing_density(window_counts(foreground, lo, hi), lo, hi)


def packing_windows(centres_xyz_vox: np.ndarray, window_vox: float, shape) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi): (n, 3) int64 voxel boxes (z, y, x; hi exclusive) of the cubes of side ``window_vox``
    voxels around the (n, 3) (x, y, z) centres (voxel indices), clipped to the volume ``shape``."""
    half = window_vox / 2.0
    zyx = centres_xyz_vox[:, ::-1]
    lo = np.clip(np.floor(zyx - half + 0.5).astype(np.int64), 0, np.array(shape))
    hi = np.clip(np.floor(zyx + half + 0.5).astype(np.int64) + 1, 0, np.array(shape))
    return lo, hi


def window_counts(foreground: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(n,) int64 count of nonzero voxels of the (z, y, x) array ``foreground`` in each box
    ``lo[i] : hi[i]`` ((n, 3) int64 voxel indices of ``foreground``, z, y, x; hi exclusive), the boxes
    clipped to the array. Counts over disjoint blocks of a volume add up to the volume's counts."""
    shape = np.array(foreground.shape)
    dtype = np.int32 if foreground.size < 2**31 else np.int64
    sat = np.zeros(tuple(s + 1 for s in foreground.shape), dtype=dtype)
    kernels().filters.summed_area_table(np.asarray(foreground), sat)
    z0, y0, x0 = np.clip(lo, 0, shape).T
    z1, y1, x1 = np.clip(hi, 0, shape).T
    total = (
        sat[z1, y1, x1] - sat[z0, y1, x1] - sat[z1, y0, x1] - sat[z1, y1, x0]
        + sat[z0, y0, x1] + sat[z0, y1, x0] + sat[z1, y0, x0] - sat[z0, y0, x0]
    )
    return total.astype(np.int64)


def packing_density(counts: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(n,) foreground fraction of each window from its (n,) voxel ``counts`` and (n, 3) box; 0 for an
    empty window."""
    size = np.prod((hi - lo).astype(np.float64), axis=1)
    return np.where(size > 0, counts.astype(np.float64) / np.maximum(size, 1), 0.0)


def neighbour_statistics(
    centroids_um: np.ndarray,
    elongation: np.ndarray,
    volume_um3: np.ndarray,
    major_axes: np.ndarray,
    n_neighbours: int = 6,
    *,
    sphericity: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """dist_nearest_um, elong_std, volume_std, orien_iso (and sphericity_std when ``sphericity`` is
    given) over the k nearest other particles (k-d tree); standard deviations with ddof 0.

    k = ``n_neighbours``, or every other particle when fewer exist; NaN for a single particle.
    ``orien_iso`` is the nematic order ``mean((3 cos^2 theta - 1) / 2)`` of the major axes.
    """
    from scipy.spatial import cKDTree

    n = len(centroids_um)
    k = min(n_neighbours, n - 1)
    if k < 1:
        nan = np.full(n, np.nan)
        out = {"dist_nearest_um": nan, "elong_std": nan.copy(), "volume_std": nan.copy(), "orien_iso": nan.copy()}
        if sphericity is not None:
            out["sphericity_std"] = nan.copy()
        return out
    dist, idx = cKDTree(centroids_um).query(centroids_um, k=k + 1)
    # drop self (distance 0); with duplicate centroids, remove the own index wherever it appears
    own = idx == np.arange(n)[:, None]
    keep = ~own
    keep[keep.sum(axis=1) > k, -1] = False
    dist = dist[keep].reshape(n, k)
    idx = idx[keep].reshape(n, k)
    cos = np.einsum("nd,nkd->nk", major_axes, major_axes[idx])
    out = {
        "dist_nearest_um": dist.mean(axis=1),
        "elong_std": elongation[idx].std(axis=1),
        "volume_std": volume_um3[idx].std(axis=1),
        "orien_iso": ((3.0 * cos**2 - 1.0) / 2.0).mean(axis=1),
    }
    if sphericity is not None:
        out["sphericity_std"] = sphericity[idx].std(axis=1)
    return out
