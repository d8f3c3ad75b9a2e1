"""Group ``features``: per-particle feature tables (Parquet) and the DuckDB catalog over them.

Thin Dagster layer over :mod:`nmc_assets.features` (all science lives there).
"""

import time
from typing import Literal

import dagster as dg
import numpy as np
from pydantic import Field

from nmc_assets.defs.config import CoreSettingsConfig, core_settings
from nmc_assets.defs.partitions import scan_partitions
from nmc_assets.features.extract import FeatureSettings
from nmc_assets.defs.resources import BlocksResource, DataRootResource

GROUP = "features"
FEATURES_CODE_VERSION = "features-v4"  # v2: sphericity_std, feature_set; v3: segmentation confidence columns; v4: contact along the face normal
CATALOG_CODE_VERSION = "catalog-v1"
#: Parquet key-value metadata written with every features file (read back by the checks).
META_LABEL_SOURCE = b"nmc.label_source"
META_LABELS_PATH = b"nmc.labels_path"
META_N_LABELS = b"nmc.n_labels"
META_SOLID_THRESHOLD = b"nmc.solid_threshold"
META_FEATURE_SET = b"nmc.feature_set"


@core_settings(FeatureSettings)
class ParticleFeaturesConfig(CoreSettingsConfig):
    """Which labels, the packing-density window, the solid threshold, and the method settings of
    :class:`~nmc_assets.features.extract.FeatureSettings` (``feature_set``: "default" or "li2022")."""

    label_source: Literal["fused", "truth"] = Field(
        default="fused",
        description='"fused": warehouse/fused_labels/<scan>.zarr; "truth": incoming/<scan>.labels.tif (ground truth)',
    )
    local_window_um: float = Field(default=20.0, description="side of the cube for p_density (um)")
    solid_threshold: float | None = Field(
        default=None,
        description="intensity at or above which a voxel is solid; empty = midpoint between the median "
        "background and the median particle intensity of the scan",
    )
    require_confidence: bool = Field(
        default=False,
        description="fail when the scan has no view maps (view_probabilities); default: the segmentation "
        "confidence columns are null and the materialization says why",
    )


def _column_schema(feature_set: str = "default") -> dg.TableSchema:
    from nmc_assets.features import FEATURE_COLUMNS
    from nmc_assets.features.columns import COLUMN_TYPES, column_docs

    COLUMN_DOCS = column_docs(feature_set)
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name,
                COLUMN_TYPES[name],
                description=COLUMN_DOCS[name]["description"]
                + (f" [{COLUMN_DOCS[name]['unit']}]" if COLUMN_DOCS[name]["unit"] else ""),
            )
            for name in FEATURE_COLUMNS
        ]
    )


def _load_labels(layout, scan_id: str, source: str) -> tuple[np.ndarray, str]:
    if source == "truth":
        from nmc_assets.ingest import load_labels

        path = layout.ground_truth_labels(scan_id)
        if path is None:
            raise dg.Failure(description=f"label_source=truth but {layout.incoming / (scan_id + '.labels.tif')} does not exist",
                             allow_retries=False)
        return np.asarray(load_labels(scan_id, layout.incoming)), str(path)
    from nmc_assets.storage import open_zarr

    path = _fused_labels_path(layout, scan_id)
    return open_zarr(path), str(path)  # lazy: read block by block by whoever uses it


def _fused_labels_path(layout, scan_id: str):
    path = layout.fused_labels(scan_id)
    if not path.exists():
        raise dg.Failure(description=f"fused labels {path} do not exist: materialize fused_labels for {scan_id} first", allow_retries=False)
    return path


