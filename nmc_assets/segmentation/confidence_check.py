"""The per-scan low-confidence check and its gallery (science core of the ``particle_features_confidence``
asset check; no Dagster here).

A scan is flagged when the share of its particles whose ``segmentation_confidence`` is below a threshold
exceeds a configurable share. The gallery shows the least confident particles: for each, the xy slice of
the tomogram through the particle's centroid, cropped around it, with the particle's outline (red) and
its neighbours' outlines (yellow).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def low_confidence_summary(table: pd.DataFrame, threshold: float, max_share: float) -> dict:
    """``{"passed", "computed", "particles", "scored", "low", "low_share", "median"}`` for one scan's table.

    ``computed`` is False (and ``passed`` True) when no particle has a confidence (no view maps); a scan
    without particles passes. ``threshold``: confidence below which a particle counts as low;
    ``max_share``: the largest share of low particles that passes.
    """
    if not 0 <= threshold <= 1 or not 0 <= max_share <= 1:
        raise ValueError(f"threshold and max_share must lie in [0, 1], got {threshold}, {max_share}")
    conf = pd.to_numeric(table["segmentation_confidence"], errors="coerce").to_numpy(np.float64)
    scored = np.isfinite(conf)
    n, k = int(conf.size), int(scored.sum())
    if k == 0:
        return {"passed": True, "computed": n == 0, "particles": n, "scored": 0, "low": 0, "low_share": 0.0,
                "median": float("nan")}
    low = int((conf[scored] < threshold).sum())
    share = low / k
    return {"passed": bool(share <= max_share), "computed": True, "particles": n, "scored": k, "low": low,
            "low_share": float(share), "median": float(np.median(conf[scored]))}


def least_confident(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` rows with the lowest finite ``segmentation_confidence`` (ties: lower particle_id first)."""
    t = table[np.isfinite(pd.to_numeric(table["segmentation_confidence"], errors="coerce"))]
    return t.sort_values(["segmentation_confidence", "particle_id"]).head(int(k))


def particle_tile(tomogram, labels, row: pd.Series, voxel_size_um: float, side: int = 96) -> np.ndarray:
    """RGB (side, side) uint8: the xy slice through the particle's centroid (z_um, y_um, x_um in the row),
    cropped to a square of 2.5 x its equivalent diameter, grey, outline of this particle red, others yellow.
    ``tomogram``, ``labels``: (z, y, x) arrays or lazy Zarr arrays (one plane is read)."""
    from PIL import Image
    from skimage.segmentation import find_boundaries

    from nmc_assets.previews import _to_uint8

    v = float(voxel_size_um)
    shape = labels.shape
    c = [int(np.clip(round(row[a] / v), 0, s - 1)) for a, s in zip(("z_um", "y_um", "x_um"), shape)]
    r = max(4, int(np.ceil(1.25 * np.cbrt(6 * max(float(row["volume_um3"]), v**3) / np.pi) / v)))
    ys, xs = slice(max(0, c[1] - r), min(shape[1], c[1] + r + 1)), slice(max(0, c[2] - r), min(shape[2], c[2] + r + 1))
    img = np.asarray(tomogram[c[0], ys, xs], np.float32)
    lab = np.asarray(labels[c[0], ys, xs])
    rgb = np.repeat(_to_uint8(img)[..., None], 3, -1)
    edges = find_boundaries(lab, mode="inner")
    rgb[edges & (lab != row["particle_id"])] = (255, 255, 0)
    rgb[edges & (lab == row["particle_id"])] = (255, 0, 0)
    return np.asarray(Image.fromarray(rgb).resize((side, side), Image.NEAREST))


def gallery_png(tomogram, labels, rows: pd.DataFrame, voxel_size_um: float, side: int = 96) -> bytes | None:
    """PNG bytes of :func:`particle_tile` for each row, side by side (None when there are no rows)."""
    from nmc_assets.previews import montage, png_bytes

    if rows.empty:
        return None
    return png_bytes(montage([particle_tile(tomogram, labels, r, voxel_size_um, side) for _, r in rows.iterrows()]))


def gallery_caption(rows: pd.DataFrame) -> str:
    """One line naming the gallery's particles, left to right, with their confidence and sub-scores."""
    parts = [f"{int(r.particle_id)} ({r.segmentation_confidence:.2f}: views {r.conf_view_agreement:.2f}, margin "
             f"{r.conf_boundary_margin:.2f}, size {r.conf_size_agreement:.2f}, shape {r.conf_shape:.2f})"
             for r in rows.itertuples()]
    return "least confident particles, left to right (xy slice through the centroid; red: the particle, " \
           "yellow: neighbours): " + "; ".join(parts)
