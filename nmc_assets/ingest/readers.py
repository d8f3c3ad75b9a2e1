"""Reading and validating one scan of the drop folder (DESIGN 3.1, 3.2).

Volumes come as multi-page TIFF (``tifffile``) or HDF5 ``/exchange/data`` (``h5py``), axes (z, y, x).
Every failure is a :class:`~nmc_assets.ingest.errors.ScanError` naming the file and the problem;
files are opened read-only and never changed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nmc_assets.ingest.errors import ScanError
from nmc_assets.ingest.sidecar import read_sidecar
from nmc_assets.paths import is_valid_scan_id

HDF5_DATASET = "/exchange/data"
TIFF_SUFFIXES = (".tif", ".tiff")
HDF5_SUFFIXES = (".h5", ".hdf5")
#: Keys of the ``percentiles`` attribute (percent, as strings).
PERCENTILES = ("0.5", "1", "50", "99", "99.5", "99.8")
_AXIS_INDEX = {"z": 0, "y": 1, "x": 2}


# --------------------------------------------------------------------------------------------------
# TIFF
# --------------------------------------------------------------------------------------------------
class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _tifffile_log() -> Iterator[list[logging.LogRecord]]:
    """Collect what tifffile logs (it reports many truncations only as log lines, not exceptions)."""
    logger = logging.getLogger("tifffile")
    handler, propagate = _Records(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _declared_planes(tif) -> tuple[int, str] | None:
    """Number of 2D planes the file's own metadata promises, and where that number comes from."""
    ij = tif.imagej_metadata
    if ij:
        for key in ("images", "slices"):
            if ij.get(key):
                return int(ij[key]), f"its ImageJ metadata says {key}={ij[key]}"
    shaped = tif.shaped_metadata
    if shaped and shaped[0].get("shape"):
        shape = list(shaped[0]["shape"])
        yx = 3 if len(shape) >= 3 and shape[-1] in (3, 4) and tif.pages.first.samplesperpixel > 1 else 2
        return int(math.prod(shape[:-yx])) if len(shape) > yx else 1, f"its shaped metadata says shape={shape}"
    if tif.is_ome and tif.series:
        series = tif.series[0]
        shape = [n for n, a in zip(series.shape, series.axes) if a not in "YXS"]
        return int(math.prod(shape)), f"its OME metadata says {dict(zip(series.axes, series.shape))}"
    return None


def _complete_pages(tif, file_size: int) -> tuple[int, int]:
    """``(pages whose data lies wholly inside the file, pages in the IFD chain)``."""
    complete, total = 0, 0
    for page in tif.pages:
        total += 1
        offsets, counts = page.dataoffsets, page.databytecounts
        if offsets and all(o + c <= file_size for o, c in zip(offsets, counts)):
            complete += 1
    return complete, total


def _planes_in_file(tif, series, file_size: int) -> int:
    """How many 2D planes have all their bytes inside the file (IFD chain and contiguous layout)."""
    complete_pages, _ = _complete_pages(tif, file_size)
    plane_bytes = tif.pages.first.nbytes
    if series.dataoffset is not None and plane_bytes:
        # ImageJ / tifffile 'shaped' stacks: planes lie back to back after the first one
        return max(complete_pages, (file_size - series.dataoffset) // plane_bytes)
    return complete_pages


def _read_tiff(path: Path, read_data: bool = True) -> tuple[np.ndarray | None, tuple, np.dtype, list[str]]:
    """Return ``(data or None, shape, dtype, warnings)``; fails on truncation or corruption."""
    import tifffile

    file_size = path.stat().st_size
    data = None
    with _tifffile_log() as log:
        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0] if tif.series else None
                if series is None:
                    raise ScanError(path, "TIFF contains no image data")
                if "S" in series.axes and series.shape[series.axes.index("S")] > 1:
                    raise ScanError(path, f"is a colour/multi-sample image (axes {series.axes}, shape "
                                          f"{tuple(series.shape)}); expected a grey-value 3D stack")
                declared = _declared_planes(tif)
                if declared is not None:
                    present = min(_planes_in_file(tif, series, file_size), declared[0])
                    if present < declared[0]:
                        raise ScanError(path, f"truncated TIFF: only {present} of {declared[0]} slices are "
                                              f"present in the file ({declared[1]})")
                else:
                    complete, total = _complete_pages(tif, file_size)
                    if complete < total:
                        raise ScanError(path, f"truncated TIFF: only {complete} of its {total} pages have all "
                                              "their data in the file")
                shape, dtype = tuple(series.shape), np.dtype(series.dtype)
                if read_data:
                    data = series.asarray()
                    shape = data.shape
        except ScanError:
            raise
        except Exception as exc:  # tifffile raises many types for garbage and cut files
            raise ScanError(path, f"not a readable TIFF, or truncated/corrupted ({type(exc).__name__}: {exc})") from None
    errors = [r.getMessage() for r in log if r.levelno >= logging.ERROR]
    if errors:
        raise ScanError(path, f"truncated or corrupted TIFF (tifffile: {errors[0]})")
    warnings = [f"tifffile: {r.getMessage()}" for r in log if r.levelno < logging.ERROR]
    return data, shape, dtype, warnings