@dg.asset(
    partitions_def=scan_partitions,
    group_name=GROUP,
    deps=[dg.AssetKey("fused_labels"), dg.AssetKey("raw_tomogram"), dg.AssetKey("view_probabilities")],
    kinds={"parquet", "scipy", "pandas"},
    code_version=FEATURES_CODE_VERSION,
    owners=["team:features"],
)
def particle_features(
    context: dg.AssetExecutionContext, config: ParticleFeaturesConfig, data_root: DataRootResource,
    blocks: BlocksResource,
) -> dg.MaterializeResult:
    """One row per particle of a scan with the docs/design.md §3.3 attributes, in physical units.

    Reads the tomogram (``warehouse/tomograms/<scan>.zarr``, with ``voxel_size_um`` and ``cycles`` from
    its attributes) and the instance labels (fused, or the ground truth with ``label_source: truth``).
    Position, orientation (yaw/pitch/roll of the principal axes), intensity, marching-cubes surfaces,
    volume, damage ((filled - solid) / filled), shape, roughness, contact, local packing density and
    statistics over the 6 nearest particles, computed on per-particle crops. Fused labels are processed
    block by block on Dask (:func:`~nmc_assets.features.blockwise.compute_particle_features_zarr`: the
    local cores, or the cluster at ``NMC_DASK_SCHEDULER``; memory within ``NMC_MEMORY_BUDGET``), giving
    the same table as reading the volumes whole; ground-truth labels (a TIFF) are read whole. Writes
    ``warehouse/particle_features/scan_id=<scan>/features.parquet`` atomically, with each column's
    description and unit in the Parquet schema. Config ``feature_set: li2022`` computes the attributes
    as the paper's ``getAllFeatures.m`` does (docs/features.md), reading the labels whole; the set is
    recorded in the Parquet schema metadata and the materialization. The ``conf_*`` and
    ``segmentation_confidence`` columns come from the scan's view maps
    (:mod:`nmc_assets.segmentation.confidence`, block by block on the same blocks resource); without view
    maps they are null (metadata ``confidence`` says why), or the run fails with ``require_confidence``.
    """
    import pyarrow.parquet as pq

    from nmc_assets.features import compute_particle_features
    from nmc_assets.features.blockwise import compute_particle_features_zarr
    from nmc_assets.features.extract import estimate_solid_threshold
    from nmc_assets.features.table import features_to_arrow
    from nmc_assets.storage import atomic_path, read_zarr, zarr_attrs

    layout = data_root.layout
    scan_id = context.partition_key
    tomo_path = layout.tomogram(scan_id)
    if not tomo_path.exists():
        raise dg.Failure(description=f"tomogram {tomo_path} does not exist: materialize raw_tomogram for {scan_id} first", allow_retries=False)
    attrs = zarr_attrs(tomo_path)
    voxel = attrs.get("voxel_size_um")
    if voxel is None:
        raise dg.Failure(description=f"{tomo_path}: attribute voxel_size_um is missing", allow_retries=False)
    cycles = attrs.get("cycles")
    try:
        settings = config.to_core()
    except ValueError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    t0 = time.perf_counter()
    if config.label_source == "fused" and settings.feature_set == "default":
        # block by block on Dask (the blocks resource: a cluster, else every local core), within its memory budget
        labels_path = str(_fused_labels_path(layout, scan_id))
        try:
            with blocks.runner() as runner:
                context.log.info(f"particle_features {scan_id}: blocks on {runner.where}")
                result = compute_particle_features_zarr(
                    labels_path, tomo_path, float(voxel), scan_id=scan_id, cycles=None if cycles is None else int(cycles),
                    local_window_um=config.local_window_um, solid_threshold=config.solid_threshold, settings=settings,
                    runner=runner,
                    progress=context.log.info, memory_budget=blocks.budget_bytes(),
                )
            if result.table.empty and config.solid_threshold is None:
                raise ValueError(f"{labels_path}: no labelled voxels: cannot estimate the solid threshold")
        except ValueError as exc:  # inputs that cannot work (shapes, dtypes): retrying does not help
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        df, threshold = result.table, result.solid_threshold
    else:
        intensity = read_zarr(tomo_path)
        labels, labels_path = _load_labels(layout, scan_id, config.label_source)
        if labels.shape != intensity.shape:
            raise dg.Failure(
                description=f"labels {labels_path} have shape {labels.shape}, tomogram {tomo_path} has {intensity.shape}",
                allow_retries=False,
            )
        threshold = config.solid_threshold if config.solid_threshold is not None else estimate_solid_threshold(labels, intensity)
        df = compute_particle_features(
            labels,
            intensity,
            float(voxel),
            scan_id=scan_id,
            cycles=None if cycles is None else int(cycles),
            local_window_um=config.local_window_um,
            solid_threshold=threshold,
            settings=settings,
        )
    conf_note = _add_confidence(context, df, layout, scan_id, config, blocks, float(voxel),
                                labels_path if config.label_source == "fused" else labels)
    seconds = time.perf_counter() - t0
    n_labels = int(len(df))

    table = features_to_arrow(df, settings.feature_set)
    table = table.replace_schema_metadata(
        {
            **(table.schema.metadata or {}),
            META_LABEL_SOURCE: config.label_source.encode(),
            META_LABELS_PATH: labels_path.encode(),
            META_N_LABELS: str(n_labels).encode(),
            META_SOLID_THRESHOLD: repr(float(threshold)).encode(),
            META_FEATURE_SET: settings.feature_set.encode(),
        }
    )
    out = layout.particle_features(scan_id)
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")

    def stat(col: str, fn) -> dg.MetadataValue:
        vals = df[col].to_numpy(dtype=float, na_value=np.nan)
        vals = vals[np.isfinite(vals)]
        return dg.MetadataValue.float(float(fn(vals))) if vals.size else dg.MetadataValue.null()

    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(n_labels),
            "dagster/column_schema": dg.MetadataValue.table_schema(_column_schema(settings.feature_set)),
            "feature_set": settings.feature_set,
            "path": dg.MetadataValue.path(str(out)),
            "label_source": config.label_source,
            "labels_path": dg.MetadataValue.path(labels_path),
            "voxel_size_um": dg.MetadataValue.float(float(voxel)),
            "cycles": dg.MetadataValue.int(int(cycles)) if cycles is not None else dg.MetadataValue.null(),
            "solid_threshold": dg.MetadataValue.float(float(threshold)),
            "median_volume_um3": stat("volume_um3", np.median),
            "mean_damage": stat("damage", np.mean),
            "median_damage": stat("damage", np.median),
            "mean_sphericity": stat("sphericity", np.mean),
            "mean_contact": stat("contact", np.mean),
            "median_dist_nearest_um": stat("dist_nearest_um", np.median),
            "touching_border": dg.MetadataValue.int(int(df["touches_border"].sum())),
            "confidence": conf_note,
            "median_segmentation_confidence": stat("segmentation_confidence", np.median),
            "seconds": dg.MetadataValue.float(round(seconds, 3)),
            "ms_per_particle": dg.MetadataValue.float(round(1000 * seconds / max(1, n_labels), 3)),
            "summary": dg.MetadataValue.md(_summary_markdown(df)),
        }
    )


