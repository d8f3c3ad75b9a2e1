"""The ``particle_features`` table contract (docs/design.md §3.3): column order, types, descriptions and units.

These constants drive the Parquet schema (field metadata ``description`` and ``unit``), the Dagster
column schema shown in the UI, the DuckDB catalog's empty view and the asset checks.
"""

from __future__ import annotations

#: (name, arrow type name, unit, description) in docs/design.md §3.3 order.
_COLUMNS: list[tuple[str, str, str, str]] = [
    ("scan_id", "string", "", "scan (partition key)"),
    ("particle_id", "int64", "", "label value of the particle in the label volume"),
    ("cycles", "int64", "cycles", "charge/discharge cycles of the sample (from the sidecar; null when unknown)"),
    ("voxel_size_um", "float64", "um", "isotropic voxel edge length (from the sidecar)"),
    ("x_um", "float64", "um", "centroid x (volume axis 2), voxel centres at index * voxel_size_um"),
    ("y_um", "float64", "um", "centroid y (volume axis 1)"),
    ("z_um", "float64", "um", "centroid z (volume axis 0, electrode thickness axis)"),
    (
        "yaw_deg",
        "float64",
        "deg",
        "rotation about z of R = Rz(yaw) Ry(pitch) Rx(roll) mapping lab x, y, z onto the major, "
        "intermediate, minor principal axes; in [-90, 90] (major axis sign chosen with x >= 0)",
    ),
    ("pitch_deg", "float64", "deg", "rotation about y of the principal-axes frame (see yaw_deg); in [-90, 90]"),
    ("roll_deg", "float64", "deg", "rotation about x of the principal-axes frame (see yaw_deg); in [-90, 90]"),
    ("e_density", "float64", "phase", "mean tomogram intensity inside the filled particle (electron density)"),
    ("homogeneity", "float64", "1/phase", "1 / standard deviation (N) of the intensity inside the filled particle (the paper's 'inverse'; the seed's code gives the std itself)"),
    (
        "surface_outer_um2",
        "float64",
        "um2",
        "area of the filled particle's surface: marching-cubes isosurface (level 0.5) of the filled mask "
        "smoothed with a 0.7-voxel Gaussian (removes the voxel staircase)",
    ),
    (
        "surface_inner_um2",
        "float64",
        "um2",
        "area of crack/void surfaces: marching-cubes isosurface of the intensity (1-voxel Gaussian) at the "
        "solid threshold, inside the filled particle eroded by 2 voxels (cube)",
    ),
    ("volume_um3", "float64", "um3", "volume of the filled particle (solid plus enclosed cracks and voids)"),
    ("damage", "float64", "1", "(filled volume - solid volume) / filled volume; solid = intensity >= solid threshold"),
    ("elongation", "float64", "1", "longest / shortest principal axis (square root of the second-moment eigenvalue ratio)"),
    ("sphericity", "float64", "1", "36 pi V^2 / S^3 with V = volume_um3, S = surface_outer_um2 (1 for a continuous ball; 0.96-0.98 for digital balls)"),
    ("vs_ratio", "float64", "1", "V^(1/3) / S^(1/2) with V = volume_um3, S = surface_outer_um2 (dimensionless; (36 pi)^(-1/6) = 0.55 for a ball)"),
    (
        "rough_outer",
        "float64",
        "1",
        "outer surface area before / after smoothing (rougher = larger, the paper's wording; the seed's code "
        "computes the inverse, after / before): (unsmoothed voxel-mask isosurface + a0) / "
        "(surface_outer_um2 + a0), a0 = 6 voxel faces (voxel-scale roughness; about 1.08 for a digitised smooth body)",
    ),
    (
        "rough_inner",
        "float64",
        "1",
        "inner surface area before / after smoothing (rougher = larger): (voxel isosurface of the unsmoothed "
        "void voxels next to the inner surface + a0) / (surface_inner_um2 + a0), a0 = 6 voxel faces "
        "(1 without inner surface)",
    ),
    (
        "contact",
        "float64",
        "1",
        "fraction of the filled particle's outer voxel faces that face another particle where the particles really touch: "
        "the intensity stays at or above the contact level (halfway between the solid threshold and the median particle "
        "intensity) along the face normal, 0.6 um on each side, so a gap that blurring hid from the labels is not contact "
        "(faces on the volume border count as free surface; `contact_window_um: 0` counts every face between two labels, "
        "the virtual beamline's definition on exact labels)",
    ),
    (
        "p_density",
        "float64",
        "1",
        "particle (label > 0) volume fraction in a cube of side local_window_um centred on the centroid, "
        "clipped to the volume",
    ),
    ("dist_nearest_um", "float64", "um", "mean centroid distance to the 6 nearest particles"),
    ("elong_std", "float64", "1", "standard deviation (N, ddof 0) of elongation over the 6 nearest particles"),
    ("volume_std", "float64", "um3", "standard deviation (N, ddof 0) of volume_um3 over the 6 nearest particles"),
    (
        "orien_iso",
        "float64",
        "1",
        "nematic alignment of the major axis with the 6 nearest particles' major axes: "
        "mean (3 cos^2 theta - 1) / 2 (1 = parallel, 0 = isotropic, -0.5 = perpendicular)",
    ),
    ("sphericity_std", "float64", "1", "standard deviation (N, ddof 0) of sphericity over the 6 nearest particles (the seed's locSphericity)"),
    ("touches_border", "bool", "", "the particle's bounding box touches the volume boundary (shape features biased)"),
    # label-free segmentation confidence (nmc_assets/segmentation/confidence.py); null without view maps
    ("conf_view_agreement", "float64", "1", "1 - mean over the particle's voxels of (max - min) of the xy, xz and yz view probabilities (1 = the three views agree)"),
    ("conf_boundary_margin", "float64", "1", "mean fused view probability inside the particle minus in a 0.4 um shell outside it, clipped to [0, 1]"),
    ("conf_size_agreement", "float64", "1", "exp(-|ln(r_eq / r_net)|): equivalent-sphere radius of the label vs the largest fused mean ray distance inside it (1 = the size the network sees)"),
    ("conf_shape", "float64", "1", "shape plausibility: sphericity ramped from 0.5 (0) to 0.9 (1; 1 for particles touching the volume boundary) times 1 - exp(-volume_um3 / 1.8 um^3, the smallest physical particle)"),
    ("segmentation_confidence", "float64", "1", "probability that the particle is segmented right (IoU >= 0.5 with the truth), a logistic combination of the conf_* sub-scores fitted on simulator scans; null when the scan has no view maps"),
]

