"""The ``li2022`` feature set: the attributes as ``getAllFeatures.m`` (Li et al., Science 2022) computes them.

Input: ``(z, y, x)`` instance labels of filled particles and the tomogram; the seed's ``Seg`` (the
*solid* label volume, cracks and voids = 0) is ``labels`` where ``intensity >= solid_threshold``. Every
attribute then follows the seed's code, in the seed's voxel units converted to the column's unit
(counts x voxel^2 or voxel^3, positions x voxel_size_um; a pure scale), with its outright bugs fixed
(:data:`FIXED_BUGS`). docs/features.md gives each definition beside the default set's.

Speed: one ``find_objects`` pass; per particle only its own crops (the seed builds a whole-volume mask
per particle); closing and dilation by a ball of radius r are exact Euclidean distance thresholds
(the ``edt`` package's squared distance transform); moments by ``bincount`` over all particles at once; the packing-density
boxes from one summed-area table; neighbours from a k-d tree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from nmc_assets.features.moments import principal_frames, rotation_angles_deg
from nmc_assets.features.neighbours import window_counts

#: Radius (voxels) of the seed's ``strel('sphere', 10)`` used for closing and for the contact ring.
BALL_RADIUS_VOX = 10
#: Half-width (um) of the seed's neighbourhood box ``radiusCube = round(10000 / pixelsize_nm)``.
CUBE_HALF_UM = 10.0
#: Neighbour statistics use this many nearest centroids (the seed's ``numNeighbor``).
N_NEIGHBOURS = 6

#: The seed's outright bugs and what this set does instead (docs/features.md lists them too).
FIXED_BUGS: dict[str, str] = {
    "neighbour_std": "locVolume, locElongation, locOri, locSphericity are std of one value (all 0) because "
    "`allfeatures(index).X` with a vector index yields its first element only, and `index` indexes the "
    "distance list without the particle itself: here the std (N-1, as MATLAB) over the 6 nearest particles",
    "rough_inner_nan": "RoughInner is 0/0 = NaN when a particle has no inner surface: here 1 (nothing to smooth)",
    "crop_past_array": "the crop `x_l:x_r` with x_r = bbox end + 1 indexes past the array for particles at the "
    "upper faces: here clipped to the volume",
    "p_density_normalisation": "PDensity divides the occupied voxels of the box by the box's voxels inside the "
    "volume shrunk by radiusCube (can exceed 1, or divide by 0, near the edges): here by the box's voxels",
    "crop_closing": "imclose runs on the bounding-box crop, and MATLAB pads erosion with 1, so the closing fills "
    "the box's corners (emulating that padding, an intact ball of radius 16 voxels gets Damage 0.34); medfilt3's symmetric padding "
    "mirrors the particle at the crop's lower faces but not at the upper ones (the crop is one voxel longer "
    "there); the contact ring's closing runs on another crop and can differ: here every closing, median and "
    "perimeter sees the particle alone in empty space (zero outside), once",
    "zero_intensity_dropped": "EDensity/Homogeneity drop voxels whose intensity is exactly 0 (`Data~=0`): here "
    "every voxel of the filled particle counts",
}


def solid_labels(labels: np.ndarray, intensity: np.ndarray, threshold: float) -> np.ndarray:
    """The seed's ``Seg``: ``labels`` where ``intensity >= threshold``, else 0 (cracks and voids)."""
    return np.where(intensity >= threshold, labels, 0).astype(labels.dtype, copy=False)


