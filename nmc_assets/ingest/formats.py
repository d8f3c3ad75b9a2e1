"""Volume file formats: probing and reading TIFF stacks and HDF5 ``/exchange/data`` (docs/design.md).

Volumes come as multi-page TIFF (``tifffile``) or HDF5 ``/exchange/data`` (``h5py``), axes (z, y, x).
Every failure, whatever the library raised, is a :class:`~nmc_assets.ingest.errors.ScanError` naming
the file and the problem; files are opened read-only and never changed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nmc_assets.ingest.errors import ScanError

HDF5_DATASET = "/exchange/data"
TIFF_SUFFIXES = (".tif", ".tiff")
HDF5_SUFFIXES = (".h5", ".hdf5")


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


def _check_tiff_header(tif, path: Path, file_size: int):
    """The grey-value series of an open TIFF, after the header checks (colour, mixed pages, truncation)."""
    series = tif.series[0] if tif.series else None
    if series is None:
        raise ScanError(path, "TIFF contains no image data")
    if "S" in series.axes and series.shape[series.axes.index("S")] > 1:
        raise ScanError(path, f"is a colour/multi-sample image (axes {series.axes}, shape "
                              f"{tuple(series.shape)}); expected a grey-value 3D stack")
    if len(tif.series) > 1:
        kinds = "; ".join(f"{tuple(s.shape)} {s.dtype}" for s in tif.series[:4])
        raise ScanError(path, f"pages have mixed shapes or dtypes ({len(tif.series)} page groups: {kinds}); "
                              "expected one stack of equal 2D pages")
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
    return series


@contextlib.contextmanager
def _tiff_errors(path: Path) -> Iterator[list[logging.LogRecord]]:
    """Turn whatever tifffile raises or logs as an error into a :class:`ScanError` naming ``path``."""
    with _tifffile_log() as log:
        try:
            yield log
        except ScanError:
            raise
        except Exception as exc:  # tifffile raises many types for garbage and cut files
            raise ScanError(path, f"not a readable TIFF, or truncated/corrupted ({type(exc).__name__}: {exc})") from None
        errors = [r.getMessage() for r in log if r.levelno >= logging.ERROR]
        if errors:
            raise ScanError(path, f"truncated or corrupted TIFF (tifffile: {errors[0]})")


def _read_tiff(path: Path, read_data: bool = True) -> tuple[np.ndarray | None, tuple, np.dtype, list[str]]:
    """Return ``(data or None, shape, dtype, warnings)``; fails on truncation or corruption."""
    import tifffile

    file_size = path.stat().st_size
    data = None
    with _tiff_errors(path) as log:
        with tifffile.TiffFile(path) as tif:
            series = _check_tiff_header(tif, path, file_size)
            shape, dtype = tuple(series.shape), np.dtype(series.dtype)
            if read_data:
                data = series.asarray()
                shape = data.shape
    warnings = [f"tifffile: {r.getMessage()}" for r in log if r.levelno < logging.ERROR]
    return data, shape, dtype, warnings


# --------------------------------------------------------------------------------------------------
# HDF5
# --------------------------------------------------------------------------------------------------
def _read_hdf5(path: Path, read_data: bool = True, dataset: str = HDF5_DATASET):
    """Return ``(data or None, shape, dtype, warnings)``; any h5py failure becomes a :class:`ScanError`.

    A damaged file can fail anywhere (opening, B-tree lookup, object visitation, decoding names), and
    h5py then raises ``OSError``, ``RuntimeError``, ``KeyError``, ``TypeError`` or ``UnicodeDecodeError``.
    """
    import h5py

    try:
        with h5py.File(path, "r", locking=False) as f:
            return _hdf5_dataset(f, path, dataset, read_data)
    except ScanError:
        raise
    except Exception as exc:
        raise ScanError(path, f"not a readable HDF5 file, or truncated/corrupted ({type(exc).__name__}: {exc})") from None


def _hdf5_dataset(f, path: Path, dataset: str, read_data: bool):
    import h5py

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
            data = np.asarray(node[()])
        except Exception as exc:
            raise ScanError(path, f"cannot read {dataset} ({type(exc).__name__}: {exc})") from None
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


def check_header(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """What the drop-folder sensor checks before launching a run, from the header only.

    The file must be readable, 3D (at least 2 voxels per axis) and of an integer or float dtype;
    returns ``(shape, dtype)`` or raises :class:`ScanError`.
    """
    shape, dtype = probe_volume(path)
    check_volume_shape(shape, path)
    check_dtype(dtype, path)
    return shape, dtype


def check_dtype(dtype: np.dtype, path: str | os.PathLike) -> None:
    """Fail unless ``dtype`` holds integer or float grey values (not bool, complex, strings, records)."""
    if np.dtype(dtype).kind not in "uif":
        raise ScanError(path, f"unsupported dtype {dtype}; expected integer or float grey values")


def read_volume(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read a TIFF or HDF5 volume as stored (no axis move, dtype kept); returns ``(array, warnings)``."""
    path = Path(path)
    data, _, _, warnings = _reader(path)(path, read_data=True)
    return data.reshape(_file_shape(data.shape)), warnings