#: The ``li2022`` set (:mod:`nmc_assets.features.li2022`): per value column, (unit, the seed's name in
#: ``getAllFeatures.m``, relation to the default set's column, definition). Relation: "same" (same
#: quantity, same computation up to float), "converted" (the seed's quantity, scaled from voxels to the
#: column's unit), "inverted" (the reciprocal direction of the default set's), "different" (another
#: quantity under the same name). Identifier columns and touches_border are as in the default set.
LI2022_COLUMNS: dict[str, tuple[str, str, str, str]] = {
    "x_um": ("um", "pX", "converted", "centroid of the solid voxels along volume axis 2, index * voxel_size_um (seed: 1-based voxels)"),
    "y_um": ("um", "pY", "converted", "centroid of the solid voxels along volume axis 1"),
    "z_um": ("um", "pZ", "converted", "centroid of the solid voxels along volume axis 0"),
    "yaw_deg": ("deg", "OriZ", "different", "yaw of the solid's principal axes (normalised central second moments + 1/12, as regionprops), default-set convention (regionprops3's Euler convention is not reproducible)"),
    "pitch_deg": ("deg", "OriY", "different", "pitch of the solid's principal axes (see yaw_deg)"),
    "roll_deg": ("deg", "OriX", "different", "roll of the solid's principal axes (see yaw_deg)"),
    "e_density": ("phase", "EDensity", "same", "mean intensity over the closed, filled particle (fill = imfill(imclose(solid, ball r=10 voxels)))"),
    "homogeneity": ("phase", "Homogeneity", "inverted", "standard deviation (N-1) of the intensity over the closed, filled particle (the seed names it homogeneity; larger = less homogeneous)"),
    "surface_outer_um2": ("um2", "SurfOuter", "different", "count of boundary voxels (6-connected bwperim) of the closed, filled particle, times voxel_size_um^2"),
    "surface_inner_um2": ("um2", "SurfInner", "different", "boundary voxel count of the solid minus that of the closed, filled particle, times voxel_size_um^2"),
    "volume_um3": ("um3", "Volume", "converted", "voxel count of the closed (ball r=10 voxels), filled solid, times voxel_size_um^3 (= the filled label unless the closing bridges concavities or gaps)"),
    "damage": ("1", "Damage", "different", "(closed filled voxels - solid voxels) / closed filled voxels"),
    "elongation": ("1", "Elongation", "same", "longest / shortest principal axis of the solid (square root of the eigenvalue ratio)"),
    "sphericity": ("1", "Sphericity", "different", "36 pi V^2 / S^3, V = filled voxel count, S = boundary voxel count of the solid (outer + inner)"),
    "vs_ratio": ("1", "VSratio", "different", "V^(1/3) / S^(1/2), V and S as for sphericity (voxel units; scale-free)"),
    "rough_outer": ("1", "RoughOuter", "inverted", "boundary voxel count after a 3x3x3 median / before, of the closed, filled particle (<= 1 for smooth bodies; smaller = rougher)"),
    "rough_inner": ("1", "RoughInner", "inverted", "inner boundary count (solid minus filled) after a 3x3x3 median / before; 1 without inner surface"),
    "contact": ("1", "Contact", "different", "occupied (any label) fraction of the ring dilate(fill) - fill, ball r=10 voxels, fill = closed, filled particle"),
    "p_density": ("1", "PDensity", "different", "solid (any label) voxel fraction of the particle's box (bounding box +- round(10 um / voxel)) clipped to the volume"),
    "dist_nearest_um": ("um", "DisNearest", "converted", "mean distance between rounded centroids to the 6 nearest particles, times voxel_size_um"),
    "elong_std": ("1", "locElongation", "same", "standard deviation (N-1) of elongation over the 6 nearest particles"),
    "volume_std": ("um3", "locVolume", "same", "standard deviation (N-1) of volume_um3 over the 6 nearest particles"),
    "orien_iso": ("deg", "locOri", "different", "max over roll, pitch, yaw of their standard deviation (N-1) over the 6 nearest particles"),
    "sphericity_std": ("1", "locSphericity", "same", "standard deviation (N-1) of sphericity over the 6 nearest particles"),
}

