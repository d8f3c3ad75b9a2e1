"""Grains from an orientation map: neighbour disorientations with each phase's crystal symmetry, a
threshold, connected components, a minimum grain size, and optional filling of the points left over
(weighted majority of the neighbouring grains, or the nearest grain).

Two 4-neighbours are in one grain when both are indexed, of the same phase, and their disorientation (the
smallest rotation angle between them over the phase's proper rotation group, orix ``Orientation.angle_with``)
is at most ``threshold_deg``. Grains are the connected components of that graph
(``scipy.sparse.csgraph.connected_components``), numbered 1..N in row-major order of their first point,
as DefDAP's flood fill numbers them; components smaller than ``min_grain_size`` points are not grains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nmc_assets.ebsd.maps import EbsdError, EbsdMap
from nmc_assets.settings import setting

__all__ = ["GrainSettings", "quality_mask", "neighbour_disorientations", "neighbour_connected", "rebuild_grains",
           "fill_from_neighbours", "join_by_orientation"]


@dataclass(frozen=True)
class GrainSettings:
    """How grains are rebuilt from an orientation map."""

    threshold_deg: float = setting(5.0, "disorientation (deg) above which two neighbouring points lie in different grains")
    min_grain_size: int = setting(10, "grains with fewer points are not grains (their points are filled from neighbours in sections)")
    min_confidence: float = setting(0.1, "TSL .ang: points with a confidence index below this are treated as not indexed (0 = off)")
    max_mad_deg: float = setting(0.0, "Oxford: points with a mean angular deviation above this (deg) are not indexed (0 = off)")
    min_band_contrast: float = setting(0.0, "Oxford: points with a band contrast below this are not indexed (0 = off)")

    def __post_init__(self) -> None:
        if not 0 < self.threshold_deg < 180:
            raise ValueError(f"threshold_deg must be in (0, 180), got {self.threshold_deg}")
        if self.min_grain_size < 0:
            raise ValueError(f"min_grain_size must be >= 0, got {self.min_grain_size}")


def quality_mask(m: EbsdMap, s: GrainSettings) -> np.ndarray:
    """(rows, cols) bool: indexed points that pass the quality thresholds the map has figures for."""
    keep = m.indexed.copy()
    if s.min_confidence > 0 and "ci" in m.quality:
        keep &= np.nan_to_num(m.quality["ci"], nan=-1) >= s.min_confidence
    if s.max_mad_deg > 0 and "mad" in m.quality:
        keep &= np.nan_to_num(m.quality["mad"], nan=np.inf) <= s.max_mad_deg
    if s.min_band_contrast > 0 and "bc" in m.quality:
        keep &= np.nan_to_num(m.quality["bc"], nan=0) >= s.min_band_contrast
    return keep


def neighbour_disorientations(m: EbsdMap, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Disorientation angles (deg) to the right neighbour (rows, cols-1) and to the neighbour below
    (rows-1, cols); ``inf`` where either point is not kept (default: not indexed) or the phases differ."""
    keep = m.indexed if keep is None else keep
    out = []
    for axis in (1, 0):
        a, b = _pairs(axis)
        ang = np.full(keep[a].shape, np.inf)
        same = keep[a] & keep[b] & (m.phase_id[a] == m.phase_id[b])
        for pid, phase in m.phases.items():
            sel = same & (m.phase_id[a] == pid)
            if not sel.any():
                continue
            from orix.quaternion import Orientation

            sym = phase.symmetry()
            o1 = Orientation.from_euler(m.euler_rad[a][sel], symmetry=sym)
            o2 = Orientation.from_euler(m.euler_rad[b][sel], symmetry=sym)
            ang[sel] = o1.angle_with(o2, degrees=True)
        out.append(ang)
    return out[0], out[1]


def _pairs(axis: int):
    a = [slice(None), slice(None)]
    b = [slice(None), slice(None)]
    a[axis], b[axis] = slice(0, -1), slice(1, None)
    return tuple(a), tuple(b)


