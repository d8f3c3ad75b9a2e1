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
    ("homogeneity", "float64", "1/phase", "1 / standard deviation of the intensity inside the filled particle"),
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
    ("sphericity", "float64", "1", "36 pi V^2 / S^3 with S = surface_outer_um2 (1 for a ball)"),
    ("vs_ratio", "float64", "um^-1/2", "V^(1/3) / S^(1/2) with V = volume_um3, S = surface_outer_um2"),
    (
        "rough_outer",
        "float64",
        "1",
        "outer surface area before / after smoothing: (unsmoothed voxel-mask isosurface + a0) / "
        "(surface_outer_um2 + a0), a0 = 6 voxel faces (voxel-scale roughness; about 1.08 for a digitised smooth body)",
    ),
    (
        "rough_inner",
        "float64",
        "1",
        "inner surface area before / after smoothing: (voxel isosurface of the unsmoothed void voxels next to "
        "the inner surface + a0) / (surface_inner_um2 + a0), a0 = 6 voxel faces (1 without inner surface)",
    ),
    (
        "contact",
        "float64",
        "1",
        "fraction of the filled particle's outer voxel faces that face another particle (faces on the volume border count as free surface)",
    ),
    (
        "p_density",
        "float64",
        "1",
        "particle (label > 0) volume fraction in a cube of side local_window_um centred on the centroid, "
        "clipped to the volume",
    ),
    ("dist_nearest_um", "float64", "um", "mean centroid distance to the 6 nearest particles"),
    ("elong_std", "float64", "1", "standard deviation of elongation over the 6 nearest particles"),
    ("volume_std", "float64", "um3", "standard deviation of volume_um3 over the 6 nearest particles"),
    (
        "orien_iso",
        "float64",
        "1",
        "nematic alignment of the major axis with the 6 nearest particles' major axes: "
        "mean (3 cos^2 theta - 1) / 2 (1 = parallel, 0 = isotropic, -0.5 = perpendicular)",
    ),
    ("touches_border", "bool", "", "the particle's bounding box touches the volume boundary (shape features biased)"),
]

#: Column names in docs/design.md §3.3 order.
FEATURE_COLUMNS: list[str] = [c[0] for c in _COLUMNS]
#: Arrow type name per column ("string", "int64", "float64", "bool").
COLUMN_TYPES: dict[str, str] = {c[0]: c[1] for c in _COLUMNS}
#: ``{"description": ..., "unit": ...}`` per column.
COLUMN_DOCS: dict[str, dict[str, str]] = {c[0]: {"description": c[3], "unit": c[2]} for c in _COLUMNS}

#: Neighbour statistics: NaN only when a scan has a single particle (no neighbours exist).
NEIGHBOUR_COLUMNS: list[str] = ["dist_nearest_um", "elong_std", "volume_std", "orien_iso"]
#: Columns that may be null: ``cycles`` (unknown cycling), neighbour statistics (single-particle scan).
NULLABLE_COLUMNS: list[str] = ["cycles", *NEIGHBOUR_COLUMNS]
#: Columns that must never be NaN/null.
REQUIRED_COLUMNS: list[str] = [c for c in FEATURE_COLUMNS if c not in NULLABLE_COLUMNS]

_DUCKDB_TYPES = {"string": "VARCHAR", "int64": "BIGINT", "float64": "DOUBLE", "bool": "BOOLEAN"}


def duckdb_column_types() -> dict[str, str]:
    """DuckDB SQL type per column (for an empty ``particle_features`` view)."""
    return {name: _DUCKDB_TYPES[t] for name, t in COLUMN_TYPES.items()}


def arrow_schema():
    """The pyarrow schema with per-field ``description`` and ``unit`` metadata."""
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
    fields = [
        pa.field(
            name,
            types[t],
            nullable=True,
            metadata={"description": COLUMN_DOCS[name]["description"], "unit": COLUMN_DOCS[name]["unit"]},
        )
        for name, t in COLUMN_TYPES.items()
    ]
    return pa.schema(fields, metadata={"table": "particle_features", "contract": "docs/design.md §3.3"})