def _add_confidence(context, df, layout, scan_id: str, config: ParticleFeaturesConfig, blocks: BlocksResource,
                    voxel: float, labels) -> str:
    """Fill the confidence columns of ``df`` in place from the scan's view maps (``labels``: the Zarr path
    of fused labels, or the label array); returns what was done, for the metadata."""
    from nmc_assets.features.columns import CONFIDENCE_COLUMNS
    from nmc_assets.segmentation.confidence import MissingViewMaps, confidence_columns, view_scores

    views = layout.view_probabilities(scan_id)
    if df.empty:
        return "no particles"
    try:
        if isinstance(labels, str):
            with blocks.runner() as runner:
                scores = view_scores(labels, views, voxel, runner=runner, memory_budget=blocks.budget_bytes())
        else:
            scores = view_scores(labels, views, voxel)
        df[CONFIDENCE_COLUMNS] = confidence_columns(df, scores)
    except MissingViewMaps as exc:
        if config.require_confidence:
            raise dg.Failure(description=f"require_confidence: {exc}", allow_retries=False) from exc
        context.log.warning(f"particle_features {scan_id}: segmentation confidence not computed: {exc}")
        return f"not computed: {exc}"
    except ValueError as exc:  # stale view maps, labels of another run: retrying does not help
        raise dg.Failure(description=f"segmentation confidence: {exc}", allow_retries=False) from exc
    return f"computed from {views}"


def _summary_markdown(df) -> str:
    cols = ["volume_um3", "damage", "sphericity", "elongation", "contact", "p_density", "dist_nearest_um"]
    lines = ["| column | min | median | mean | max |", "| --- | --- | --- | --- | --- |"]
    for c in cols:
        v = df[c].to_numpy(dtype=float, na_value=np.nan)
        v = v[np.isfinite(v)]
        if v.size:
            lines.append(f"| {c} | {v.min():.4g} | {np.median(v):.4g} | {v.mean():.4g} | {v.max():.4g} |")
    return "\n".join(lines)


def _fmt(value) -> str:
    import pandas as pd

    return "" if value is None or pd.isna(value) else str(value)