# --------------------------------------------------------------------------------------------------
# HDF5
# --------------------------------------------------------------------------------------------------
def _read_hdf5(path: Path, read_data: bool = True, dataset: str = HDF5_DATASET):
    import h5py

    try:
        f = h5py.File(path, "r", locking=False)
    except Exception as exc:
        raise ScanError(path, f"not a readable HDF5 file, or truncated/corrupted ({type(exc).__name__}: {exc})") from None
    with f:
        node = f.get(dataset)
        if node is None:
            found: list[str] = []
            f.visititems(lambda name, obj: found.append("/" + name) if isinstance(obj, h5py.Dataset) else None)
            listed = ", ".join(found[:8]) + (" ..." if len(found) > 8 else "") if found else "none"
            raise ScanError(path, f"HDF5 file has no dataset {dataset} (DXchange convention); datasets found: {listed}")
        if not isinstance(node, h5py.Dataset):
            raise ScanError(path, f"{dataset} is an HDF5 {type(node).__name__}, not a dataset")
        shape, dtype = tuple(node.shape), np.dtype(node.dtype)
        data = None
        if read_data:
            try:
                data = node[()]
            except Exception as exc:
                raise ScanError(path, f"cannot read {dataset} ({type(exc).__name__}: {exc})") from None
            data = np.asarray(data)
    return data, shape, dtype, []


# --------------------------------------------------------------------------------------------------
# public readers
# --------------------------------------------------------------------------------------------------
def _reader(path: Path):
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return _read_tiff
    if suffix in HDF5_SUFFIXES:
        return _read_hdf5
    raise ScanError(path, f"unsupported file type {suffix!r}; expected .tif, .tiff or .h5")


def _file_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Drop extra leading singleton axes (ImageJ T/C) so a (1, 1, z, y, x) stack reads as (z, y, x)."""
    shape = tuple(int(s) for s in shape)
    while len(shape) > 3 and shape[0] == 1:
        shape = shape[1:]
    return shape


def probe_volume(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a volume file from its header only (no pixel data is read).

    Catches unreadable files, a missing HDF5 dataset and TIFF truncation visible in the header.
    """
    path = Path(path)
    _, shape, dtype, _ = _reader(path)(path, read_data=False)
    return _file_shape(shape), dtype