def _edt_sq(mask: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance (voxels^2, exact integers in float32) of every voxel to the nearest
    False voxel of the array (outside the array does not count)."""
    import edt

    return edt.edtsq(np.ascontiguousarray(mask).view(np.uint8), black_border=False, parallel=1)


def ball_dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Dilation by the ball of radius ``r`` voxels (``x^2 + y^2 + z^2 <= r^2``), outside the array = 0."""
    if not mask.any():
        return mask.copy()
    return _edt_sq(~mask) <= r * r


def ball_erode(mask: np.ndarray, r: int) -> np.ndarray:
    """Erosion by the ball of radius ``r`` voxels, outside the array = 1 (MATLAB's padding for erosion)."""
    if mask.all():
        return mask.copy()
    return _edt_sq(mask) > r * r


_CROSS = ndimage.generate_binary_structure(3, 1)


def perimeter_count(mask: np.ndarray) -> int:
    """``sum(bwperim(mask))``: voxels with a 6-neighbour outside the mask (outside the array = 0)."""
    return int(mask.sum()) - int(ndimage.binary_erosion(mask, _CROSS, border_value=0).sum())


def median3(mask: np.ndarray) -> np.ndarray:
    """``medfilt3(mask)``: 3x3x3 median of a binary mask (majority of 27), outside the array = 0."""
    count = mask.astype(np.uint8)
    for axis in range(3):  # the 27-voxel sum as three 3-voxel sums (at most 27: fits uint8)
        count = ndimage.correlate1d(count, np.ones(3, np.uint8), axis=axis, mode="constant")
    return count >= 14


def seed_crop(first: np.ndarray, last: np.ndarray, shape, margin: int = 0) -> tuple[slice, ...]:
    """The seed's crop ``l:r`` (inclusive) with l = the bbox's first voxel, r = its last voxel + 1,
    grown by ``margin`` and clipped to the volume (the seed indexes past it), as slices."""
    lo = np.maximum(np.asarray(first) - margin, 0)
    hi = np.minimum(np.asarray(last) + 2 + margin, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _slices(lo, hi) -> tuple[slice, ...]:
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def particle_attributes(solid: np.ndarray, intensity: np.ndarray, label: int, first: np.ndarray, last: np.ndarray,
                        cube: int) -> dict:
    """Volume, intensity, surfaces, roughness, damage and contact of one particle (voxel units).

    ``first``/``last``: its bounding box (z, y, x, inclusive); ``cube``: the seed's radiusCube (voxels).
    The particle alone in empty space (zero outside the volume): its closing by the ball of radius r
    (:data:`BALL_RADIUS_VOX`) never leaves its bounding box, and deciding a box voxel looks at most r
    further, so the distance transforms run on the box grown by r, the rest on the box grown by 1. The
    dilation of the closing is the particle's own dilation (closing is extensive and
    ``dilate(erode(D)) <= D``); only filled holes need another. Contact: the occupied (any label)
    fraction of the ring ``dilate(fill) - fill`` inside the volume and the seed's box (+-cube)."""
    r = BALL_RADIUS_VOX
    shape = np.array(solid.shape)
    lo, hi = first - r, last + r + 1  # the box grown by r (may leave the volume)
    vlo, vhi = np.maximum(lo, 0), np.minimum(hi, shape)
    around = np.zeros(tuple(hi - lo), solid.dtype)
    around[_slices(vlo - lo, vhi - lo)] = solid[_slices(vlo, vhi)]
    p = around == label
    dilated = ball_dilate(p, r)
    eroded = ball_erode(dilated, r)  # right inside the bounding box (the ball around a box voxel fits)
    box1 = _slices(np.full(3, r - 1), np.array(around.shape) - (r - 1))  # bounding box grown by 1
    closed = np.zeros(tuple(last - first + 3), bool)
    closed[1:-1, 1:-1, 1:-1] = eroded[_slices(np.full(3, r), np.array(around.shape) - r)]
    fill = ndimage.binary_fill_holes(closed)
    p1 = p[box1]
    volume = int(fill.sum())
    vals = intensity[_slices(first - 1, last + 2)] if (first >= 1).all() and (last + 2 <= shape).all() else None
    if vals is None:  # the box grown by 1 leaves the volume: pad the intensity with zeros (never read: fill is inside)
        vals = np.zeros(fill.shape, intensity.dtype)
        glo, ghi = np.maximum(first - 1, 0), np.minimum(last + 2, shape)
        vals[_slices(glo - (first - 1), ghi - (first - 1))] = intensity[_slices(glo, ghi)]
    vals = vals[fill].astype(np.float64)
    outer, outer_f = perimeter_count(fill), perimeter_count(median3(fill))
    total, total_f = perimeter_count(p1), perimeter_count(median3(p1))
    s_in, s_in_f = total - outer, total_f - outer_f
    # the ring, inside the volume and inside the seed's box first - cube .. last + 1 + cube
    box = np.zeros(around.shape, bool)
    blo, bhi = np.maximum(first - cube, vlo) - lo, np.minimum(last + 2 + cube, vhi) - lo
    box[_slices(blo, bhi)] = True
    if np.array_equal(fill, closed):
        reach = dilated
    else:
        fill_r = np.zeros(around.shape, bool)
        fill_r[box1] = fill
        reach = ball_dilate(fill_r, r)
    ring = reach & box
    ring[box1] &= ~fill
    n_ring = int(ring.sum())
    return {
        "volume": volume,
        "e_density": vals.mean(),
        "std": vals.std(ddof=1) if vals.size > 1 else 0.0,
        "s_out": outer,
        "s_in": s_in,
        "s_total": total,
        "rough_outer": outer_f / outer,
        "rough_inner": s_in_f / s_in if s_in != 0 else 1.0,
        "damage": (volume - int(p1.sum())) / volume,
        "contact": float(np.count_nonzero(around[ring])) / n_ring if n_ring else 0.0,
    }


def solid_moments(solid: np.ndarray, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Per label of ``ids`` (regionprops3 on the solid): centroid (n, 3) (x, y, z) voxel indices,
    elongation (longest / shortest principal axis), yaw/pitch/roll (deg, as the default set) from the
    normalised central second moments plus 1/12 (a unit voxel's own moment, as MATLAB's regionprops)."""
    idx = np.flatnonzero(solid)
    lab = solid.reshape(-1)[idx]
    rank = np.searchsorted(ids, lab)
    z, y, x = (c.astype(np.float64) for c in np.unravel_index(idx, solid.shape))
    n = ids.size

    def s(w=None):
        return np.bincount(rank, weights=w, minlength=n)

    cnt = s()
    mean = np.stack([s(x), s(y), s(z)], axis=1) / cnt[:, None]
    cx, cy, cz = x - mean[rank, 0], y - mean[rank, 1], z - mean[rank, 2]
    cov = np.empty((n, 3, 3))
    for i, a in enumerate((cx, cy, cz)):
        for j, b in enumerate((cx, cy, cz)):
            if j >= i:
                cov[:, i, j] = cov[:, j, i] = s(a * b) / cnt + (1 / 12 if i == j else 0.0)
    evals, frames = principal_frames(cov)
    yaw, pitch, roll = rotation_angles_deg(frames)
    elongation = np.sqrt(evals[:, 0] / evals[:, 2])
    return {"centroid": mean, "elongation": elongation, "yaw": yaw, "pitch": pitch, "roll": roll}


def nearest_neighbours(centroid_xyz: np.ndarray, k: int = N_NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """(dist, idx): per particle the ``k`` nearest others by the distance between *rounded* centroids
    (voxels; round half up), zero distances skipped, ties broken by particle order (MATLAB's stable
    ``sort``). (n, k) float64 distances and int64 indices; fewer columns when n - 1 < k; -1 / NaN pad a
    row with fewer non-zero distances."""
    from scipy.spatial import cKDTree

    cord = np.floor(centroid_xyz + 0.5).astype(np.int64)
    n = len(cord)
    k = min(k, n - 1)
    dist = np.full((n, max(k, 0)), np.nan)
    nbr = np.full((n, max(k, 0)), -1, np.int64)
    if k < 1:
        return dist, nbr
    tree = cKDTree(cord.astype(np.float64))
    q = min(n, k + 9)
    _, cand = tree.query(cord.astype(np.float64), k=q)
    for row in range(n):
        c = cand[row]
        d2 = ((cord[c] - cord[row]) ** 2).sum(axis=1)
        pos = np.sort(d2[d2 > 0])[:k]
        if q < n and (pos.size < k or pos[-1] >= d2.max()):
            c = np.arange(n)  # a tie or zero distances at the edge of the candidates: use every particle
            d2 = ((cord - cord[row]) ** 2).sum(axis=1)
        keep = d2 > 0
        c, d2 = c[keep], d2[keep]
        order = np.lexsort((c, d2))[:k]
        dist[row, : order.size] = np.sqrt(d2[order])
        nbr[row, : order.size] = c[order]
    return dist, nbr


def neighbour_std(values: np.ndarray, nbr: np.ndarray) -> np.ndarray:
    """Per row, the std (N-1) of ``values`` over the neighbours ``nbr`` (-1 = none); NaN below 2."""
    ok = nbr >= 0
    v = np.where(ok, values[np.maximum(nbr, 0)], np.nan)
    m = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(v, axis=1) / m
        var = np.nansum((v - mean[:, None]) ** 2, axis=1) / (m - 1)
    return np.where(m >= 2, np.sqrt(var), np.nan)


def li2022_raw(labels: np.ndarray, intensity: np.ndarray, voxel_size_um: float, threshold: float) -> pd.DataFrame:
    """The seed's attributes in its own units (voxels, counts, degrees), one row per label that has solid
    voxels, ascending; columns named as ``allfeatures`` (pX, pY, pZ 0-based here)."""
    solid = solid_labels(labels, intensity, threshold)
    objects = ndimage.find_objects(solid)
    ids = np.array([i + 1 for i, sl in enumerate(objects) if sl is not None], np.int64)
    shape = np.array(solid.shape)
    cube = int(round(CUBE_HALF_UM / voxel_size_um))
    rows, lo, hi, border = [], [], [], []
    for label in ids:
        sl = objects[label - 1]
        start = np.array([s.start for s in sl])
        stop = np.array([s.stop for s in sl]) - 1  # last voxel
        rows.append(particle_attributes(solid, intensity, int(label), start, stop, cube))
        box = seed_crop(start, stop, shape, cube)
        lo.append([b.start for b in box])
        hi.append([b.stop for b in box])
        border.append(bool((start == 0).any() or (stop == shape - 1).any()))
    df = pd.DataFrame(rows)
    lo_a, hi_a = np.array(lo, np.int64).reshape(-1, 3), np.array(hi, np.int64).reshape(-1, 3)
    box_vox = np.prod((hi_a - lo_a).astype(np.float64), axis=1)
    mom = solid_moments(solid, ids)
    dist, nbr = nearest_neighbours(mom["centroid"])
    sphericity = 36 * np.pi * df["volume"].to_numpy(float) ** 2 / df["s_total"].to_numpy(float) ** 3
    angles = [mom["roll"], mom["pitch"], mom["yaw"]]
    with np.errstate(invalid="ignore"):
        dis_nearest = np.nanmean(dist, axis=1) if dist.shape[1] else np.full(ids.size, np.nan)
    return pd.DataFrame({
        "label": ids,
        "pX": mom["centroid"][:, 0], "pY": mom["centroid"][:, 1], "pZ": mom["centroid"][:, 2],
        "Yaw": mom["yaw"], "Pitch": mom["pitch"], "Roll": mom["roll"],
        "EDensity": df["e_density"], "Homogeneity": df["std"],
        "SurfOuter": df["s_out"], "SurfInner": df["s_in"], "Volume": df["volume"], "Damage": df["damage"],
        "Elongation": mom["elongation"], "Sphericity": sphericity,
        "VSratio": df["volume"].to_numpy(float) ** (1 / 3) / df["s_total"].to_numpy(float) ** 0.5,
        "RoughOuter": df["rough_outer"], "RoughInner": df["rough_inner"],
        "Contact": df["contact"].to_numpy(float) if len(df) else np.array([]),
        "PDensity": window_counts(solid, lo_a, hi_a) / box_vox,
        "DisNearest": dis_nearest,
        "locElongation": neighbour_std(mom["elongation"], nbr),
        "locVolume": neighbour_std(df["volume"].to_numpy(float), nbr),
        "locOri": np.max([neighbour_std(a, nbr) for a in angles], axis=0) if ids.size else np.array([]),
        "locSphericity": neighbour_std(sphericity, nbr),
        "touches_border": np.array(border, bool),
    })


def li2022_frame(raw: pd.DataFrame, voxel_size_um: float, *, scan_id: str, cycles: int | None) -> pd.DataFrame:
    """The :func:`li2022_raw` attributes under the table's column names, voxel units scaled to the
    column's unit (lengths x v, areas x v^2, volumes x v^3); dimensionless values unchanged."""
    from nmc_assets.features.columns import CONFIDENCE_COLUMNS, FEATURE_COLUMNS

    v = float(voxel_size_um)
    n = len(raw)
    df = pd.DataFrame({
        "scan_id": pd.Series([scan_id] * n, dtype="string"),
        "particle_id": raw["label"].to_numpy(np.int64),
        "cycles": pd.array([cycles] * n, dtype="Int64"),
        "voxel_size_um": np.full(n, v),
        "x_um": raw["pX"] * v, "y_um": raw["pY"] * v, "z_um": raw["pZ"] * v,
        "yaw_deg": raw["Yaw"], "pitch_deg": raw["Pitch"], "roll_deg": raw["Roll"],
        "e_density": raw["EDensity"], "homogeneity": raw["Homogeneity"],
        "surface_outer_um2": raw["SurfOuter"] * v**2, "surface_inner_um2": raw["SurfInner"] * v**2,
        "volume_um3": raw["Volume"] * v**3, "damage": raw["Damage"], "elongation": raw["Elongation"],
        "sphericity": raw["Sphericity"], "vs_ratio": raw["VSratio"],
        "rough_outer": raw["RoughOuter"], "rough_inner": raw["RoughInner"],
        "contact": raw["Contact"], "p_density": raw["PDensity"],
        "dist_nearest_um": raw["DisNearest"] * v, "elong_std": raw["locElongation"],
        "volume_std": raw["locVolume"] * v**3, "orien_iso": raw["locOri"],
        "sphericity_std": raw["locSphericity"], "touches_border": raw["touches_border"].astype(bool),
        **{c: np.full(n, np.nan) for c in CONFIDENCE_COLUMNS},  # from the view maps, by the caller
    })
    return df.reset_index(drop=True)[FEATURE_COLUMNS]