#: Why the default set departs from the seed's computation, per value column (docs/features.md).
DEPARTURES: dict[str, str] = {
    "x_um": "physical units; the solid and filled centroids differ by the cracks' asymmetry only",
    "y_um": "as x_um", "z_um": "as x_um",
    "yaw_deg": "moments of the filled particle (cracks do not tilt the axes); angles with canonical axis signs",
    "pitch_deg": "as yaw_deg", "roll_deg": "as yaw_deg",
    "e_density": "the filled label itself, without the 10-voxel closing (which fills the particle's concavities "
    "up to ~10 voxels deep: 0.7 um at 70 nm, more of the particle at coarser voxels)",
    "homogeneity": "the paper's wording (homogeneity = inverse of the std): more homogeneous = larger",
    "surface_outer_um2": "areas (um^2) of a smoothed isosurface; a boundary-voxel count depends on orientation "
    "and is about 0.82 of the area on a ball",
    "surface_inner_um2": "the crack surface itself (isosurface at the solid threshold), not a difference of "
    "counts that can be negative",
    "volume_um3": "the filled label, without the closing (see e_density)",
    "damage": "voxels below the solid threshold inside the filled label: a crack the closing cannot bridge "
    "(wider than 20 voxels) or a concavity it fills no longer changes damage",
    "elongation": "moments of the filled particle (see yaw_deg)",
    "sphericity": "outer surface only: 1 for a ball whatever its cracks (the seed's uses outer + inner "
    "counts, about 1.9 for an intact digital ball, and falls with cracking)",
    "vs_ratio": "outer surface only (see sphericity)",
    "rough_outer": "the paper's wording (rougher = larger); areas, not counts",
    "rough_inner": "the paper's wording (rougher = larger); defined (1) without inner surface",
    "contact": "surfaces that touch: a 10-voxel ring counts neighbours up to 0.7-4 um away, by voxel size",
    "p_density": "a cube of fixed side around the centroid, the same for every particle size",
    "dist_nearest_um": "unrounded centroids, in um",
    "elong_std": "the real 6 nearest particles (the seed's value is always 0)",
    "volume_std": "as elong_std",
    "orien_iso": "a nematic order parameter of the major axes (1 = aligned), independent of the Euler "
    "convention, where the std of Euler angles jumps at +-90 degrees",
    "sphericity_std": "as elong_std (the seed's value is always 0)",
}