def _read_features_file(layout, scan_id: str):
    import pyarrow.parquet as pq

    path = layout.particle_features(scan_id)
    return path, pq.read_table(path)


@dg.asset_check(asset=particle_features, partitions_def=scan_partitions, description="every docs/design.md §3.3 column, in order, with type, description and unit")
def particle_features_schema_complete(context: dg.AssetCheckExecutionContext, data_root: DataRootResource) -> dg.AssetCheckResult:
    """The Parquet file has exactly the docs/design.md §3.3 columns in order, with their types, descriptions and units."""
    from nmc_assets.features.checks import schema_problems

    path, table = _read_features_file(data_root.layout, context.partition_key)
    r = schema_problems(table.schema)
    return dg.AssetCheckResult(
        passed=r["passed"],
        metadata={"path": dg.MetadataValue.path(str(path)), "order_ok": r["order_ok"],
                  **{k: dg.MetadataValue.json(r[k]) for k in ("missing", "unexpected", "wrong_type", "undocumented")}},
    )


@dg.asset_check(asset=particle_features, partitions_def=scan_partitions, description="required columns have no NaN or null")
def particle_features_no_nan(context: dg.AssetCheckExecutionContext, data_root: DataRootResource) -> dg.AssetCheckResult:
    """Required columns (all but cycles and the neighbour statistics) contain no NaN, null or infinity."""
    from nmc_assets.features.checks import nan_counts

    path, table = _read_features_file(data_root.layout, context.partition_key)
    bad = nan_counts(table.to_pandas())
    return dg.AssetCheckResult(
        passed=not bad,
        metadata={"path": dg.MetadataValue.path(str(path)), "bad_values_per_column": dg.MetadataValue.json(bad),
                  "rows": table.num_rows},
    )


@dg.asset_check(asset=particle_features, partitions_def=scan_partitions, description="one row per label of the label volume used")
def particle_features_row_count(context: dg.AssetCheckExecutionContext, data_root: DataRootResource) -> dg.AssetCheckResult:
    """Row count (and particle ids) equal the distinct non-zero labels of the label volume the features came
    from (for the ``li2022`` set: the labels with a solid voxel, intensity >= the table's solid threshold)."""
    from nmc_assets.features.checks import row_count_matches
    from nmc_assets.storage import open_zarr

    layout = data_root.layout
    path, table = _read_features_file(layout, context.partition_key)
    meta = table.schema.metadata or {}
    source = meta.get(META_LABEL_SOURCE, b"fused").decode()
    labels, labels_path = _load_labels(layout, context.partition_key, source)
    solid_only = meta.get(META_FEATURE_SET, b"default").decode() == "li2022"
    image, threshold = None, None
    if solid_only:
        image, threshold = open_zarr(layout.tomogram(context.partition_key)), float(meta[META_SOLID_THRESHOLD].decode())
    r = row_count_matches(table.column("particle_id").to_pylist(), labels, image=image, min_intensity=threshold)
    return dg.AssetCheckResult(
        passed=r["passed"],
        metadata={"rows": r["rows"], "labels": r["labels"], "particle_ids_match_labels": r["ids_match"],
                  "label_source": source, "labels_path": dg.MetadataValue.path(labels_path),
                  "labels_with_solid_voxels_only": solid_only},
    )


class ConfidenceCheckConfig(dg.Config):
    threshold: float = Field(default=0.5, description="a particle is low-confidence when segmentation_confidence is below this")
    max_low_share: float = Field(default=0.02, description="the check warns when the share of low-confidence particles exceeds this "
                                 "(virtual scans: 0-0.5 % on default scans, 3-4 % on noisy ones with ~10 % wrong particles)")
    gallery_size: int = Field(default=6, description="least confident particles shown in the gallery")


@dg.asset_check(asset=particle_features, partitions_def=scan_partitions,
                description="share of low segmentation-confidence particles (label-free QC), with a gallery of the least confident")
