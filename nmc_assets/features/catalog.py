"""The DuckDB catalog ``warehouse/nmc.duckdb``: SQL over every scan's features (docs/design.md §3.1, 3.3).

Contents:

- view ``particle_features``: all ``warehouse/particle_features/scan_id=*/features.parquet`` files
  (Parquet glob, hive partitioning; new partitions appear without a rebuild). When no Parquet exists
  yet it is an empty view with the docs/design.md §3.3 columns, so the catalog is always valid.
- view ``scans``: one row per scan (drop folder, tomograms, labels or features) with its metadata
  (voxel size, cycles, sample, beamline from the tomogram's Zarr attributes, else the sidecar) and its
  processing status (tomogram / fused labels / features present, feature row count). A snapshot taken
  when the catalog is built (table ``scan_registry``).
- table ``damage_drivers``: a copy of ``warehouse/analytics/damage_drivers.parquet`` when present,
  else empty with the columns (condition, attribute, mean_abs_shap, std_abs_shap, rank).

The catalog is rebuilt atomically: a new DuckDB file is written next to the old one and renamed over
it, so a reader never sees a half-built catalog. Readers go through :mod:`nmc_assets.features.sql`,
which locks the connection to the catalog.
"""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path

import pandas as pd

from nmc_assets.features.columns import FEATURE_COLUMNS, duckdb_column_types
from nmc_assets.ingest.errors import ScanError
from nmc_assets.ingest.sidecar import read_sidecar
from nmc_assets.paths import LABELS_SUFFIXES, DataLayout, is_valid_scan_id, split_incoming_name

DAMAGE_DRIVERS_COLUMNS = {
    "condition": "VARCHAR",
    "attribute": "VARCHAR",
    "mean_abs_shap": "DOUBLE",
    "std_abs_shap": "DOUBLE",
    "rank": "INTEGER",
}

SCAN_COLUMNS = {
    "scan_id": "VARCHAR",
    "source_file": "VARCHAR",
    "voxel_size_um": "DOUBLE",
    "cycles": "BIGINT",
    "sample": "VARCHAR",
    "beamline": "VARCHAR",
    "metadata_from": "VARCHAR",
    "has_ground_truth_labels": "BOOLEAN",
    "has_truth_table": "BOOLEAN",
    "tomogram_present": "BOOLEAN",
    "fused_labels_present": "BOOLEAN",
    "features_present": "BOOLEAN",
    "n_particles": "BIGINT",
    "status": "VARCHAR",
}


def _sql_str(s: str) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def _empty_select(columns: dict[str, str]) -> str:
    cols = ", ".join(f"CAST(NULL AS {t}) AS {name}" for name, t in columns.items())
    return f"SELECT {cols} WHERE false"


