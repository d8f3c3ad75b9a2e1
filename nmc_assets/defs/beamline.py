"""Group ``beamline``: the validated tomogram of each scan, and the sensor that watches the drop folder."""

import hashlib
import json

import dagster as dg
from pydantic import Field

from nmc_assets.defs.partitions import scan_partitions
from nmc_assets.defs.resources import DataRootResource
from nmc_assets.blockwise import Progress
from nmc_assets.ingest import ScanError, plan_incoming
from nmc_assets.ingest.tomogram import write_tomogram
from nmc_assets.previews import volume_preview_markdown
from nmc_assets.storage import open_zarr

RAW_TOMOGRAM_VERSION = "ingest-v3"  # v2: streamed, source dtype kept (uint8/uint16/int8/int16/float32); v3: OME-Zarr + pyramid


class RawTomogramConfig(dg.Config):
    """Options of ``raw_tomogram`` (the defaults follow docs/design.md §3.1)."""

    require_sidecar: bool = Field(
        default=False,
        description="Fail when <scan>.json is missing instead of using defaults (voxel_size_um 0.07) with a warning.",
    )


@dg.asset(
    partitions_def=scan_partitions,
    group_name="beamline",
    kinds={"numpy", "zarr", "tiff", "hdf5"},
    code_version=RAW_TOMOGRAM_VERSION,
    owners=["team:beamline"],
    tags={"modality": "xct"},
)
def raw_tomogram(
    context: dg.AssetExecutionContext, config: RawTomogramConfig, data_root: DataRootResource
) -> dg.MaterializeResult:
    """One scan from the drop folder, validated and stored as a (z, y, x) Zarr array, streamed in slabs.

    Reads ``incoming/<scan>.tif|.tiff`` (tifffile) or ``incoming/<scan>.h5`` (``/exchange/data``) with
    the optional sidecar ``<scan>.json`` a slab of planes at a time (bounded memory); moves the
    sidecar's ``thickness_axis`` to z; keeps the original grey (phase) values and, for 8/16-bit integer
    and float32 scans, the source dtype (thickness_axis "y" gives file axes (y, z, x)). Fails with the
    file and the problem for truncated, 2D, empty, constant or non-finite volumes, mixed TIFF pages and
    labels of another shape. Writes ``warehouse/tomograms/<scan>.zarr`` atomically with attrs
    ``scan_id, source_path, source_sha256, voxel_size_um, cycles, sample, beamline, thickness_axis,
    shape, dtype, source_dtype, percentiles, warnings``. The drop folder is never changed.
    """
    layout = data_root.layout
    scan_id = context.partition_key
    out = layout.tomogram(scan_id)
    progress = Progress(f"raw_tomogram {scan_id}", 1, context.log.info, unit="planes")

    def report(done: int, total: int) -> None:
        progress.total = total
        progress.update(done)

    try:
        if config.require_sidecar and not layout.sidecar(scan_id).is_file():
            raise ScanError(layout.sidecar(scan_id), "sidecar missing (require_sidecar is set)")
        attrs, warnings = write_tomogram(scan_id, layout.incoming, out, progress=report)
    except ScanError as err:
        raise dg.Failure(description=str(err), metadata={"file": dg.MetadataValue.path(str(err.path)),
                                                         "problem": err.problem}, allow_retries=False) from err
    for warning in warnings:
        context.log.warning(f"{scan_id}: {warning}")
    volume = open_zarr(out)
    pct = attrs["percentiles"]
    voxel = attrs["voxel_size_um"]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out)),
            "shape": str(tuple(volume.shape)),
            "dtype": str(volume.dtype),
            "source_dtype": attrs["source_dtype"],
            "voxel_size_um": dg.MetadataValue.float(voxel),
            "cycles": dg.MetadataValue.int(attrs["cycles"]) if attrs["cycles"] is not None else dg.MetadataValue.null(),
            "sample": attrs["sample"] or "",
            "thickness_axis": attrs["thickness_axis"],
            "size_um": str(tuple(round(s * voxel, 3) for s in volume.shape)),
            "intensity_percentiles": dg.MetadataValue.json(pct),
            "intensity_p1_p99": f"{pct['1']:.4g} .. {pct['99']:.4g}",
            "warnings": dg.MetadataValue.json(list(warnings)),
            "source_path": dg.MetadataValue.path(attrs["source_path"]),
            "source_sha256": attrs["source_sha256"],
            "has_ground_truth": layout.ground_truth_labels(scan_id) is not None,
            "preview": dg.MetadataValue.md(volume_preview_markdown(volume)),
        },
        # same input bytes + sidecar + code -> same data version (downstream staleness follows content)
        data_version=dg.DataVersion(hashlib.sha256(json.dumps(attrs, sort_keys=True).encode()).hexdigest()[:16]),
    )


#: Everything per scan from ``raw_tomogram`` down (segmentation, features ...): assets partitioned by
#: scan only, so unpartitioned downstream assets (catalog, models) are left to their own automation.
#: Resolved lazily when the definitions load, so assets added by other modules join automatically.
scan_processing_selection = dg.AssetSelection.assets("raw_tomogram").downstream() & dg.AssetSelection.from_string(
    'partitions:"dynamic"'
)

scan_processing_job = dg.define_asset_job(
    "scan_processing_job",
    selection=scan_processing_selection,
    description="Process one scan (partition key = scan id): raw_tomogram and every per-scan asset after it.",
    tags={"nmc/pipeline": "scan_processing"},
)


@dg.sensor(
    job=scan_processing_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Watches incoming/ for new or changed scans. A scan is launched once all its files kept the "
        "same size and mtime over two ticks; its id is registered as a 'scan' partition and one run "
        "of scan_processing_job is requested with run_key '<scan>:<fingerprint>'. Invalid file names "
        "and unreadable files are logged and skipped. Off by default: turn it on in the UI."
    ),
)
def incoming_scans(context: dg.SensorEvaluationContext, data_root: DataRootResource) -> dg.SensorResult:
    """Register and launch stable new scans from the drop folder (see the description)."""
    incoming = data_root.layout.incoming
    cursor = json.loads(context.cursor) if context.cursor else None
    plan = plan_incoming(incoming, cursor)
    for problem in plan.new_problems:
        context.log.warning(f"skipped drop-folder file: {problem}")
    for problem in plan.rejected:
        context.log.error(f"unreadable scan {problem.scan_id!r}: {problem}")
    cursor_text = json.dumps(plan.cursor, separators=(",", ":"), sort_keys=True)
    if not plan.launch:
        return dg.SensorResult(skip_reason=dg.SkipReason(plan.summary()), cursor=cursor_text)

    scan_ids = [scan_id for scan_id, _ in plan.launch]
    known = set(context.instance.get_dynamic_partitions(scan_partitions.name))
    new_keys = [s for s in scan_ids if s not in known]
    context.log.info(f"launching {', '.join(scan_ids)}" + (f" (new partitions: {', '.join(new_keys)})" if new_keys else ""))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=scan_id, run_key=f"{scan_id}:{fp}",
                          tags={"nmc/scan_id": scan_id, "nmc/source_fingerprint": fp})
            for scan_id, fp in plan.launch
        ],
        dynamic_partitions_requests=[scan_partitions.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor_text,
    )
