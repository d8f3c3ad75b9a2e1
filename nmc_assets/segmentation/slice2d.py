"""One 2D slice: StarDist seeds grown at the working pixel, shallow seeds merged, labels brought back to
the input grid, boundaries refined at full resolution with the 3D refinement (:mod:`.refine` on a
one-slice volume), and pieces of one particle merged.

- :func:`merge_shallow`: at the working pixel, grown StarDist instances with no saddle of ``h`` in the
  smoothed probability to a neighbour are merged: the 3D fusion's seed criterion. StarDist's NMS keeps
  several instances in one dim or textured particle when the particle looks large at the working pixel
  (a larger assumed pixel size); on the real slice this was the cause of the extra objects at 0.08 um.
- :func:`refine_slice`: :func:`.refine.refine_labels` on the slice as a ``(1, h, w)`` volume, after the
  contacts between touching labels are opened (the pixels on both sides of a contact set to
  background), so that contacts move to the intensity edge as well as the outer surface: the bright
  pixels of an opened contact are flooded back from the nearer particle, a dark gap (matrix) between
  two particles becomes background.
- :func:`contacts` / :func:`contact_dips`: every pair of labels that share a boundary, with the smoothed
  intensity along it and beside it.
- :func:`merge_pieces`: at full resolution, two touching labels are one particle when (1) their contact
  shows no intensity dip against the material beside it on both sides (it is darker than that material
  by less than half the particle-to-edge contrast of the slice), i.e. the boundary runs through particle
  material, not a gap, and (2) together they are as convex as one particle (solidity >= 0.9; two equal
  discs that touch have 0.88), since on this data many real neighbours touch with no visible gap.
- :func:`segment_image_2d`: the whole path (see its docstring); re-exported by :mod:`.pipeline`.

Axes (y, x); lengths in um unless named ``*_px``; intensities in the image's units.
"""

from __future__ import annotations

import os
import time

import numpy as np
from scipy import ndimage as ndi

from .fusion import FusionConfig
from .refine import particle_matrix_threshold, refine_labels, refinement_voxels, smooth_intensity

#: 4-connected neighbour offsets (down, right) used to find label contacts
_OFFSETS = ((1, 0), (0, 1))


def touching_pixels(labels: np.ndarray) -> np.ndarray:
    """Boolean mask of labelled pixels with a 4-neighbour in another label (both sides of a contact)."""
    out = np.zeros(labels.shape, bool)
    for dy, dx in _OFFSETS:
        a, b = labels[: labels.shape[0] - dy, : labels.shape[1] - dx], labels[dy:, dx:]
        hit = (a > 0) & (b > 0) & (a != b)
        out[: labels.shape[0] - dy, : labels.shape[1] - dx] |= hit
        out[dy:, dx:] |= hit
    return out


def refine_slice(labels: np.ndarray, image: np.ndarray, pixel_size_um: float, *, band_um: float = 0.4, sigma_um: float = 0.2,
                 threshold: float | None = None, open_contacts: bool = True) -> tuple[np.ndarray, dict]:
    """Labels (uint32, like ``labels``) with every boundary moved to the intensity edge of ``image`` at
    its own resolution: :func:`.refine.refine_labels` (band and sigma converted from um exactly as the
    3D path does, :func:`.refine.refinement_voxels`) on the slice as a one-slice volume.

    ``open_contacts``: set the pixels on both sides of each contact between two labels to background
    first, so the refinement re-places contacts too (the 3D path keeps fused contacts as they are;
    one-pixel-thin labels vanish there and come back only as far as the flood from a neighbour reaches).
    ``threshold``: particle/matrix threshold (default: :func:`.refine.particle_matrix_threshold` of the
    given labels). Returns (labels, info with band/sigma in px and the threshold).
    """
    if labels.ndim != 2 or labels.shape != image.shape:
        raise ValueError(f"need 2D labels and image of one shape, got {labels.shape} and {image.shape}")
    band, sigma = refinement_voxels(band_um, sigma_um, pixel_size_um)
    info = {"band_px": band, "sigma_px": sigma, "threshold": None}
    lab = np.asarray(labels, np.uint32)
    if not lab.any():
        return lab.copy(), info
    if threshold is None:
        threshold = particle_matrix_threshold(lab, image, sigma, band)
    info["threshold"] = float(threshold)
    start = np.where(touching_pixels(lab), 0, lab) if open_contacts else lab
    out = refine_labels(start[None], np.asarray(image, np.float32)[None], threshold, band=band, sigma=sigma)[0]
    return out.astype(np.uint32), info