def neighbour_connected(m: EbsdMap, keep: np.ndarray, threshold_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Whether each point is in one grain with its right neighbour (rows, cols-1) and with the one below
    (rows-1, cols): both kept, same phase, disorientation <= ``threshold_deg``. Same answer as thresholding
    :func:`neighbour_disorientations`, faster: the plain misorientation of the two stored orientations is an
    upper bound of the disorientation, so only pairs above the threshold by it go through the symmetry."""
    from orix.quaternion import Orientation, Rotation

    q = Rotation.from_euler(m.euler_rad.reshape(-1, 3)).data.reshape(m.shape + (4,))
    cos_half = np.cos(np.radians(threshold_deg) / 2)
    out = []
    for axis in (1, 0):
        a, b = _pairs(axis)
        same = keep[a] & keep[b] & (m.phase_id[a] == m.phase_id[b])
        near = same & (np.abs(np.einsum("...c,...c->...", q[a], q[b])) >= cos_half)
        for pid, phase in m.phases.items():
            sel = same & ~near & (m.phase_id[a] == pid)
            if sel.any():
                sym = phase.symmetry()
                ang = Orientation(q[a][sel], symmetry=sym).angle_with(Orientation(q[b][sel], symmetry=sym), degrees=True)
                near[sel] = ang <= threshold_deg
        out.append(near)
    return out[0], out[1]


def rebuild_grains(m: EbsdMap, settings: GrainSettings | None = None, keep: np.ndarray | None = None) -> np.ndarray:
    """Grain labels (rows, cols) int32: 0 = no grain (not indexed, low quality, or a grain smaller than
    ``min_grain_size``), 1..N grains in row-major order of their first point."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    s = settings or GrainSettings()
    keep = quality_mask(m, s) if keep is None else keep
    if not keep.any():
        raise EbsdError(m.source, "no point left to build grains from (all unindexed or below the quality thresholds)")
    rows, cols = m.shape
    idx = np.arange(rows * cols).reshape(rows, cols)
    ex, ey = neighbour_connected(m, keep, s.threshold_deg)
    src = np.concatenate([idx[:, :-1][ex], idx[:-1, :][ey]])
    dst = np.concatenate([idx[:, 1:][ex], idx[1:, :][ey]])
    graph = coo_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(rows * cols, rows * cols))
    _, comp = connected_components(graph, directed=False)
    comp = np.where(keep.ravel(), comp, -1)
    ids, first, counts = np.unique(comp, return_index=True, return_counts=True)
    good = (ids >= 0) & (counts >= max(s.min_grain_size, 1))
    order = np.argsort(first[good], kind="stable")
    lut = np.zeros(len(ids), np.int32)
    lut[np.flatnonzero(good)[order]] = np.arange(1, good.sum() + 1, dtype=np.int32)
    return lut[np.searchsorted(ids, comp)].reshape(rows, cols)


def fill_from_neighbours(labels: np.ndarray, region: np.ndarray, method: str = "majority", radius_px: int = 2) -> np.ndarray:
    """``labels`` with every 0 inside ``region`` (bool, same shape) given a grain; outside ``region`` everything is 0.

    ``majority`` (default): each point takes the grain with the largest vote among the labelled points within
    ``radius_px`` (Euclidean; votes weighted 1 / distance^2), repeated from the edges of the gaps inwards until
    every point is filled (DREAM.3D "Fill Bad Data", OIM "grain dilation"). ``nearest``: the nearest grain
    (``scipy.ndimage.distance_transform_edt``; a point between two grains goes to whichever the transform's
    tie-break picks, so gaps along boundaries are split at random: ragged boundaries).
    """
    from scipy import ndimage as ndi

    if method not in ("majority", "nearest"):
        raise ValueError(f"fill method must be 'majority' or 'nearest', got {method!r}")
    if not (labels > 0).any():
        return np.zeros_like(labels)
    lab = np.where(region, labels, 0)
    if method == "majority":
        lab = _majority_fill(lab, region, max(int(radius_px), 1))
    if (region & (lab == 0)).any():  # gaps no vote reached (e.g. a particle part without a labelled point)
        _, (ri, ci) = ndi.distance_transform_edt(lab == 0, return_indices=True)
        lab = lab[ri, ci]
    return np.where(region, lab, 0).astype(labels.dtype)


def _window(radius: int) -> list[tuple[int, int]]:
    """(row, col) offsets of the points within ``radius`` (Euclidean), the centre excluded."""
    return [(dr, dc) for dr in range(-radius, radius + 1) for dc in range(-radius, radius + 1)
            if (dr or dc) and dr * dr + dc * dc <= radius * radius]


