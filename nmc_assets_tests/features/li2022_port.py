"""A direct, slow, readable port of ``getAllFeatures.m`` (YijinLiu-Lab/ParticleNetworkDynamics), the
reference for the fast ``li2022`` set (:mod:`nmc_assets.features.li2022`).

Written from the seed's steps, one particle at a time on whole-volume masks as the seed does, with the
seed's bugs fixed as :data:`nmc_assets.features.li2022.FIXED_BUGS` lists them: the morphology of each
particle runs on the particle alone in empty space (its bounding box with r + 1 voxels of zeros around,
which the closing cannot cross), not on the seed's tight crops. MATLAB's conventions are spelled out
where Python's differ: 1-based inclusive boxes (``x_l:x_r`` with ``x_r`` = bbox end + 1, then
+-radiusCube, clipped to the volume), ``imfill`` holes = background not 6-connected to the array faces,
``bwperim`` with 6-connectivity (outside = 0), ``medfilt3`` 3x3x3, ``std`` with N-1. The ball morphology runs as FFT correlation with the ball (a voxel
is in the dilation when the ball around it overlaps the mask), independently of the fast set's distance
transforms. Input ``seg`` is the seed's ``Seg``: the solid label volume, (z, y, x) like every array here.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal
from scipy.spatial.distance import pdist, squareform

from nmc_assets.features.moments import principal_frames, rotation_angles_deg


def ball(radius: int) -> np.ndarray:
    """``strel('sphere', radius)``: the voxels with x^2 + y^2 + z^2 <= radius^2."""
    r = np.arange(-radius, radius + 1)
    z, y, x = np.meshgrid(r, r, r, indexing="ij")
    return (x**2 + y**2 + z**2) <= radius**2


def dilate(mask: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Binary dilation, outside the array = 0."""
    overlap = signal.fftconvolve(mask.astype(float), se.astype(float), mode="same")
    return overlap > 0.5


