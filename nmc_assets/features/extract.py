"""Per-particle features of a labelled tomogram (docs/design.md §3.3), vectorised over particles.

One pass over the label volume gives every particle's bounding box. Each particle's crop (bounding box
+ a margin) becomes a tile of a *mosaic* (:mod:`~nmc_assets.features.mosaic`): tiles stacked along z,
separated by a 1-voxel rim, a few million voxels per mosaic. Every filter (hole filling, Gaussian
smoothing, erosion), every marching-cubes run and every sum then runs once per mosaic, and per-particle
results come from ``bincount`` over the tile index of each z slice
(:func:`~nmc_assets.features.measure.measure_particles`). Nothing is ever computed on a whole-volume
mask per particle (the O(particles x voxels) pattern of the original ``getAllFeatures.m``). Local
packing density uses one summed-area table of the foreground, neighbour statistics one k-d tree over
the centroids (:mod:`~nmc_assets.features.neighbours`).

Axes and units: volumes are ``(z, y, x)`` arrays with isotropic voxels of ``voxel_size_um``; voxel
centres sit at ``index * voxel_size_um``. Labels mark the *filled* particle (solid plus enclosed cracks
and voids, 0 = background); hole filling per tile also makes a label of the solid phase only work when
its voids are enclosed. Solid voxels inside a filled particle are those whose intensity is at least the
per-scan solid threshold (:func:`~nmc_assets.features.threshold.estimate_solid_threshold`).

The per-voxel work runs in compiled kernels (numba, compiled on first use and cached; see
:mod:`nmc_assets.features._compiled`): marching-cubes areas are summed cube by cube with skimage's own
tilings, without building meshes; hole filling, moments, contact, erosion and Gaussian smoothing are
single passes.

This is the ``default`` feature set; ``FeatureSettings(feature_set="li2022")`` computes the attributes as
the seed's ``getAllFeatures.m`` does instead (:mod:`nmc_assets.features.li2022`). docs/features.md gives,
per attribute, both definitions and why the default departs from the seed: surfaces are areas of
marching-cubes isosurfaces (not boundary voxel counts), sphericity uses the outer surface only, roughness
is raw / smoothed (rougher = larger, as the paper words it; the seed's code computes the inverse),
homogeneity is 1 / std (the paper's "inverse"; the seed's code gives the std), damage thresholds the
intensity (no 10-voxel closing), contact counts touching faces, and the neighbour statistics use the
real ``k`` nearest particles (the seed's are all 0, a bug).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nmc_assets.features._compiled import kernels
from nmc_assets.features.columns import CONFIDENCE_COLUMNS, FEATURE_COLUMNS
from nmc_assets.features.measure import ContactRule, ParticleMeasurements, measure_particles
from nmc_assets.features.neighbours import (
    neighbour_statistics,
    packing_density,
    packing_windows,
    window_counts,
)
from nmc_assets.features.threshold import IntensityLevels, estimate_intensity_levels, estimate_solid_threshold
from nmc_assets.settings import setting

#: Neighbour statistics are taken over this many nearest particles (fewer when the scan has fewer).
N_NEIGHBOURS = 6


@dataclass(frozen=True)
class FeatureSettings:
    """Method settings of :func:`compute_particle_features` (defaults are the documented method)."""

    feature_set: str = setting(
        "default",
        'attribute definitions: "default" (the project\'s, docs/features.md) or "li2022" (as getAllFeatures.m '
        "of Li et al. 2022 computes them, its bugs fixed; labels read whole, not block by block)",
    )
    contact_gap_vox: int = setting(
        0,
        "default set: 0 = contact is the fraction of the filled particle's outer voxel faces that face another "
        "label (volume-border faces are free surface); n >= 1 = fraction of boundary voxels with another "
        "label within n voxels (chessboard)",
    )

    contact_window_um: float = setting(
        0.6,
        "default set, contact_gap_vox 0: a face between two particles counts as contact only where the "
        "intensity stays at or above the contact level along the face normal, this far (um) on each side "
        "(a gap that the labels close but the image shows darker is not contact); 0 = every face between two labels",
    )
    contact_level: float = setting(
        0.5,
        "the contact level's place between the solid threshold (0) and the median particle intensity (1)",
    )

    def __post_init__(self):
        from nmc_assets.features.columns import FEATURE_SETS

        if self.feature_set not in FEATURE_SETS:
            raise ValueError(f"feature_set must be one of {list(FEATURE_SETS)}, got {self.feature_set!r}")
        if self.contact_gap_vox < 0:
            raise ValueError(f"contact_gap_vox must be >= 0, got {self.contact_gap_vox}")
        if not (0 <= self.contact_window_um <= 5.0):  # also rejects NaN; wider windows only grow every crop
            raise ValueError(f"contact_window_um must be between 0 and 5 um, got {self.contact_window_um}")
        if not np.isfinite(self.contact_level):
            raise ValueError(f"contact_level must be finite, got {self.contact_level}")

    def contact_rule(self, voxel_size_um: float, levels: IntensityLevels, solid_threshold: float) -> ContactRule:
        """The :class:`ContactRule` at this voxel size (um): window ``contact_window_um`` in voxels (at least
        1 when > 0), level ``solid_threshold + contact_level * (levels.solid_level - solid_threshold)``."""
        window = self.contact_window_vox(voxel_size_um)
        if window == 0:
            return ContactRule(gap_vox=self.contact_gap_vox)
        level = float(solid_threshold) + self.contact_level * (levels.solid_level - float(solid_threshold))
        return ContactRule(window_vox=window, level=level)

    def contact_window_vox(self, voxel_size_um: float) -> int:
        """``contact_window_um`` in voxels (at least 1 when > 0); 0 when the rule uses no intensity."""
        if self.contact_gap_vox >= 1 or self.contact_window_um == 0:
            return 0
        return max(1, int(round(self.contact_window_um / float(voxel_size_um))))


def _validate(labels: np.ndarray, intensity: np.ndarray, voxel_size_um: float) -> None:
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3D (z, y, x) array, got shape {labels.shape}")
    if intensity.shape != labels.shape:
        raise ValueError(f"labels shape {labels.shape} does not match intensity shape {intensity.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer array, got dtype {labels.dtype}")
    if not (np.isfinite(voxel_size_um) and voxel_size_um > 0):
        raise ValueError(f"voxel_size_um must be a positive number, got {voxel_size_um!r}")


def compute_particle_features(
    labels: np.ndarray,
    intensity: np.ndarray,
    voxel_size_um: float,
    *,
    scan_id: str,
    cycles: int | None,
    local_window_um: float = 20.0,
    solid_threshold: float | None = None,
    settings: FeatureSettings | None = None,
) -> pd.DataFrame:
    """One row per particle with exactly :data:`FEATURE_COLUMNS` (docs/design.md §3.3), sorted by ``particle_id``.

    ``labels``: (z, y, x) integer instance labels of filled particles, 0 = background. ``intensity``:
    (z, y, x) tomogram (phase values). ``voxel_size_um``: isotropic voxel edge in micrometres.
    ``solid_threshold``: intensity at or above which a voxel is solid; default
    :func:`estimate_solid_threshold`. Neighbour statistics use the :data:`N_NEIGHBOURS` (6) nearest
    centroids, or all others when the scan has fewer particles; NaN for a single-particle scan.
    ``settings.feature_set`` "li2022": :mod:`nmc_assets.features.li2022` (one row per label with solid
    voxels; ``local_window_um`` unused, the seed's box is +-10 um). ``df.attrs["feature_set"]`` names the set.
    """
    settings = settings or FeatureSettings()
    labels = np.asarray(labels)
    _validate(labels, np.asarray(intensity), float(voxel_size_um))
    # native byte order, C order (the compiled kernels are specialised on dtype and layout)
    intensity = np.ascontiguousarray(intensity, dtype=np.float32)
    labels = np.ascontiguousarray(labels, dtype=labels.dtype.newbyteorder("="))
    v = float(voxel_size_um)

    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise ValueError("labels must be non-negative (0 = background)")
    max_label = int(labels.max()) if labels.size else 0
    if max_label <= 0:
        return empty_features_frame()
    ids, box_lo, box_hi = bounding_boxes(labels, max_label)
    levels = estimate_intensity_levels(labels, intensity)
    if solid_threshold is None:
        solid_threshold = levels.solid_threshold
    if settings.feature_set == "li2022":
        from nmc_assets.features.li2022 import li2022_frame, li2022_raw, solid_labels

        if not solid_labels(labels, intensity, float(solid_threshold)).any():
            df = empty_features_frame()  # the seed's loop has no particle: no solid voxel anywhere
        else:
            raw = li2022_raw(labels, intensity, v, float(solid_threshold))
            df = li2022_frame(raw, v, scan_id=scan_id, cycles=cycles)
        df.attrs["feature_set"] = "li2022"
        return df
    contact = settings.contact_rule(v, levels, float(solid_threshold))
    m = measure_particles(labels, intensity, ids, box_lo, box_hi, float(solid_threshold), contact)
    lo, hi = density_windows(m, v, local_window_um, labels.shape)
    p_density = packing_density(window_counts(labels, lo, hi), lo, hi)
    return feature_frame(ids, m, p_density, v, scan_id=scan_id, cycles=cycles)


def density_windows(m: ParticleMeasurements, voxel_size_um: float, local_window_um: float, shape
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi): (n, 3) int64 voxel boxes (z, y, x; hi exclusive) of the p_density cubes (side
    ``local_window_um``) around the particles' centroids, clipped to the volume ``shape``."""
    v = float(voxel_size_um)
    centroids = m.centroid_xyz * v
    return packing_windows(centroids / v, float(local_window_um) / v, shape)


def feature_frame(ids: np.ndarray, m: ParticleMeasurements, p_density: np.ndarray, voxel_size_um: float, *,
                  scan_id: str, cycles: int | None) -> pd.DataFrame:
    """The feature table (:data:`FEATURE_COLUMNS`, one row per particle in the order of ``ids``) from the
    raw measurements ``m`` (voxel units) and ``p_density``: physical units (um, um^2, um^3), derived
    shape columns and the neighbour statistics."""
    v = float(voxel_size_um)
    n = ids.size
    volume = m.n_filled * v**3
    s_out = m.s_out * v**2
    s_out_raw = m.s_out_raw * v**2
    s_in = m.s_in * v**2
    s_in_raw = m.s_in_raw * v**2
    with np.errstate(divide="ignore", invalid="ignore"):
        damage = (m.n_filled - m.n_solid) / m.n_filled
        elongation = np.sqrt(m.l1 / m.l3)
        sphericity = 36.0 * np.pi * volume**2 / s_out**3
        vs_ratio = np.cbrt(volume) / np.sqrt(s_out)
        # regularised by the surface of one voxel, so a vanishing surface gives 1, not 0/0
        a0 = 6.0 * v**2
        rough_outer = (s_out_raw + a0) / (s_out + a0)
        rough_inner = (s_in_raw + a0) / (s_in + a0)

    centroids = m.centroid_xyz * v
    nb = neighbour_statistics(centroids, elongation, volume, m.major_axis, N_NEIGHBOURS, sphericity=sphericity)

    df = pd.DataFrame(
        {
            "scan_id": pd.Series([scan_id] * n, dtype="string"),
            "particle_id": ids.astype(np.int64),
            "cycles": pd.array([cycles] * n, dtype="Int64"),
            "voxel_size_um": np.full(n, v),
            "x_um": centroids[:, 0],
            "y_um": centroids[:, 1],
            "z_um": centroids[:, 2],
            "yaw_deg": m.yaw_deg,
            "pitch_deg": m.pitch_deg,
            "roll_deg": m.roll_deg,
            "e_density": m.e_density,
            "homogeneity": m.homogeneity,
            "surface_outer_um2": s_out,
            "surface_inner_um2": s_in,
            "volume_um3": volume,
            "damage": damage,
            "elongation": elongation,
            "sphericity": sphericity,
            "vs_ratio": vs_ratio,
            "rough_outer": rough_outer,
            "rough_inner": rough_inner,
            "contact": m.contact,
            "p_density": p_density,
            **nb,
            "touches_border": m.touches_border,
            # filled from the view maps by the caller (segmentation.confidence.confidence_columns); null without
            **{c: np.full(n, np.nan) for c in CONFIDENCE_COLUMNS},
        }
    )
    return df[FEATURE_COLUMNS]


def bounding_boxes(labels: np.ndarray, max_label: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, lo, hi): the label values present (int64, ascending) and their bounding boxes, (n, 3) int64
    (z, y, x), hi exclusive, from one pass over the volume."""
    boxes = kernels().mosaic.label_boxes
    if max_label <= 16 * labels.size ** 0.5 + 4096:
        # label values index the boxes directly
        lo, hi = boxes(labels, max_label)
        ids = np.flatnonzero(lo[:, 0] >= 0).astype(np.int64)
        return ids, lo[ids], hi[ids]
    # sparse label values: relabel densely first
    ids = np.unique(labels)
    ids = ids[ids > 0].astype(np.int64)
    dense = (np.searchsorted(ids, labels) + 1).astype(np.int32)
    dense[labels == 0] = 0
    lo, hi = boxes(dense, ids.size)
    return ids, lo[1:], hi[1:]


def empty_features_frame() -> pd.DataFrame:
    """A zero-row frame with the :data:`FEATURE_COLUMNS` and their dtypes."""
    from nmc_assets.features.columns import COLUMN_TYPES

    dtypes = {"string": "string", "int64": "int64", "float64": "float64", "bool": "bool"}
    df = pd.DataFrame({c: pd.Series([], dtype=dtypes[t]) for c, t in COLUMN_TYPES.items()})
    df["cycles"] = df["cycles"].astype("Int64")
    return df[FEATURE_COLUMNS]
