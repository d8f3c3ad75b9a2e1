"""Cracking one particle along its grain boundaries (docs/design.md §4 "Virtual beamline").

Given the particle's voxels and its grain labels (radial GBPD from :mod:`nmc_assets.particles.grains`),
the crack pattern is:

* a central void: voxels whose normalised radius (plus a smooth random perturbation) is below a
  threshold chosen so that the void takes a random share (``void_share``) of the target damage;
* a crack network: grain-boundary faces, grouped by grain pair, opened in order of a priority that
  favours boundaries near the particle centre (cracks in cycled NMC run from the core outward) plus
  randomness, each opened boundary widened to ``width_vox`` voxels (1-3).

The number of opened boundaries is found by bisection so that the realised crack + void fraction of the
particle matches the target damage as closely as voxels allow.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["grain_boundary_pairs", "crack_particle"]


def grain_boundary_pairs(grain: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boundary voxels of a grain label crop: (flat voxel indices, grain-pair key per voxel).

    A voxel is on a boundary when a face neighbour inside the particle has another grain label; the
    key is ``min(a, b) * (max_label + 1) + max(a, b)``. A voxel on several boundaries appears several times.
    """
    g = grain.astype(np.int64)
    n = int(g.max()) + 1
    idx_all = np.arange(g.size).reshape(g.shape)
    vox, keys = [], []
    for axis in range(g.ndim):
        a0 = [slice(None)] * g.ndim
        a1 = [slice(None)] * g.ndim
        a0[axis] = slice(None, -1)
        a1[axis] = slice(1, None)
        a0, a1 = tuple(a0), tuple(a1)
        m = inside[a0] & inside[a1] & (g[a0] != g[a1])
        lo, hi = g[a0][m], g[a1][m]
        key = np.minimum(lo, hi) * n + np.maximum(lo, hi)
        vox += [idx_all[a0][m], idx_all[a1][m]]
        keys += [key, key]
    if not vox:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(vox), np.concatenate(keys)


def _ball(radius: int) -> np.ndarray:
    r = int(radius)
    z, y, x = np.ogrid[-r:r + 1, -r:r + 1, -r:r + 1]
    return (z * z + y * y + x * x) <= r * r + 0.5


def _radialness(grain, inside, qnorm, vox, inv, ukeys, per_pair) -> np.ndarray:
    """Per grain pair: 1 - |cos| of the angle between the line joining the two grain centroids and the
    radial direction at the boundary (1 = radial boundary plane, 0 = tangential)."""
    g = grain.astype(np.int64)
    n = int(g.max()) + 1
    coords = np.stack(np.unravel_index(np.arange(g.size), g.shape), axis=1).astype(np.float64)
    flat_in = inside.ravel()
    gl = g.ravel()[flat_in]
    cnt = np.maximum(np.bincount(gl, minlength=n), 1)
    cen = np.stack([np.bincount(gl, weights=coords[flat_in, k], minlength=n) for k in range(3)], 1) / cnt[:, None]
    centre = coords[int(np.argmin(np.where(flat_in, qnorm.ravel(), np.inf)))]
    bpos = np.stack([np.bincount(inv, weights=coords[vox, k]) for k in range(3)], 1) / per_pair[:, None]
    radial = bpos - centre
    radial /= np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-9)
    a, b = ukeys // n, ukeys % n
    join = cen[b] - cen[a]
    join /= np.maximum(np.linalg.norm(join, axis=1, keepdims=True), 1e-9)
    return 1.0 - np.abs(np.sum(join * radial, axis=1))


def _min_filter(values: np.ndarray, radius: int) -> np.ndarray:
    return values if radius <= 0 else ndi.minimum_filter(values, footprint=_ball(radius), mode="nearest")


def crack_particle(rng: np.random.Generator, inside: np.ndarray, grain: np.ndarray, qnorm: np.ndarray,
                   target_damage: float, *, width_vox: int = 1, void_share: float = 0.3,
                   centre_bias: float = 3.0, radial_bias: float = 1.0,
                   core_width_vox: int | None = None) -> np.ndarray:
    """Boolean crack + void mask (subset of ``inside``) for one particle crop.

    inside: the particle's voxels; grain: grain labels in the crop (any ints; only read inside);
    qnorm: normalised radius |x - c| / r(direction) (0 at the centre, 1 at the shell);
    target_damage: wanted (crack + void voxels) / inside voxels; width_vox: crack half-width in voxels
    (0 -> 1-voxel cracks, 1 -> about 3 voxels); void_share: share of the target given to the central void.

    Central void: every voxel within ``core_width_vox`` of a grain boundary closer to the centre than
    q0, plus the blob ``q + smooth noise < q0 / 1.3`` -- a star-shaped hole whose arms follow the grain
    boundaries; q0 is the quantile that gives the void its share. Cracks: grain-pair boundaries ranked
    by priority (random + ``centre_bias`` x closeness to the centre); a voxel opens when a boundary of
    rank < k lies within ``width_vox``; k is read off the sorted per-voxel minimum rank. Both steps use
    one minimum filter each, so the target is met exactly up to ties, without trial dilations.
    """
    n_in = int(inside.sum())
    out = np.zeros(inside.shape, dtype=bool)
    if n_in == 0 or target_damage <= 0:
        return out
    target = int(round(target_damage * n_in))
    if target <= 0:
        return out
    vox, keys = grain_boundary_pairs(grain, inside)
    on_boundary = np.zeros(inside.size, dtype=bool)
    on_boundary[vox] = True
    on_boundary = on_boundary.reshape(inside.shape)
    big = np.float32(1e9)
    # central void
    n_void = int(round(np.clip(void_share, 0.0, 1.0) * target))
    if n_void > 0:
        core_w = width_vox + 1 if core_width_vox is None else core_width_vox
        pert = ndi.gaussian_filter(rng.standard_normal(inside.shape).astype(np.float32), 2.0)
        pert *= np.float32(0.12 / max(float(pert.std()), 1e-6))
        q_near_boundary = _min_filter(np.where(on_boundary, qnorm, big).astype(np.float32), core_w)
        score = np.minimum(q_near_boundary, 1.3 * (qnorm + pert))[inside]
        k = min(n_void, score.size) - 1
        thr = np.partition(score, k)[k]
        out[inside] = score <= thr
    remaining = target - int(out.sum())
    if remaining <= 0 or vox.size == 0:
        return out
    ukeys, inv = np.unique(keys, return_inverse=True)
    per_pair = np.bincount(inv)
    mean_q = np.bincount(inv, weights=qnorm.ravel()[vox]) / per_pair
    priority = rng.random(ukeys.size) + centre_bias * (1.0 - np.clip(mean_q, 0, 1))
    if radial_bias > 0:
        priority += radial_bias * _radialness(grain, inside, qnorm, vox, inv, ukeys, per_pair)
    rank = np.empty(ukeys.size, dtype=np.float32)
    rank[np.argsort(-priority, kind="stable")] = np.arange(ukeys.size, dtype=np.float32)
    rank_field = np.full(inside.size, big, dtype=np.float32)
    np.minimum.at(rank_field, vox, rank[inv])
    min_rank = _min_filter(rank_field.reshape(inside.shape), width_vox)
    free = inside & ~out
    cand = min_rank[free]
    cand = cand[cand < big]
    if cand.size == 0:
        return out
    if cand.size <= remaining:
        out |= free & (min_rank < big)
        return out
    kth = np.partition(cand, remaining - 1)[remaining - 1]
    out |= free & (min_rank <= kth)
    return out