def erode(mask: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Binary erosion, outside the array = 1 (a voxel stays if the ball around it misses every 0 voxel)."""
    return ~dilate(~mask, se)


def imfill(mask: np.ndarray) -> np.ndarray:
    """Fill holes: background components (6-connected) that do not touch the array faces."""
    background, n = ndimage.label(~mask)
    faces = np.concatenate([background[0].ravel(), background[-1].ravel(), background[:, 0].ravel(),
                            background[:, -1].ravel(), background[:, :, 0].ravel(), background[:, :, -1].ravel()])
    outside = np.zeros(n + 1, bool)
    outside[faces] = True
    return mask | ~outside[background]


def bwperim(mask: np.ndarray) -> np.ndarray:
    """Mask voxels with at least one of their 6 face neighbours outside the mask (outside the array = 0)."""
    p = np.pad(mask, 1)
    inner = p[1:-1, 1:-1, 1:-1]
    all_in = (p[:-2, 1:-1, 1:-1] & p[2:, 1:-1, 1:-1] & p[1:-1, :-2, 1:-1] & p[1:-1, 2:, 1:-1]
              & p[1:-1, 1:-1, :-2] & p[1:-1, 1:-1, 2:])
    return inner & ~all_in


def medfilt3(mask: np.ndarray) -> np.ndarray:
    return ndimage.median_filter(mask.astype(np.uint8), size=3, mode="constant", cval=0).astype(bool)


def crop(lo, hi, shape, margin=0):
    """MATLAB ``l:r`` (1-based, inclusive) with l = bbox first voxel, r = bbox last voxel + 1, grown by
    ``margin`` and clipped to the array, as 0-based slices."""
    return tuple(slice(max(a - margin, 0), min(b + 1 + margin, s - 1) + 1) for a, b, s in zip(lo, hi, shape))


def regionprops(mask: np.ndarray):
    """Centroid (x, y, z), elongation, (yaw, pitch, roll) of one particle's voxels in the whole volume."""
    z, y, x = np.nonzero(mask)
    pts = np.stack([x, y, z], axis=1).astype(float)
    cov = np.cov(pts, rowvar=False, bias=True) + np.eye(3) / 12
    evals, frame = principal_frames(cov[None])
    yaw, pitch, roll = rotation_angles_deg(frame)
    return pts.mean(axis=0), float(np.sqrt(evals[0, 0] / evals[0, 2])), (yaw[0], pitch[0], roll[0])


def get_all_features(seg: np.ndarray, data: np.ndarray, voxel_size_um: float, labels=None) -> list[dict]:
    """One dict per label of ``seg`` (ascending; or of ``labels``), the seed's attribute names, voxel units."""
    radius_cube = int(round(10.0 / voxel_size_um))
    r = 10
    se = ball(r)
    shape = seg.shape
    pad = r + 1
    # the volume in empty space: every array below is a window of these padded copies
    seg_padded = np.pad(seg, pad)
    data_padded = np.pad(data, pad)
    in_volume = np.pad(np.ones(shape, bool), pad)
    features = []
    for n in np.unique(seg)[1:] if labels is None else labels:
        seg_p_full = seg == n  # the whole-volume mask, as the seed builds it
        centroid, elongation, (yaw, pitch, roll) = regionprops(seg_p_full)
        idx = np.nonzero(seg_p_full)
        lo, hi = [int(i.min()) for i in idx], [int(i.max()) for i in idx]
        # the bounding box with r + 1 voxels around it, in padded coordinates (lo - pad + pad = lo)
        window = tuple(slice(a, b + 2 * pad + 1) for a, b in zip(lo, hi))
        seg_p = seg_padded[window] == n
        dilated = dilate(seg_p, se)
        fill = imfill(erode(dilated, se))
        volume = int(fill.sum())
        values = data_padded[window][fill].astype(float)
        outer = int(bwperim(fill).sum())
        outer_filt = int(bwperim(medfilt3(fill)).sum())
        total = int(bwperim(seg_p).sum())
        total_filt = int(bwperim(medfilt3(seg_p)).sum())
        inner, inner_filt = total - outer, total_filt - outer_filt

        # contact: the ring around the filled particle, inside the volume and the seed's box
        seed_box = np.zeros(seg_padded.shape, bool)
        seed_box[crop([a + pad for a in lo], [b + pad for b in hi], seg_padded.shape, radius_cube)] = True
        ring = dilate(fill, se) & ~fill & in_volume[window] & seed_box[window]
        contact = np.count_nonzero(ring & (seg_padded[window] != 0)) / ring.sum() if ring.any() else 0.0
        around = seg[crop(lo, hi, shape, radius_cube)]

        features.append({
            "label": int(n), "pX": centroid[0], "pY": centroid[1], "pZ": centroid[2],
            "Yaw": yaw, "Pitch": pitch, "Roll": roll,
            "EDensity": values.mean(), "Homogeneity": values.std(ddof=1) if values.size > 1 else 0.0,
            "SurfOuter": outer, "SurfInner": inner, "Volume": volume,
            "Damage": np.count_nonzero(fill & ~seg_p) / volume,
            "Elongation": elongation,
            "Sphericity": 36 * np.pi * volume**2 / total**3,
            "VSratio": volume ** (1 / 3) / total ** (1 / 2),
            "RoughOuter": outer_filt / outer,
            "RoughInner": inner_filt / inner if inner != 0 else 1.0,
            "Contact": contact,
            "PDensity": np.count_nonzero(around) / around.size,
            "touches_border": any(a == 0 for a in lo) or any(b == s - 1 for b, s in zip(hi, shape)),
        })
    neighbour_features(features)
    return features


def neighbour_features(features: list[dict], num_neighbour: int = 6) -> None:
    """Adds DisNearest and the std (N-1) of Volume, Elongation, Sphericity and the angles (locOri: the
    max of the three) over the ``num_neighbour`` nearest rounded centroids (zero distances skipped)."""
    cord = np.array([[np.floor(f[k] + 0.5) for k in ("pX", "pY", "pZ")] for f in features])
    distance = squareform(pdist(cord)) if len(features) > 1 else np.zeros((1, 1))
    for i, f in enumerate(features):
        column = distance[:, i]
        others = np.flatnonzero(column != 0)
        nearest = others[np.argsort(column[others], kind="stable")][:num_neighbour]
        f["DisNearest"] = column[nearest].mean() if nearest.size else np.nan

        def std(key):
            vals = np.array([features[j][key] for j in nearest], float)
            return vals.std(ddof=1) if vals.size >= 2 else np.nan

        f["locVolume"] = std("Volume")
        f["locElongation"] = std("Elongation")
        f["locSphericity"] = std("Sphericity")
        f["locOri"] = max(std("Roll"), std("Pitch"), std("Yaw"))
