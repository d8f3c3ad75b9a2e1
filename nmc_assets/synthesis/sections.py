"""2D grain-label cross-sections: reading, writing, descriptors and distances.

A section (:class:`nmc_assets.particles.sections.Section`) is a 2D ``uint16`` label image (axes (row,
col)): 0 = outside the particle, k > 0 = grain k, with a pixel size in micrometres (docs/design.md §3.1:
``cross_sections/<name>.tif`` + ``<name>.json`` ``{"pixel_size_um": ...}``).

Section descriptors (one row per grain): area (um^2), ellipse aspect ratio (major / minor axis of the
region's second-moment ellipse), angle between the grain's major axis and the radial direction from the
section's particle centre (degrees, 0 = radial, 90 = tangential), and grains per section (one value per
section). Distributions are compared with the 1-Wasserstein distance (``scipy.stats.wasserstein_distance``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from nmc_assets.particles.sections import Section

#: Descriptors compared between observed and generated sections.
DESCRIPTORS = ("area_um2", "aspect_ratio", "radial_angle_deg", "grains_per_section")
#: Grains smaller than this (pixels) get no aspect ratio / angle (their ellipse is meaningless).
MIN_SHAPE_AREA_PX = 4

__all__ = ["DESCRIPTORS", "MIN_SHAPE_AREA_PX", "Section", "read_sections", "write_sections", "grain_moments", "section_grain_table",
           "descriptor_samples", "descriptor_distances", "normalised_distance", "descriptor_scales",
           "label_boundary_map", "centre_crop", "critic_images"]


# --------------------------------------------------------------------------------------------------
# IO
# --------------------------------------------------------------------------------------------------
def read_sections(folder: str | Path) -> list[Section]:
    """Read every ``<name>.tif``/``.tiff`` with its ``<name>.json`` sidecar from ``folder`` (sorted by name).

    Raises ``ValueError`` naming the file when an image is not 2D, not integer, has no grain, or its
    sidecar lacks a positive ``pixel_size_um``.
    """
    import tifffile

    folder = Path(folder)
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".tif", ".tiff") and not p.name.startswith("."))
    sections = []
    for path in files:
        try:
            img = tifffile.imread(path)
        except Exception as exc:  # noqa: BLE001 - re-raised with the file name
            raise ValueError(f"{path}: cannot read grain section TIFF ({exc})") from exc
        if img.ndim != 2:
            raise ValueError(f"{path}: grain section must be a 2D label image, got shape {img.shape}")
        if not np.issubdtype(img.dtype, np.integer):
            raise ValueError(f"{path}: grain section must have an integer dtype, got {img.dtype}")
        if img.min() < 0:
            raise ValueError(f"{path}: grain labels must be >= 0")
        if not (img > 0).any():
            raise ValueError(f"{path}: grain section contains no grain (all pixels are 0)")
        sidecar = path.with_suffix(".json")
        if not sidecar.exists():
            raise ValueError(f"{path}: missing sidecar {sidecar.name} with pixel_size_um")
        try:
            meta = json.loads(sidecar.read_text())
            pixel = float(meta["pixel_size_um"])
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{sidecar}: sidecar must be JSON with a numeric 'pixel_size_um' ({exc})") from exc
        if not np.isfinite(pixel) or pixel <= 0:
            raise ValueError(f"{sidecar}: pixel_size_um must be positive, got {pixel}")
        sections.append(Section(img.astype(np.uint16), pixel, path.stem))
    return sections


def write_sections(folder: str | Path, sections: list[Section], extra_files: dict[str, dict] | None = None,
                   tables: dict[str, pd.DataFrame] | None = None) -> Path:
    """Write sections as ``section_XXXX.tif`` (uint16, zlib) + ``.json`` sidecars into ``folder`` atomically.

    ``extra_files`` maps file names to JSON objects written alongside (e.g. a manifest); ``tables`` maps
    file names to data frames written alongside as Parquet (e.g. the EBSD per-grain table).
    """
    import tifffile

    from nmc_assets.storage import atomic_path

    folder = Path(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        for i, sec in enumerate(sections):
            name = sec.name or f"section_{i:04d}"
            tifffile.imwrite(tmp / f"{name}.tif", sec.labels.astype(np.uint16), compression="zlib", metadata=None)
            (tmp / f"{name}.json").write_text(json.dumps({"pixel_size_um": sec.pixel_size_um}, sort_keys=True) + "\n")
        for fname, obj in (extra_files or {}).items():
            (tmp / fname).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
        for fname, df in (tables or {}).items():
            df.to_parquet(tmp / fname, index=False)
    return folder


# --------------------------------------------------------------------------------------------------
# descriptors
# --------------------------------------------------------------------------------------------------
def grain_moments(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per grain (labels > 0, ascending): ``label``, ``area`` (px), ``centroid`` (n, 2) (row, col) and the
    second-moment ellipse as scikit-image's ``regionprops`` defines it: ``major``, ``minor`` (px; 4 x the
    square root of the inertia tensor's eigenvalues) and ``orientation`` (rad, between the row axis and
    the major axis). One ``np.bincount`` pass per moment instead of a Python loop over regions.
    """
    flat = labels.ravel()
    inside = flat > 0
    lab = flat[inside].astype(np.int64)
    rows, cols = np.divmod(np.flatnonzero(inside), labels.shape[1])
    ids = np.unique(lab)
    idx = np.searchsorted(ids, lab)
    n = ids.size
    m00 = np.bincount(idx, minlength=n).astype(float)
    rc = np.bincount(idx, rows, n) / m00
    cc = np.bincount(idx, cols, n) / m00
    dr, dc = rows - rc[idx], cols - cc[idx]
    mu20 = np.bincount(idx, dr * dr, n) / m00  # row variance
    mu02 = np.bincount(idx, dc * dc, n) / m00  # column variance
    mu11 = np.bincount(idx, dr * dc, n) / m00
    a, b, c = mu02, -mu11, mu20  # regionprops' inertia tensor [[a, b], [b, c]]
    half_gap = np.sqrt(((a - c) / 2) ** 2 + b**2)
    ev_major = np.maximum((a + c) / 2 + half_gap, 0.0)
    ev_minor = np.maximum((a + c) / 2 - half_gap, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        orientation = np.where(a - c == 0, np.where(b < 0, np.pi / 4, -np.pi / 4), 0.5 * np.arctan2(-2 * b, c - a))
    return {"label": ids, "area": m00, "centroid": np.stack([rc, cc], axis=1),
            "major": 4 * np.sqrt(ev_major), "minor": 4 * np.sqrt(ev_minor), "orientation": orientation}


def section_grain_table(section: Section, section_index: int = 0) -> pd.DataFrame:
    """One row per grain: ``section``, ``grain``, ``area_um2``, ``aspect_ratio``, ``radial_angle_deg``,
    ``radial_position`` (distance of the grain centroid from the particle centre / section radius).

    The particle centre is the centroid of the section mask (labels > 0). Aspect ratio and angle are NaN
    for grains smaller than :data:`MIN_SHAPE_AREA_PX` pixels or lying on the centre. Ellipses as
    :func:`grain_moments` (regionprops' definitions).
    """
    labels = section.labels
    cols = ["section", "grain", "area_um2", "aspect_ratio", "radial_angle_deg", "radial_position"]
    if not (labels > 0).any():
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    g = grain_moments(labels)
    mask_rc = np.argwhere(labels > 0)
    centre = mask_rc.mean(axis=0)
    radius_px = np.sqrt(len(mask_rc) / np.pi)
    area_px, major, minor, theta = g["area"], g["major"], g["minor"], g["orientation"]
    axis_vec = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    radial = g["centroid"] - centre
    rnorm = np.linalg.norm(radial, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosang = np.abs((axis_vec * radial).sum(1)) / rnorm
        angle = np.degrees(np.arccos(np.clip(cosang, 0, 1)))
        aspect = major / minor
    ok_shape = (area_px >= MIN_SHAPE_AREA_PX) & (minor > 0)
    aspect = np.where(ok_shape, aspect, np.nan)
    angle = np.where(ok_shape & (rnorm >= 1.0), angle, np.nan)
    return pd.DataFrame(
        {
            "section": np.full(len(area_px), section_index, dtype=np.int64),
            "grain": g["label"].astype(np.int64),
            "area_um2": area_px * section.pixel_size_um**2,
            "aspect_ratio": aspect,
            "radial_angle_deg": angle,
            "radial_position": rnorm / max(radius_px, 1e-9),
        }
    )


def descriptor_samples(sections: list[Section]) -> dict[str, np.ndarray]:
    """Pooled descriptor samples over sections: per-grain arrays plus ``grains_per_section``."""
    tables = [section_grain_table(s, i) for i, s in enumerate(sections)]
    grains = pd.concat(tables, ignore_index=True) if tables else section_grain_table(Section(np.zeros((1, 1), np.uint16), 1.0))
    out = {k: grains[k].dropna().to_numpy(float) for k in ("area_um2", "aspect_ratio", "radial_angle_deg")}
    out["grains_per_section"] = np.array([len(t) for t in tables], dtype=float)
    return out


def descriptor_distances(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """1-Wasserstein distance per descriptor between two descriptor-sample dicts (units of the descriptor)."""
    from scipy.stats import wasserstein_distance

    out = {}
    for k in DESCRIPTORS:
        if len(a[k]) == 0 or len(b[k]) == 0:
            out[k] = float("nan")
        else:
            out[k] = float(wasserstein_distance(a[k], b[k]))
    return out


def normalised_distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray], scale: dict[str, float]) -> float:
    """Sum over descriptors of W1 / scale (scale: e.g. the observed standard deviation of each descriptor)."""
    d = descriptor_distances(a, b)
    return float(sum(d[k] / max(scale[k], 1e-12) for k in DESCRIPTORS))


def descriptor_scales(samples: dict[str, np.ndarray]) -> dict[str, float]:
    """Standard deviation of each descriptor (for normalising distances)."""
    return {k: float(np.std(samples[k])) if len(samples[k]) > 1 else 1.0 for k in DESCRIPTORS}


# --------------------------------------------------------------------------------------------------
# critic input
# --------------------------------------------------------------------------------------------------
def label_boundary_map(labels: np.ndarray) -> np.ndarray:
    """Probability that a 4-neighbour (inside the particle) lies in a different grain, per pixel.

    0 inside a grain, 0.25-1 on grain boundaries, 0 outside the particle. The soft version in
    :func:`nmc_assets.particles.soft_tessellation.soft_boundary_map` gives the same map for one-hot assignments.
    """
    lab = np.pad(labels, 1)
    centre = lab[1:-1, 1:-1]
    inside = centre > 0
    diff = np.zeros(centre.shape, np.float32)
    count = np.zeros(centre.shape, np.float32)
    for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        nb = lab[1 + dr : lab.shape[0] - 1 + dr, 1 + dc : lab.shape[1] - 1 + dc]
        valid = inside & (nb > 0)
        count += valid
        diff += valid & (nb != centre)
    return np.where(count > 0, diff / np.maximum(count, 1), 0.0).astype(np.float32)


def centre_crop(img: np.ndarray, centre_rc: tuple[float, float], size: int) -> np.ndarray:
    """``size`` x ``size`` window of ``img`` with ``centre_rc`` at the window's centre (size - 1) / 2 to
    within half a pixel, unbiased (as the generated sections' canvases; zero padding outside)."""
    out = np.zeros((size, size), img.dtype)
    r0 = int(round(centre_rc[0] - (size - 1) / 2))
    c0 = int(round(centre_rc[1] - (size - 1) / 2))
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + size, img.shape[0]), min(c0 + size, img.shape[1])
    if re > rs and ce > cs:
        out[rs - r0 : re - r0, cs - c0 : ce - c0] = img[rs:re, cs:ce]
    return out


def critic_images(sections: list[Section], size: int) -> np.ndarray:
    """Stack (n, 2, size, size) float32: channel 0 boundary map, channel 1 particle mask, centred on the mask centroid."""
    out = np.zeros((len(sections), 2, size, size), np.float32)
    for i, s in enumerate(sections):
        rc = np.argwhere(s.mask).mean(axis=0)
        out[i, 0] = centre_crop(label_boundary_map(s.labels), rc, size)
        out[i, 1] = centre_crop(s.mask.astype(np.float32), rc, size)
    return out
