"""Reading and validating one scan of the drop folder (docs/design.md, "Drop folder").

A scan is a volume file (see :mod:`nmc_assets.ingest.formats`) with its optional companions. Every
failure is a :class:`~nmc_assets.ingest.errors.ScanError` naming the file and the problem; files are
opened read-only and never changed.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from nmc_assets.ingest.dropfolder import find_scans
from nmc_assets.ingest.errors import ScanError
from nmc_assets.ingest.formats import (
    HDF5_SUFFIXES,
    check_header,
    check_volume_shape,
    probe_volume,
    read_volume,
    validate_volume,
)
from nmc_assets.ingest.sidecar import read_sidecar
from nmc_assets.paths import is_valid_scan_id

#: Keys of the ``percentiles`` attribute (percent, as strings).
PERCENTILES = ("0.5", "1", "50", "99", "99.5", "99.8")
_AXIS_INDEX = {"z": 0, "y": 1, "x": 2}


def move_thickness_axis(volume: np.ndarray, thickness_axis: str) -> np.ndarray:
    """Put the electrode-thickness axis first: 'y' gives (y, z, x), 'x' gives (x, z, y) of the file axes."""
    axis = _AXIS_INDEX[thickness_axis]
    return volume if axis == 0 else np.ascontiguousarray(np.moveaxis(volume, axis, 0))


def moved_shape(shape: tuple[int, ...], thickness_axis: str) -> tuple[int, ...]:
    axis = _AXIS_INDEX[thickness_axis]
    return (shape[axis],) + tuple(s for i, s in enumerate(shape) if i != axis)


def intensity_percentiles(volume: np.ndarray, max_voxels: int = 1 << 24) -> dict[str, float]:
    """Intensity percentiles (keys of :data:`PERCENTILES`); volumes above ``max_voxels`` use a fixed stride."""
    flat = volume.reshape(-1)
    step = max(1, math.ceil(flat.size / max_voxels))
    values = np.percentile(flat[::step], [float(p) for p in PERCENTILES])
    return {k: float(v) for k, v in zip(PERCENTILES, values)}


# --------------------------------------------------------------------------------------------------
# one scan
# --------------------------------------------------------------------------------------------------
def scan_files(scan_id: str, incoming_dir: str | os.PathLike):
    """The :class:`~nmc_assets.ingest.dropfolder.ScanFiles` of one scan; ScanError if absent or ambiguous."""
    incoming_dir = Path(incoming_dir)
    if not is_valid_scan_id(scan_id):
        raise ScanError(incoming_dir / scan_id, "invalid scan id: use 1-64 letters, digits, '.', '_', '-', "
                                                 "starting with a letter or digit")
    scans, problems = find_scans(incoming_dir)
    for scan in scans:
        if scan.scan_id == scan_id:
            return scan
    for problem in problems:
        if problem.scan_id == scan_id:
            raise ScanError(problem.path, problem.problem)
    raise ScanError(incoming_dir / scan_id, "no volume file (.tif, .tiff or .h5) for this scan in the drop folder")


def _source_meta(scan_id: str, files, sidecar: dict[str, Any], file_shape, dtype, sha256: str) -> dict[str, Any]:
    path = files.volume
    return {
        "scan_id": scan_id,
        "source_path": str(path),
        "source_sha256": sha256,
        "source_format": "hdf5" if path.suffix.lower() in HDF5_SUFFIXES else "tiff",
        "source_dtype": str(np.dtype(dtype)),
        "source_shape": [int(s) for s in file_shape],
        "shape": list(moved_shape(tuple(file_shape), sidecar["thickness_axis"])),
        **{k: v for k, v in sidecar.items() if k != "shape"},
        "sidecar_path": str(files.sidecar) if files.sidecar else None,
        "labels_path": str(files.labels) if files.labels else None,
        "truth_path": str(files.truth) if files.truth else None,
    }


def check_scan_header(scan_id: str, incoming_dir: str | os.PathLike):
    """The checks that need no pixel data: files, sidecar, header shape and dtype, labels' header.

    Returns ``(files, sidecar meta, header shape (file axes), header dtype, warnings)``; raises
    :class:`ScanError` naming the file and the problem.
    """
    files = scan_files(scan_id, incoming_dir)
    path = files.volume
    sidecar, warnings = read_sidecar(files.sidecar if files.sidecar else Path(incoming_dir) / f"{scan_id}.json")
    header_shape, dtype = check_header(path)
    expected = sidecar["shape"]
    if expected is not None and list(header_shape) != list(expected):
        truncated = header_shape[1:] == tuple(expected[1:]) and header_shape[0] < expected[0]
        what = (f"truncated: {header_shape[0]} of {expected[0]} slices" if truncated
                else f"shape {header_shape} does not match")
        raise ScanError(path, f"{what} (sidecar {files.sidecar.name} says shape {expected})")
    if files.labels is not None:
        label_shape, label_dtype = probe_volume(files.labels)
        if label_shape != header_shape:
            raise ScanError(files.labels, f"labels have shape {label_shape} but the volume {path.name} "
                                          f"has shape {header_shape}")
        if label_dtype.kind not in "ui":
            raise ScanError(files.labels, f"labels must be an integer image, got dtype {label_dtype}")
    return files, sidecar, header_shape, dtype, warnings


def load_scan(scan_id: str, incoming_dir: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any], list[str]]:
    """Read and validate one scan into memory: ``(volume float32 (z, y, x), meta, warnings)``.

    For small scans, tests and notebooks; the ``raw_tomogram`` asset streams instead
    (:func:`nmc_assets.ingest.tomogram.write_tomogram`, bounded memory, same checks).
    ``volume`` holds the original grey (phase) values as float32, thickness axis first.
    ``meta``: ``scan_id, source_path, source_sha256, source_format, source_dtype, source_shape`` (file
    order), ``shape`` (z, y, x), the sidecar keys (``voxel_size_um`` in um, ``cycles``, ``sample``,
    ``beamline``, ``thickness_axis``, ``extra``) and ``sidecar_path``, ``labels_path``, ``truth_path``
    (str or None). Raises :class:`ScanError` naming the file and the problem.
    """
    from nmc_assets.storage import sha256_file

    files, sidecar, header_shape, _, warnings = check_scan_header(scan_id, incoming_dir)
    path = files.volume
    data, read_warnings = read_volume(path)
    warnings += read_warnings
    file_shape = tuple(int(s) for s in data.shape)
    if file_shape != header_shape:
        raise ScanError(path, f"truncated or inconsistent file: header says shape {header_shape}, "
                              f"read {file_shape}")
    validate_volume(data, path)
    if data.dtype.kind in "ui" and data.dtype.itemsize > 2 and int(data.max()) > 2**24:
        warnings.append(f"{data.dtype} values above 2**24 lose precision as float32")
    volume = move_thickness_axis(data.astype(np.float32, copy=False), sidecar["thickness_axis"])
    if not np.isfinite(volume).all():  # float64 values beyond the float32 range
        raise ScanError(path, "values overflow float32 (magnitude above 3.4e38)")
    meta = _source_meta(scan_id, files, sidecar, file_shape, data.dtype, sha256_file(path))
    return volume, meta, warnings


def load_labels(scan_id: str, incoming_dir: str | os.PathLike) -> np.ndarray:
    """Ground-truth labels ``<scan_id>.labels.tif`` in tomogram axes (thickness first), integer dtype.

    Uses the scan's sidecar ``thickness_axis``; raises :class:`ScanError` when absent or invalid.
    """
    files = scan_files(scan_id, incoming_dir)
    if files.labels is None:
        raise ScanError(Path(incoming_dir) / f"{scan_id}.labels.tif", "no ground-truth labels for this scan")
    sidecar, _ = read_sidecar(files.sidecar)
    labels, _ = read_volume(files.labels)
    check_volume_shape(tuple(labels.shape), files.labels)
    if labels.dtype.kind not in "ui":
        raise ScanError(files.labels, f"labels must be an integer image, got dtype {labels.dtype}")
    if labels.dtype.kind == "i" and labels.min() < 0:
        raise ScanError(files.labels, "labels contain negative values")
    return move_thickness_axis(labels, sidecar["thickness_axis"])


def tomogram_attrs(meta: dict[str, Any], volume, warnings: list[str], percentiles: dict[str, float] | None = None) -> dict[str, Any]:
    """The Zarr attributes of ``warehouse/tomograms/<scan_id>.zarr`` (docs/design.md §3.1).

    ``volume``: the stored array (or anything with ``shape`` and ``dtype``); ``percentiles``: the
    intensity percentiles when already known (streaming), else computed from ``volume``.
    """
    keys = ("scan_id", "source_path", "source_sha256", "voxel_size_um", "cycles", "sample", "beamline",
            "thickness_axis", "source_dtype")
    attrs = {k: meta[k] for k in keys}
    attrs["shape"] = [int(s) for s in volume.shape]
    attrs["dtype"] = str(np.dtype(volume.dtype))
    attrs["percentiles"] = percentiles if percentiles is not None else intensity_percentiles(np.asarray(volume))
    attrs["warnings"] = list(warnings)
    return attrs