#: The feature sets a user can select.
FEATURE_SETS: tuple[str, ...] = ("default", "li2022")


#: Column names in docs/design.md §3.3 order.
FEATURE_COLUMNS: list[str] = [c[0] for c in _COLUMNS]
#: Arrow type name per column ("string", "int64", "float64", "bool").
COLUMN_TYPES: dict[str, str] = {c[0]: c[1] for c in _COLUMNS}
#: ``{"description": ..., "unit": ...}`` per column.
COLUMN_DOCS: dict[str, dict[str, str]] = {c[0]: {"description": c[3], "unit": c[2]} for c in _COLUMNS}

#: Neighbour statistics: NaN only when a scan has a single particle (no neighbours exist).
NEIGHBOUR_COLUMNS: list[str] = ["dist_nearest_um", "elong_std", "volume_std", "orien_iso", "sphericity_std"]
#: Label-free segmentation confidence (:mod:`nmc_assets.segmentation.confidence`): the sub-scores, then
#: the combined score; null when the scan has no view maps (e.g. a table rebuilt from labels only).
CONFIDENCE_COLUMNS: list[str] = ["conf_view_agreement", "conf_boundary_margin", "conf_size_agreement", "conf_shape",
                                 "segmentation_confidence"]
#: Columns that may be null: ``cycles`` (unknown cycling), neighbour statistics (single-particle scan),
#: the confidence columns (no view maps).
NULLABLE_COLUMNS: list[str] = ["cycles", *NEIGHBOUR_COLUMNS, *CONFIDENCE_COLUMNS]
#: Columns that must never be NaN/null.
REQUIRED_COLUMNS: list[str] = [c for c in FEATURE_COLUMNS if c not in NULLABLE_COLUMNS]

_DUCKDB_TYPES = {"string": "VARCHAR", "int64": "BIGINT", "float64": "DOUBLE", "bool": "BOOLEAN"}


def duckdb_column_types() -> dict[str, str]:
    """DuckDB SQL type per column (for an empty ``particle_features`` view)."""
    return {name: _DUCKDB_TYPES[t] for name, t in COLUMN_TYPES.items()}


def column_docs(feature_set: str = "default") -> dict[str, dict[str, str]]:
    """``{"description", "unit"}`` per column of ``feature_set`` (:data:`FEATURE_SETS`)."""
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; choose one of {list(FEATURE_SETS)}")
    if feature_set == "default":
        return COLUMN_DOCS
    docs = dict(COLUMN_DOCS)
    for name, (unit, seed, relation, text) in LI2022_COLUMNS.items():
        docs[name] = {"description": f"li2022 ({seed}, {relation}): {text}", "unit": unit}
    return docs


def arrow_schema(feature_set: str = "default"):
    """The pyarrow schema with per-field ``description`` and ``unit`` metadata of ``feature_set``."""
    import pyarrow as pa

    docs = column_docs(feature_set)
    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
    fields = [
        pa.field(name, types[t], nullable=True,
                 metadata={"description": docs[name]["description"], "unit": docs[name]["unit"]})
        for name, t in COLUMN_TYPES.items()
    ]
    return pa.schema(fields, metadata={"table": "particle_features", "contract": "docs/design.md §3.3",
                                       "feature_set": feature_set})