def contacts(labels: np.ndarray, smooth: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """``{(a, b): smoothed intensities of the contact pixels}`` for every pair of 4-touching labels a < b
    (each contact pixel pair counted once, at the mean of its two pixels)."""
    pairs: dict[tuple[int, int], list[np.ndarray]] = {}
    for dy, dx in _OFFSETS:
        h, w = labels.shape
        a, b = labels[: h - dy, : w - dx], labels[dy:, dx:]
        hit = (a > 0) & (b > 0) & (a != b)
        if not hit.any():
            continue
        la, lb = a[hit], b[hit]
        lo, hi = np.minimum(la, lb), np.maximum(la, lb)
        val = 0.5 * (smooth[: h - dy, : w - dx][hit] + smooth[dy:, dx:][hit])
        key = lo.astype(np.int64) * (int(labels.max()) + 1) + hi
        order = np.argsort(key, kind="stable")
        key, val = key[order], val[order]
        cuts = np.flatnonzero(np.diff(key)) + 1
        for k, v in zip(key[np.r_[0, cuts]], np.split(val, cuts)):
            pair = divmod(int(k), int(labels.max()) + 1)
            pairs.setdefault(pair, []).append(v)
    return {p: np.concatenate(v) for p, v in pairs.items()}


#: Solidity (area / convex hull area) of two equal discs that just touch: 2 pi / (pi + 4) = 0.88. A union
#: of two pieces at least this convex (default 0.9) has no waist: it is one particle's outline.
TWO_DISCS_SOLIDITY = 2 * np.pi / (np.pi + 4)


def _solidity(mask: np.ndarray) -> float:
    from skimage.morphology import convex_hull_image

    return float(mask.sum() / max(convex_hull_image(mask).sum(), 1))


def contact_dips(labels: np.ndarray, smooth: np.ndarray, threshold: float, near_px: int) -> list[dict]:
    """Per touching pair (a < b): contact length (px), the median smoothed intensity on the contact,
    the median of each piece within ``near_px / 2 .. 1.5 near_px`` pixels of the contact (``near_a``,
    ``near_b``), ``dip`` = (darker near median - contact median) / (particle median - ``threshold``),
    the particle median being that of all labelled pixels 2 px or more inside: 0 or less = the contact
    is as bright as the material beside it, 1 = it drops by the particle/edge contrast; and the solidity
    of the two pieces together (``solidity``)."""
    fg = ndi.binary_erosion(labels > 0, iterations=2)
    scale = max(float(np.median(smooth[fg])) - threshold if fg.any() else 0.0, 1e-6)
    boxes = ndi.find_objects(labels)
    rows = []
    for (a, b), vals in sorted(contacts(labels, smooth).items()):
        box = tuple(slice(min(p.start, q.start), max(p.stop, q.stop)) for p, q in zip(boxes[a - 1], boxes[b - 1]))
        lab, sm = labels[box], smooth[box]
        ma, mb = lab == a, lab == b
        touch = np.zeros(lab.shape, bool)
        for dy, dx in _OFFSETS:
            h, w = lab.shape
            hit = (ma[: h - dy, : w - dx] & mb[dy:, dx:]) | (mb[: h - dy, : w - dx] & ma[dy:, dx:])
            touch[: h - dy, : w - dx] |= hit
            touch[dy:, dx:] |= hit
        d = ndi.distance_transform_edt(~touch)
        near = (d > near_px / 2) & (d <= 1.5 * near_px)
        na = float(np.median(sm[near & ma])) if np.any(near & ma) else float(np.median(sm[ma]))
        nb = float(np.median(sm[near & mb])) if np.any(near & mb) else float(np.median(sm[mb]))
        c, darker = float(np.median(vals)), min(na, nb)
        rows.append({"a": a, "b": b, "length_px": int(vals.size), "contact": c, "near_a": na, "near_b": nb,
                     "dip": float((darker - c) / scale), "solidity": _solidity(ma | mb)})
    return rows


def merge_pieces(labels: np.ndarray, image: np.ndarray, threshold: float, *, sigma_px: float = 1.0, near_px: int = 4,
                 max_dip: float = 0.5, min_solidity: float = 0.9, min_contact_px: int = 3) -> tuple[np.ndarray, list[dict]]:
    """Merge touching labels that are pieces of one particle: their contact (at least ``min_contact_px``
    pixels) shows no intensity dip (:func:`contact_dips`' ``dip`` below ``max_dip``: the contact is
    darker than the material beside it by less than half the particle/edge contrast) and together they
    are as convex as one particle (solidity at least ``min_solidity``; two equal touching discs have
    :data:`TWO_DISCS_SOLIDITY`). Merges are transitive (a particle cut in three is one label) and
    judged on the input labels; the merged label keeps the lowest id, ids are not renumbered.
    Returns (labels, the rows of the merged contacts)."""
    labels = np.asarray(labels, np.uint32)
    smooth = smooth_intensity(image, sigma_px)
    rows = [r for r in contact_dips(labels, smooth, threshold, near_px)
            if r["length_px"] >= min_contact_px and r["dip"] < max_dip and r["solidity"] >= min_solidity]
    if not rows:
        return labels.copy(), []
    parent = np.arange(int(labels.max()) + 1)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for r in rows:
        ra, rb = root(r["a"]), root(r["b"])
        parent[max(ra, rb)] = min(ra, rb)
    lut = np.array([root(i) for i in range(parent.size)], np.uint32)
    return lut[labels], rows


def merge_shallow(labels: np.ndarray, landscape: np.ndarray, h: float) -> tuple[np.ndarray, int]:
    """Merge touching labels unless the lower one's peak in ``landscape`` rises at least ``h`` above
    their contact's highest point (the saddle): the 3D fusion's seed criterion (a seed needs a
    dynamic of ``h``, :func:`.fusion.seeds_from_map`) applied to grown StarDist instances. Contacts are
    taken from the highest saddle down and a merged label's peak is the higher one, so the result is
    that of the dynamics, independent of the label ids. Returns (labels with the lowest id of each
    merged group, number of merges)."""
    labels = np.asarray(labels, np.uint32)
    n = int(labels.max())
    if n < 2:
        return labels.copy(), 0
    peak = np.asarray(ndi.maximum(landscape, labels, np.arange(n + 1)), float)
    saddles = sorted(((float(v.max()), a, b) for (a, b), v in contacts(labels, landscape).items()), reverse=True)
    parent = np.arange(n + 1)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    merges = 0
    for saddle, a, b in saddles:
        ra, rb = root(a), root(b)
        if ra != rb and min(peak[ra], peak[rb]) - saddle < h:
            keep, drop = min(ra, rb), max(ra, rb)
            parent[drop], peak[keep] = keep, max(peak[ra], peak[rb])
            merges += 1
    lut = np.array([root(i) for i in range(n + 1)], np.uint32)
    return lut[labels], merges


def fill_holes_per_label(labels: np.ndarray) -> np.ndarray:
    """Each label's holes (cracks, voids inside it) filled with its id; in place, returned."""
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is not None:
            filled = ndi.binary_fill_holes(labels[sl] == i)
            labels[sl][filled & (labels[sl] == 0)] = i
    return labels


def segment_image_2d(model_dir: str | os.PathLike, image: np.ndarray, pixel_size_um: float, *, min_area_um2: float = 3.0,
                     fg_threshold: float = FusionConfig.fg_threshold, grow: bool = True, refine: bool = True,
                     band_um: float = 0.4, sigma_um: float = 0.2, merge_dip: float | None = 0.5,
                     merge_solidity: float = 0.9, seed_h: float | None = FusionConfig.h,
                     open_contacts: bool = True) -> tuple[np.ndarray, dict]:
    """Particles in one 2D slice with the 2D model, the same way the 3D fusion treats one view.

    The slice is normalised (1st/99.8th percentiles) and rescaled to the model's working pixel size.
    StarDist's instances (prediction + NMS) are the seeds; with ``grow`` each grows by a watershed on
    the smoothed probability into the foreground (probability > ``fg_threshold``), because star-convex
    polygons of cracked, textured particles tend to stop short of the outer surface; grown instances
    whose peak in the smoothed probability is less than ``seed_h`` above their contact with a neighbour
    are merged into it (:func:`merge_shallow`, the 3D fusion's seed dynamic; None = off). Holes are filled
    per particle (cracks stay inside) and the labels are brought back to the input grid (nearest).
    With ``refine`` (default) every boundary then moves to the intensity edge at full resolution
    (:func:`refine_slice`: ``band_um``, ``sigma_um`` as in the 3D path, ``open_contacts``) and touching pieces with no
    intensity dip between them and a convex outline together are merged (:func:`merge_pieces`,
    ``merge_dip``, ``merge_solidity``; ``merge_dip=None``: no merging);
    holes are filled again. Last, pieces under ``min_area_um2`` are dropped and ids renumbered 1..n.
    Returns ``(labels uint32 like image, info)``.
    """
    from skimage.segmentation import relabel_sequential, watershed

    from .model import load_stardist, read_model_meta
    from .training_set import normalize_percentiles
    from .views import predict_slices

    if image.ndim != 2:
        raise ValueError(f"need a 2D image, got shape {image.shape}")
    meta = read_model_meta(model_dir)
    working = float(meta["working_pixel_um"])
    zoom = pixel_size_um / working
    small = ndi.zoom(normalize_percentiles(image), zoom, order=1)
    model = load_stardist(model_dir)
    t0 = time.time()
    seeds, _ = model.predict_instances(small, verbose=False)
    labels = seeds.astype(np.uint32)
    n_shallow = 0
    if grow:
        prob, _ = predict_slices(model, small[None])
        smooth = ndi.gaussian_filter(prob[0], 1.0)
        fg = (smooth > fg_threshold) | (labels > 0)
        labels = watershed(-smooth, labels, mask=fg).astype(np.uint32)
        if seed_h is not None:
            labels, n_shallow = merge_shallow(labels, smooth, seed_h)
    seconds = time.time() - t0
    fill_holes_per_label(labels)
    # back to the input grid (nearest)
    idx = [np.minimum((np.arange(n) * zoom).astype(int), s - 1) for n, s in zip(image.shape, labels.shape)]
    out = labels[np.ix_(*idx)].astype(np.uint32)
    info = {"n_seeds": int(seeds.max()), "working_shape": list(small.shape), "zoom": zoom, "predict_seconds": round(seconds, 2),
            "thresholds": meta.get("thresholds"), "refined": bool(refine), "merged_seeds": n_shallow, "merged": 0}
    if refine and out.any():
        t1 = time.time()
        out, rinfo = refine_slice(out, image, pixel_size_um, band_um=band_um, sigma_um=sigma_um, open_contacts=open_contacts)
        if merge_dip is not None:
            out, merged = merge_pieces(out, image, rinfo["threshold"], sigma_px=rinfo["sigma_px"], near_px=rinfo["band_px"],
                                       max_dip=merge_dip, min_solidity=merge_solidity)
            info["merged"] = len(merged)
        fill_holes_per_label(out)
        info.update(refinement=rinfo, refine_seconds=round(time.time() - t1, 2))
    areas = np.bincount(out.ravel()) * pixel_size_um**2
    small_ids = np.flatnonzero(areas < min_area_um2)
    out[np.isin(out, small_ids[small_ids > 0])] = 0
    out = relabel_sequential(out)[0].astype(np.uint32)
    return out, {"n_objects": int(out.max()), **info}