def _zarr_attrs_or_none(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        from nmc_assets.storage import zarr_attrs

        return zarr_attrs(path)
    except Exception:  # an unreadable store counts as absent in the status table
        return None


def _parquet_rows(path: Path) -> int | None:
    if not path.exists():
        return None
    try:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:
        return None


def scan_table(layout: DataLayout) -> pd.DataFrame:
    """One row per known scan with metadata and processing status (columns :data:`SCAN_COLUMNS`)."""
    sources: dict[str, dict] = {}
    if layout.incoming.is_dir():
        for p in sorted(layout.incoming.iterdir()):
            split = split_incoming_name(p.name)
            if split is None or not is_valid_scan_id(split[0]):
                continue
            scan_id, suffix = split
            entry = sources.setdefault(scan_id, {"files": set()})
            entry["files"].add(suffix)
            if suffix in (".tif", ".tiff", ".h5"):
                entry["source"] = str(p)
    tomo_dir = layout.warehouse / "tomograms"
    found = [p.name[: -len(".zarr")] for p in tomo_dir.glob("*.zarr")] if tomo_dir.is_dir() else []
    feat_dir = layout.particle_features_dir
    found += [p.name[len("scan_id=") :] for p in feat_dir.glob("scan_id=*")] if feat_dir.is_dir() else []
    for scan_id in found:
        if is_valid_scan_id(scan_id):  # anything else was not written by the platform
            sources.setdefault(scan_id, {"files": set()})

    rows = []
    for scan_id in sorted(sources):
        entry = sources[scan_id]
        attrs = _zarr_attrs_or_none(layout.tomogram(scan_id))
        meta_from = "tomogram" if attrs is not None else None
        if attrs is None and ".json" in entry["files"]:
            try:
                attrs, _ = read_sidecar(layout.sidecar(scan_id))
                meta_from = "sidecar"
            except ScanError:  # reported by the scan's own run; the catalog lists the scan without metadata
                attrs, meta_from = None, "invalid sidecar"
        attrs = attrs if isinstance(attrs, dict) else {}
        labels_present = layout.fused_labels(scan_id).exists()
        n_rows = _parquet_rows(layout.particle_features(scan_id))
        tomo_present = layout.tomogram(scan_id).exists()
        status = (
            "features" if n_rows is not None else "labels" if labels_present else "tomogram" if tomo_present else "incoming"
        )
        rows.append(
            {
                "scan_id": scan_id,
                "source_file": entry.get("source") or attrs.get("source_path"),
                "voxel_size_um": _float_or_none(attrs.get("voxel_size_um")),
                "cycles": _int_or_none(attrs.get("cycles")),
                "sample": _str_or_none(attrs.get("sample")),
                "beamline": _str_or_none(attrs.get("beamline")),
                "metadata_from": meta_from,
                "has_ground_truth_labels": bool(set(LABELS_SUFFIXES) & entry["files"]),
                "has_truth_table": ".truth.parquet" in entry["files"],
                "tomogram_present": tomo_present,
                "fused_labels_present": labels_present,
                "features_present": n_rows is not None,
                "n_particles": n_rows,
                "status": status,
            }
        )
    df = pd.DataFrame(rows, columns=list(SCAN_COLUMNS))
    df["cycles"] = df["cycles"].astype("Int64")
    df["n_particles"] = df["n_particles"].astype("Int64")
    df["voxel_size_um"] = df["voxel_size_um"].astype("float64")
    for c in ("scan_id", "source_file", "sample", "beamline", "metadata_from", "status"):
        df[c] = df[c].astype("string")
    for c in ("has_ground_truth_labels", "has_truth_table", "tomogram_present", "fused_labels_present", "features_present"):
        df[c] = df[c].astype("bool")
    return df


def _float_or_none(x):
    try:
        value = None if x is None else float(x)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if value is None or math.isfinite(value) else None


def _int_or_none(x):
    try:
        value = None if x is None else int(x)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if value is None or abs(value) < 2**63 else None


def _str_or_none(x):
    return None if x is None else str(x)


def build_catalog(layout: DataLayout) -> Path:
    """(Re)build ``layout.catalog`` atomically and return its path.

    Writes a new DuckDB file next to the catalog, then renames it over the old one. Call it from a
    single writer (the ``duckdb`` pool); readers are never blocked by it.
    """
    import duckdb

    target = Path(layout.catalog)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        con = duckdb.connect(str(tmp))
        try:
            _create_particle_features_view(con, layout)
            scans = scan_table(layout)
            con.register("scans_df", scans)
            col_defs = ", ".join(f"{c} {t}" for c, t in SCAN_COLUMNS.items())
            con.execute(f"CREATE TABLE scan_registry ({col_defs})")
            con.execute(f"INSERT INTO scan_registry SELECT {', '.join(SCAN_COLUMNS)} FROM scans_df")
            con.unregister("scans_df")
            con.execute("CREATE VIEW scans AS SELECT * FROM scan_registry ORDER BY scan_id")
            _create_damage_drivers(con, layout)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            if leftover.exists():
                leftover.unlink()
    return target


def _create_particle_features_view(con, layout: DataLayout) -> None:
    glob = layout.particle_features_glob
    if list(layout.particle_features_dir.glob("*/features.parquet")):
        cols = ", ".join(FEATURE_COLUMNS)
        con.execute(
            f"CREATE VIEW particle_features AS SELECT {cols} FROM "
            f"read_parquet({_sql_str(glob)}, hive_partitioning = true, union_by_name = true)"
        )
    else:
        con.execute(f"CREATE VIEW particle_features AS {_empty_select(duckdb_column_types())}")


def _create_damage_drivers(con, layout: DataLayout) -> None:
    src = layout.damage_drivers
    col_defs = ", ".join(f"{c} {t}" for c, t in DAMAGE_DRIVERS_COLUMNS.items())
    if src.exists():
        con.execute(f"CREATE TABLE damage_drivers AS SELECT * FROM read_parquet({_sql_str(str(src))})")
    else:
        con.execute(f"CREATE TABLE damage_drivers ({col_defs})")