def _neighbour_labels(lab: np.ndarray, r: np.ndarray, c: np.ndarray, offsets) -> np.ndarray:
    """(n, k) labels at ``offsets`` around the points (r, c) (0 beyond the map)."""
    pad = max(max(abs(dr), abs(dc)) for dr, dc in offsets)
    padded = np.pad(lab, pad)
    return np.stack([padded[r + pad + dr, c + pad + dc] for dr, dc in offsets], axis=1)


def join_by_orientation(m: EbsdMap, grains: np.ndarray, points: np.ndarray, grain_quats: np.ndarray,
                        grain_phase: np.ndarray, threshold_deg: float, radius_px: int = 2) -> np.ndarray:
    """``grains`` with each indexed point of ``points`` (bool; e.g. indexed but below the quality thresholds)
    joined to the grain within ``radius_px`` whose mean orientation (``grain_quats`` (N, 4), orix convention;
    ``grain_phase`` (N,)) is closest to the point's own, when of the same phase and within ``threshold_deg``
    (disorientation under the phase's symmetry): a low-confidence point that still carries its grain's
    orientation stays in its grain (OIM's neighbour orientation correlation); misindexed points stay out."""
    from orix.quaternion import Orientation

    out = grains.copy()
    r, c = np.nonzero(points & m.indexed & (grains == 0))
    if len(r) == 0 or grains.max() == 0:
        return out
    cand = _neighbour_labels(grains, r, c, _window(max(int(radius_px), 1)))
    keys = np.unique(np.arange(len(r))[:, None] * (int(grains.max()) + 1) + cand, axis=None)
    pt, g = np.divmod(keys, int(grains.max()) + 1)
    keep = (g > 0) & (grain_phase[np.maximum(g, 1) - 1] == m.phase_id[r[pt], c[pt]])
    pt, g = pt[keep], g[keep]
    angle = np.full(len(pt), np.inf)
    for pid, phase in m.phases.items():
        sel = grain_phase[g - 1] == pid
        if sel.any():
            sym = phase.symmetry()
            o1 = Orientation.from_euler(m.euler_rad[r[pt[sel]], c[pt[sel]]], symmetry=sym)
            angle[sel] = o1.angle_with(Orientation(grain_quats[g[sel] - 1], symmetry=sym), degrees=True)
    ok = angle <= threshold_deg
    pt, g, angle = pt[ok], g[ok], angle[ok]
    order = np.lexsort((angle, pt))  # per point, the closest grain first
    first = order[np.unique(pt[order], return_index=True)[1]]
    out[r[pt[first]], c[pt[first]]] = g[first]
    return out


def _majority_fill(lab: np.ndarray, region: np.ndarray, radius: int, max_rounds: int = 1000) -> np.ndarray:
    """Fill the 0s of ``region`` by weighted votes of labelled points within ``radius``, in rounds."""
    offsets = _window(radius)
    weight = np.array([1.0 / (dr * dr + dc * dc) for dr, dc in offsets])
    lab = lab.astype(np.int64)
    todo = region & (lab == 0)
    for _ in range(max_rounds):
        if not todo.any():
            break
        r, c = np.nonzero(todo)
        votes = _neighbour_labels(lab, r, c, offsets)  # (n, k)
        best = _weighted_mode(votes, weight)
        ok = best > 0
        if not ok.any():
            break
        lab[r[ok], c[ok]] = best[ok]
        todo[r[ok], c[ok]] = False
    return lab


def _weighted_mode(votes: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per row of ``votes`` (n, k) labels (0 = no vote), the label with the largest summed ``weight`` (k,);
    ties go to the smaller label; 0 for rows without votes."""
    n, k = votes.shape
    row = np.repeat(np.arange(n), k)
    val = votes.ravel()
    keep = val > 0
    best = np.zeros(n, np.int64)
    if not keep.any():
        return best
    base = int(val.max()) + 1
    keys, inv = np.unique(row[keep] * base + val[keep], return_inverse=True)
    total = np.bincount(inv, np.tile(weight, n)[keep])
    key_row, key_val = np.divmod(keys, base)
    order = np.lexsort((key_val, -total, key_row))  # per row: largest weight first, then smaller label
    first = order[np.unique(key_row[order], return_index=True)[1]]
    best[key_row[first]] = key_val[first]
    return best
