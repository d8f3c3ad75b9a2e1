"""The optional JSON sidecar of a scan (docs/design.md §3.1): ``incoming/<scan_id>.json``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from nmc_assets.ingest.errors import ScanError

#: Voxel size used when the sidecar does not give one (micrometres).
DEFAULT_VOXEL_SIZE_UM = 0.07
THICKNESS_AXES = ("z", "y", "x")
#: Voxel sizes outside this range (um) are accepted with a warning: X-ray nano-tomography is ~0.01-1 um.
PLAUSIBLE_VOXEL_SIZE_UM = (0.005, 10.0)
#: Voxel sizes outside this range (um) are refused: no tomogram has them, the value is a unit mistake.
POSSIBLE_VOXEL_SIZE_UM = (1e-6, 1e6)
#: Largest cycle count accepted (it must fit the catalog's BIGINT and make physical sense).
MAX_CYCLES = 10**7

#: The defaults of every documented key; unknown keys are kept under ``"extra"``.
SIDECAR_DEFAULTS: dict[str, Any] = {
    "voxel_size_um": DEFAULT_VOXEL_SIZE_UM,
    "cycles": None,
    "sample": None,
    "beamline": None,
    "thickness_axis": "z",
    "shape": None,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def validate_sidecar(raw: Any, path: str | os.PathLike) -> tuple[dict[str, Any], list[str]]:
    """Check a parsed sidecar and fill defaults; returns ``(meta, warnings)``.

    ``meta`` has every key of :data:`SIDECAR_DEFAULTS` (``voxel_size_um`` float > 0 in micrometres,
    ``cycles`` int >= 0 or None, ``sample``/``beamline`` str or None, ``thickness_axis`` one of z/y/x,
    ``shape`` ``[z, y, x]`` of positive ints as stored in the file, or None) plus ``extra`` (unknown keys).
    Raises :class:`ScanError` naming ``path`` on a wrong type or value.
    """
    path = Path(path)
    if not isinstance(raw, dict):
        raise ScanError(path, f"sidecar must be a JSON object, got {type(raw).__name__}")
    meta = dict(SIDECAR_DEFAULTS)
    warnings: list[str] = []
    problems: list[str] = []

    if "voxel_size_um" in raw:
        v = raw["voxel_size_um"]
        lo, hi = POSSIBLE_VOXEL_SIZE_UM
        if not _is_number(v) or not lo <= v <= hi:
            problems.append(f"voxel_size_um must be a number between {lo:g} and {hi:g} um, got {v!r}")
        else:
            meta["voxel_size_um"] = float(v)
            lo, hi = PLAUSIBLE_VOXEL_SIZE_UM
            if not lo <= v <= hi:
                warnings.append(f"{path.name}: voxel_size_um {v:g} um is outside the usual {lo:g}-{hi:g} um of "
                                "nano-tomography; check the unit (micrometres)")
    else:
        warnings.append(f"{path.name} has no voxel_size_um; using the default {DEFAULT_VOXEL_SIZE_UM} um")

    if raw.get("cycles") is not None:
        c = raw["cycles"]
        if isinstance(c, float) and c.is_integer():
            c = int(c)
        if not _is_int(c) or not 0 <= c <= MAX_CYCLES:
            problems.append(f"cycles must be an integer from 0 to {MAX_CYCLES}, got {raw['cycles']!r}")
        else:
            meta["cycles"] = c

    for key in ("sample", "beamline"):
        if raw.get(key) is not None:
            if not isinstance(raw[key], str):
                problems.append(f"{key} must be a string, got {raw[key]!r}")
            else:
                meta[key] = raw[key]

    if "thickness_axis" in raw:
        axis = raw["thickness_axis"]
        if axis not in THICKNESS_AXES:
            problems.append(f"thickness_axis must be one of 'z', 'y', 'x', got {axis!r}")
        else:
            meta["thickness_axis"] = axis

    if raw.get("shape") is not None:
        shape = raw["shape"]
        if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(s) and s > 0 for s in shape)):
            problems.append(f"shape must be [z, y, x] with three positive integers, got {shape!r}")
        else:
            meta["shape"] = list(shape)

    if problems:
        raise ScanError(path, "invalid sidecar: " + "; ".join(problems))
    meta["extra"] = {k: v for k, v in raw.items() if k not in SIDECAR_DEFAULTS}
    return meta, warnings


def read_sidecar(path: str | os.PathLike | None) -> tuple[dict[str, Any], list[str]]:
    """Read and validate a sidecar (the one sidecar parser); a missing file gives the defaults and a warning.

    Returns ``(meta, warnings)`` as :func:`validate_sidecar`. Raises :class:`ScanError` for invalid
    JSON or invalid values. The file is only read.
    """
    if path is None or not Path(path).is_file():
        meta = dict(SIDECAR_DEFAULTS, extra={})
        where = f" ({Path(path).name} not found)" if path is not None else ""
        return meta, [f"no sidecar{where}; using defaults (voxel_size_um {DEFAULT_VOXEL_SIZE_UM} um, thickness_axis z)"]
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ScanError(path, f"sidecar is not valid JSON ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise ScanError(path, f"cannot read sidecar ({exc.strerror or exc})") from None
    return validate_sidecar(raw, path)