def particle_features_confidence(context: dg.AssetCheckExecutionContext, config: ConfidenceCheckConfig,
                                 data_root: DataRootResource) -> dg.AssetCheckResult:
    """WARN when more than ``max_low_share`` of the scan's particles have ``segmentation_confidence`` below
    ``threshold``; metadata: the share, the median confidence and a gallery PNG of the least confident
    particles (xy slice through each centroid with its outline). Passes (skipped) when the table has no
    confidence (the scan had no view maps)."""
    from nmc_assets.previews import png_markdown
    from nmc_assets.segmentation.confidence_check import gallery_caption, gallery_png, least_confident, low_confidence_summary
    from nmc_assets.storage import open_zarr

    layout = data_root.layout
    scan = context.partition_key
    path, table = _read_features_file(layout, scan)
    df = table.to_pandas()
    if "segmentation_confidence" not in df.columns:
        df["segmentation_confidence"] = np.nan  # a table written before the confidence columns
    try:
        r = low_confidence_summary(df, config.threshold, config.max_low_share)
    except ValueError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    meta = {"path": dg.MetadataValue.path(str(path)), "threshold": dg.MetadataValue.float(config.threshold),
            "max_low_share": dg.MetadataValue.float(config.max_low_share), "particles": r["particles"]}
    if not r["computed"]:
        return dg.AssetCheckResult(passed=True, metadata={**meta, "skipped": "no segmentation confidence in the table (no view maps)"},
                                   description="skipped: the table has no segmentation confidence (no view maps)")
    meta.update({"scored": r["scored"], "low_confidence": r["low"],
                 "low_confidence_share": dg.MetadataValue.float(round(r["low_share"], 4)),
                 "median_confidence": dg.MetadataValue.float(r["median"])})
    rows = least_confident(df, config.gallery_size)
    source = (table.schema.metadata or {}).get(META_LABEL_SOURCE, b"fused").decode()
    png = gallery_png(open_zarr(layout.tomogram(scan)), _load_labels(layout, scan, source)[0], rows,
                      float(df["voxel_size_um"].iloc[0])) if len(rows) else None
    if png is not None:
        meta["gallery"] = dg.MetadataValue.md(gallery_caption(rows) + "\n\n" + png_markdown(png, "least confident particles", max_side=None))
    return dg.AssetCheckResult(
        passed=r["passed"], severity=dg.AssetCheckSeverity.WARN, metadata=meta,
        description=f"{r['low']} of {r['scored']} particles ({100 * r['low_share']:.1f} %) below confidence "
                    f"{config.threshold} ({'<=' if r['passed'] else '>'} {100 * config.max_low_share:.0f} %)")


@dg.asset(
    group_name=GROUP,
    deps=[particle_features, dg.AssetKey("damage_drivers")],
    kinds={"duckdb", "parquet"},
    code_version=CATALOG_CODE_VERSION,
    pool="duckdb",
    owners=["team:features"],
)
def particle_catalog(context: dg.AssetExecutionContext, data_root: DataRootResource) -> dg.MaterializeResult:
    """The DuckDB catalog ``warehouse/nmc.duckdb`` for SQL over every scan.

    Views ``particle_features`` (all scans' Parquet files, hive-partitioned by ``scan_id``) and
    ``scans`` (one row per scan: metadata and processing status), table ``damage_drivers`` (a copy of
    ``damage_drivers.parquet``, so the catalog follows that asset; empty before the first analytics
    run). This asset is the only writer of the DuckDB file. Rebuilt into a new file and renamed into
    place, so readers never see a half-built catalog; open it read-only, e.g.
    ``nmc-assets sql "SELECT scan_id, count(*) FROM particle_features GROUP BY 1"``.
    """
    from nmc_assets.features.catalog import build_catalog
    from nmc_assets.features.sql import catalog_row_counts, query_catalog_df

    layout = data_root.layout
    path = build_catalog(layout)
    counts = catalog_row_counts(path)
    per_scan = query_catalog_df("SELECT scan_id, status, n_particles, cycles FROM scans", path)
    table_md = "| scan | status | particles | cycles |\n| --- | --- | --- | --- |\n" + "\n".join(
        f"| {r.scan_id} | {r.status} | {_fmt(r.n_particles)} | {_fmt(r.cycles)} |" for r in per_scan.itertuples()
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "particle_features_rows": dg.MetadataValue.int(counts["particle_features"]),
            "scans_rows": dg.MetadataValue.int(counts["scans"]),
            "damage_drivers_rows": dg.MetadataValue.int(counts["damage_drivers"]),
            "scans": dg.MetadataValue.md(table_md),
            "query_example": dg.MetadataValue.md(
                '`nmc-assets sql "SELECT scan_id, count(*) AS particles, avg(damage) FROM particle_features GROUP BY scan_id"`'
            ),
        }
    )