class VolumeReader:
    """Plane-slab access to a TIFF stack or HDF5 ``/exchange/data`` volume, in file axes (z, y, x).

    ``shape`` and ``dtype`` come from the header (after the same checks as :func:`probe_volume`);
    :meth:`read` returns planes ``[start, stop)`` along the file's first axis and checks that the file
    really holds them. Use as a context manager (the file stays open while streaming).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = self._tif = self._series = self._dataset = None
        self.warnings: list[str] = []

    def __enter__(self) -> "VolumeReader":
        path = self.path
        suffix = path.suffix.lower()
        if suffix in TIFF_SUFFIXES:
            import tifffile

            with _tiff_errors(path) as log:
                self._tif = tifffile.TiffFile(path)
                self._series = _check_tiff_header(self._tif, path, path.stat().st_size)
                shape, dtype = tuple(self._series.shape), np.dtype(self._series.dtype)
            self.warnings += [f"tifffile: {r.getMessage()}" for r in log if r.levelno < logging.ERROR]
            self._pages = int(math.prod(shape[:-2])) if len(shape) > 2 else 1
        elif suffix in HDF5_SUFFIXES:
            import h5py

            try:
                self._file = h5py.File(path, "r", locking=False)
                _, shape, dtype, _ = _hdf5_dataset(self._file, path, HDF5_DATASET, read_data=False)
                self._dataset = self._file[HDF5_DATASET]
            except ScanError:
                self.close()
                raise
            except Exception as exc:
                self.close()
                raise ScanError(path, f"not a readable HDF5 file, or truncated/corrupted ({type(exc).__name__}: {exc})") from None
        else:
            raise ScanError(path, f"unsupported file type {suffix!r}; expected .tif, .tiff or .h5")
        self.shape, self.dtype = _file_shape(shape), dtype
        return self

    def read(self, start: int, stop: int) -> np.ndarray:
        """Planes ``[start, stop)`` of the first (file z) axis as an array ``(stop - start, y, x)``."""
        want = (stop - start,) + tuple(self.shape[1:])
        if self._tif is not None:
            with _tiff_errors(self.path):
                data = self._tif.asarray(key=range(start, stop), series=0) if self._pages > 1 else self._series.asarray()
        else:
            extra = self._dataset.ndim - len(self.shape)  # leading singleton axes (squeezed in ``shape``)
            try:
                data = np.asarray(self._dataset[(0,) * extra + (slice(start, stop), slice(None), slice(None))])
            except Exception as exc:
                raise ScanError(self.path, f"cannot read {HDF5_DATASET} planes {start}-{stop} ({type(exc).__name__}: {exc})") from None
        data = np.asarray(data)
        if data.size != math.prod(want):
            raise ScanError(self.path, f"truncated or inconsistent file: planes {start}-{stop} hold {data.size} "
                                       f"values, the header promises shape {want}")
        return data.reshape(want)

    def close(self) -> None:
        for handle in (self._tif, self._file):
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()
        self._tif = self._file = None

    def __exit__(self, *exc) -> None:
        self.close()


def check_volume_shape(shape: tuple[int, ...], path: str | os.PathLike) -> None:
    """Fail unless ``shape`` is a non-empty 3D (z, y, x) shape with at least 2 voxels per axis."""
    if any(s == 0 for s in shape) or len(shape) == 0:
        raise ScanError(path, f"volume is empty (shape {shape})")
    if len(shape) != 3 or min(shape) < 2:
        kind = "a 2D image" if len([s for s in shape if s > 1]) <= 2 else f"{len(shape)}D data"
        raise ScanError(path, f"is {kind} (shape {shape}); expected a 3D stack (z, y, x)")


def validate_volume(volume: np.ndarray, path: str | os.PathLike) -> None:
    """Fail unless ``volume`` is 3D, non-empty, numeric, finite and not constant (docs/design.md §3.2)."""
    check_volume_shape(tuple(volume.shape), path)
    check_dtype(volume.dtype, path)
    if volume.dtype.kind == "f":
        n_nan = int(np.count_nonzero(np.isnan(volume)))
        n_inf = int(np.count_nonzero(np.isinf(volume)))
        if n_nan or n_inf:
            raise ScanError(path, f"volume has non-finite values: {n_nan} NaN and {n_inf} Inf "
                                  f"of {volume.size} voxels")
    lo, hi = volume.min(), volume.max()
    if lo == hi:
        raise ScanError(path, f"volume is constant (every voxel is {lo.item()!r})")