def read_volume(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read a TIFF or HDF5 volume as stored (no axis move, dtype kept); returns ``(array, warnings)``."""
    path = Path(path)
    data, _, _, warnings = _reader(path)(path, read_data=True)
    return data.reshape(_file_shape(data.shape)), warnings


def check_volume_shape(shape: tuple[int, ...], path: str | os.PathLike) -> None:
    """Fail unless ``shape`` is a non-empty 3D (z, y, x) shape with at least 2 voxels per axis."""
    if any(s == 0 for s in shape) or len(shape) == 0:
        raise ScanError(path, f"volume is empty (shape {shape})")
    if len(shape) != 3 or min(shape) < 2:
        kind = "a 2D image" if len([s for s in shape if s > 1]) <= 2 else f"{len(shape)}D data"
        raise ScanError(path, f"is {kind} (shape {shape}); expected a 3D stack (z, y, x)")


def validate_volume(volume: np.ndarray, path: str | os.PathLike) -> None:
    """Fail unless ``volume`` is 3D, non-empty, numeric, finite and not constant (DESIGN 3.2)."""
    check_volume_shape(tuple(volume.shape), path)
    if volume.dtype.kind not in "uif":
        raise ScanError(path, f"unsupported dtype {volume.dtype}; expected integer or float grey values")
    if volume.dtype.kind == "f":
        n_nan = int(np.count_nonzero(np.isnan(volume)))
        n_inf = int(np.count_nonzero(np.isinf(volume)))
        if n_nan or n_inf:
            raise ScanError(path, f"volume has non-finite values: {n_nan} NaN and {n_inf} Inf "
                                  f"of {volume.size} voxels")
    lo, hi = volume.min(), volume.max()
    if lo == hi:
        raise ScanError(path, f"volume is constant (every voxel is {lo.item()!r})")


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
    from nmc_assets.ingest.dropfolder import find_scans

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


def load_scan(scan_id: str, incoming_dir: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any], list[str]]:
    """Read and validate one scan: ``(volume float32 (z, y, x), meta, warnings)``.

    ``volume`` holds the original grey (phase) values as float32, thickness axis first.
    ``meta``: ``scan_id, source_path, source_sha256, source_format, source_dtype, source_shape`` (file
    order), ``shape`` (z, y, x), the sidecar keys (``voxel_size_um`` in um, ``cycles``, ``sample``,
    ``beamline``, ``thickness_axis``, ``extra``) and ``sidecar_path``, ``labels_path``, ``truth_path``
    (str or None). The sidecar ``shape`` is compared with the file's own axis order. Labels, when
    present, must have the volume's shape. Raises :class:`ScanError` naming the file and the problem.
    """
    from nmc_assets.storage import sha256_file

    files = scan_files(scan_id, incoming_dir)
    path = files.volume
    sidecar, warnings = read_sidecar(files.sidecar if files.sidecar else Path(incoming_dir) / f"{scan_id}.json")

    # header first: cheap shape checks before reading pixels
    header_shape, _ = probe_volume(path)
    check_volume_shape(header_shape, path)
    data, read_warnings = read_volume(path)
    warnings += read_warnings
    file_shape = tuple(int(s) for s in data.shape)
    if file_shape != header_shape:
        raise ScanError(path, f"truncated or inconsistent file: header says shape {header_shape}, "
                              f"read {file_shape}")
    validate_volume(data, path)
    expected = sidecar["shape"]
    if expected is not None and list(file_shape) != list(expected):
        truncated = file_shape[1:] == tuple(expected[1:]) and file_shape[0] < expected[0]
        what = (f"truncated: {file_shape[0]} of {expected[0]} slices" if truncated
                else f"shape {file_shape} does not match")
        raise ScanError(path, f"{what} (sidecar {files.sidecar.name} says shape {expected})")

    if data.dtype.kind in "ui" and data.dtype.itemsize > 2 and int(data.max()) > 2**24:
        warnings.append(f"{data.dtype} values above 2**24 lose precision as float32")
    volume = move_thickness_axis(data.astype(np.float32, copy=False), sidecar["thickness_axis"])
    if not np.isfinite(volume).all():  # float64 values beyond the float32 range
        raise ScanError(path, "values overflow float32 (magnitude above 3.4e38)")

    if files.labels is not None:
        label_shape, label_dtype = probe_volume(files.labels)
        if label_shape != file_shape:
            raise ScanError(files.labels, f"labels have shape {label_shape} but the volume {path.name} "
                                          f"has shape {file_shape}")
        if label_dtype.kind not in "ui":
            raise ScanError(files.labels, f"labels must be an integer image, got dtype {label_dtype}")

    meta: dict[str, Any] = {
        "scan_id": scan_id,
        "source_path": str(path),
        "source_sha256": sha256_file(path),
        "source_format": "hdf5" if path.suffix.lower() in HDF5_SUFFIXES else "tiff",
        "source_dtype": str(data.dtype),
        "source_shape": list(file_shape),
        "shape": list(volume.shape),
        **{k: v for k, v in sidecar.items() if k != "shape"},
        "sidecar_path": str(files.sidecar) if files.sidecar else None,
        "labels_path": str(files.labels) if files.labels else None,
        "truth_path": str(files.truth) if files.truth else None,
    }
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


def tomogram_attrs(meta: dict[str, Any], volume: np.ndarray, warnings: list[str]) -> dict[str, Any]:
    """The Zarr attributes of ``warehouse/tomograms/<scan_id>.zarr`` (COMMON contract)."""
    keys = ("scan_id", "source_path", "source_sha256", "voxel_size_um", "cycles", "sample", "beamline",
            "thickness_axis", "source_dtype")
    attrs = {k: meta[k] for k in keys}
    attrs["shape"] = [int(s) for s in volume.shape]
    attrs["percentiles"] = intensity_percentiles(volume)
    attrs["warnings"] = list(warnings)
    return attrs
