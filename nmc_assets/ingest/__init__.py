"""Ingest: reading and validating scans from the drop folder ``incoming/`` (docs/design.md).

Science core, no Dagster: :func:`find_scans` lists the drop folder, :func:`plan_incoming` decides a
sensor tick (stable files only), :func:`load_scan` reads and validates one scan, :class:`ScanError`
names the file and the problem. Input files are only ever opened for reading.
"""

from nmc_assets.ingest.dropfolder import (
    IncomingPlan,
    IncomingProblem,
    ScanFiles,
    file_state,
    find_scans,
    fingerprint,
    parse_cursor,
    plan_incoming,
    scan_state,
    stable_scans,
)
from nmc_assets.ingest.errors import ScanError
from nmc_assets.ingest.formats import check_header, probe_volume, read_volume, validate_volume
from nmc_assets.ingest.readers import (
    PERCENTILES,
    intensity_percentiles,
    load_labels,
    load_scan,
    move_thickness_axis,
    tomogram_attrs,
)
from nmc_assets.ingest.sidecar import DEFAULT_VOXEL_SIZE_UM, read_sidecar, validate_sidecar

__all__ = [
    "DEFAULT_VOXEL_SIZE_UM", "PERCENTILES", "IncomingPlan", "IncomingProblem", "ScanError", "ScanFiles",
    "check_header", "file_state", "find_scans", "fingerprint", "intensity_percentiles", "load_labels", "load_scan",
    "move_thickness_axis", "parse_cursor", "plan_incoming", "probe_volume", "read_sidecar", "read_volume",
    "scan_state", "stable_scans", "tomogram_attrs", "validate_sidecar", "validate_volume",
]
