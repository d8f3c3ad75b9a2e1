"""Read EBSD maps into :class:`~nmc_assets.ebsd.maps.EbsdMap` (square grid, um, Bunge Euler in radians).

- EDAX/TSL ``.ang``, Oxford ``.ctf``, HDF5 (``.h5``/``.hdf5``/``.h5ebsd``: EDAX, Bruker, EMsoft, orix) are
  read by orix (``orix.io.load``). orix ignores the ``.ang`` grid type: the ``GRID``/``XSTEP``/``NROWS``
  header lines are read here, and a hexagonal grid is resampled onto a square grid of the same step
  (nearest neighbour; the metadata says so).
- Oxford ``.cpr`` + ``.crc`` (Channel 5 project, binary): the ``.cpr`` is an INI file (``configparser``),
  the ``.crc`` a fixed-size record per point described by its ``[Fields]``. DefDAP reads this pair only
  for Laue groups 6/mmm and m-3m, not NMC's -3m, so it is read here (and checked against DefDAP's reader
  in the tests).
- Oxford ``.h5oina`` (AZtec HDF5): read with h5py (:mod:`.h5oina`; orix does not read it).

Every problem raises :class:`~nmc_assets.ebsd.maps.EbsdError` ``<file>: <problem>``.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import numpy as np

from nmc_assets.ebsd.maps import OXFORD_LAUE_GROUPS, EbsdError, EbsdMap, EbsdPhase, phase_from_point_group

__all__ = ["MAP_SUFFIXES", "read_map", "resample_hex_to_square", "hex_grid_xy"]

#: File suffixes read as EBSD maps (``.crc`` is the data half of a ``.cpr``).
MAP_SUFFIXES = (".ang", ".ctf", ".cpr", ".h5", ".hdf5", ".h5ebsd", ".h5oina")
#: ``.crc`` record fields of the ``.cpr`` ``[Fields]`` ids: id -> (name, dtype). Unknown ids are an error.
_CRC_FIELDS = {3: ("phi1", "<f4"), 4: ("Phi", "<f4"), 5: ("phi2", "<f4"), 6: ("mad", "<f4"), 7: ("bc", "u1"),
               8: ("bs", "u1"), 10: ("bands", "u1"), 11: ("afi", "u1"), 12: ("ib6", "<f4")}


def read_map(path: str | Path) -> EbsdMap:
    """The EBSD map at ``path`` (a suffix of :data:`MAP_SUFFIXES`; for ``.cpr`` the ``.crc`` beside it)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".crc":
        path, suffix = path.with_suffix(".cpr"), ".cpr"
    if suffix not in MAP_SUFFIXES:
        raise EbsdError(path, f"not an EBSD map (suffixes read: {', '.join(MAP_SUFFIXES + ('.crc',))})")
    if not path.is_file():
        raise EbsdError(path, "no such file")
    if suffix == ".cpr":
        m = _read_oxford_binary(path)
    elif suffix == ".h5oina":
        from nmc_assets.ebsd.h5oina import read_h5oina

        m = read_h5oina(path)
    else:
        m = _read_with_orix(path, suffix)
    if not m.indexed.any():
        raise EbsdError(path, "no indexed point (every point is unindexed)")
    return m


# --------------------------------------------------------------------------------------------------
# orix formats
# --------------------------------------------------------------------------------------------------
def _ang_header(path: Path) -> dict:
    """``GRID``, ``XSTEP``, ``YSTEP``, ``NCOLS_ODD``, ``NCOLS_EVEN``, ``NROWS`` of an ``.ang`` header."""
    out = {}
    with open(path, errors="replace") as f:
        for line in f:
            if not line.startswith("#"):
                break
            m = re.match(r"#\s*(GRID|XSTEP|YSTEP|NCOLS_ODD|NCOLS_EVEN|NROWS)\s*:\s*(\S+)", line)
            if m:
                out[m.group(1)] = m.group(2)
    return out


def _ctf_header(path: Path) -> dict:
    """``XCells``, ``YCells``, ``XStep``, ``YStep`` of a ``.ctf`` header (the lines before ``Phase X Y ...``)."""
    out = {}
    with open(path, errors="replace") as f:
        for i, line in enumerate(f):
            if line.startswith("Phase\tX\tY") or i > 1000:
                break
            parts = line.strip().split("\t")
            if len(parts) >= 2 and parts[0] in ("XCells", "YCells", "XStep", "YStep"):
                out[parts[0]] = parts[1]
    return out


def _number(header: dict, key: str, path: Path, kind=float):
    try:
        return kind(header[key])
    except KeyError:
        raise EbsdError(path, f"header has no {key}") from None
    except ValueError:
        raise EbsdError(path, f"header {key} is not a number: {header[key]!r}") from None


def _read_with_orix(path: Path, suffix: str) -> EbsdMap:
    from orix import io as oio

    header = _ang_header(path) if suffix == ".ang" else _ctf_header(path) if suffix == ".ctf" else {}
    step_key = {".ang": "XSTEP", ".ctf": "XStep"}.get(suffix)
    if step_key:
        step = _number(header, step_key, path) if step_key in header else float("nan")
        if not (np.isfinite(step) and step > 0):
            raise EbsdError(path, f"no step size ({step_key} missing or not positive in the header)")
    try:
        xmap = oio.load(str(path), autogen_names=False) if suffix == ".ang" else oio.load(str(path))
    except EbsdError:
        raise
    except Exception as exc:  # noqa: BLE001 - orix/numpy raise many types for damaged files
        if isinstance(exc, ValueError) and "valid point group" in str(exc):
            raise EbsdError(path, f"a phase has an unknown crystal symmetry ({exc})") from exc
        raise EbsdError(path, f"cannot read ({type(exc).__name__}: {exc})") from exc
    if isinstance(xmap, list):
        xmap = xmap[0]
    n = int(xmap.size)
    x, y = np.asarray(xmap.x, float).ravel(), np.asarray(xmap.y, float).ravel()
    euler = xmap.rotations.to_euler().reshape(-1, 3)
    pid = np.asarray(xmap.phase_id).ravel().astype(np.int64)
    props = {k.lower(): np.asarray(v, float).ravel() for k, v in xmap.prop.items()}  # ci, iq, fit, mad, bc, bs ...
    phases: dict[int, EbsdPhase] = {}
    id_map = {}
    for pid_orix, ph in xmap.phases:
        if pid_orix < 0:
            continue
        if ph.point_group is None:
            if not (pid == pid_orix).any():
                continue
            raise EbsdError(path, f"phase {pid_orix} ({ph.name!r}): unknown crystal symmetry (no point group in the header)")
        new_id = len(phases) + 1
        phases[new_id] = phase_from_point_group(new_id, ph.name, ph.point_group.name, path)
        id_map[pid_orix] = new_id
    phase = np.zeros(n, np.int32)
    for old, new in id_map.items():
        phase[pid == old] = new
    meta = {"source": str(path), "reader": f"orix {_version('orix')}", "grid": "square", "points_in_file": n}
    if suffix == ".ang":
        grid = header.get("GRID", "SqrGrid")
        nrows = _number(header, "NROWS", path, int) if "NROWS" in header else None
        if grid.lower().startswith("hex"):
            n_odd, n_even = (_number(header, k, path, int) for k in ("NCOLS_ODD", "NCOLS_EVEN"))
            expected = None if nrows is None else (nrows + 1) // 2 * n_odd + nrows // 2 * n_even
        else:
            expected = None if nrows is None else nrows * _number(header, "NCOLS_ODD", path, int)
        if expected is not None and n != expected:
            raise EbsdError(path, f"truncated or damaged: {n} points, the header's grid has {expected}")
        if grid.lower().startswith("hex"):
            arrays = {"euler": euler, "phase": phase.astype(float), **props}
            sq, shape = resample_hex_to_square(x, y, step, arrays)
            meta.update(grid="hexagonal, resampled to a square grid (nearest neighbour, same step)", hex_points=n)
            return EbsdMap(sq.pop("euler"), sq.pop("phase").astype(np.int32), phases, step, str(path), sq, meta)
        dx, dy = step, _number(header, "YSTEP", path) if "YSTEP" in header else step
    elif suffix == ".ctf":
        expected = _number(header, "XCells", path, int) * _number(header, "YCells", path, int)
        if n != expected:
            raise EbsdError(path, f"truncated or damaged: {n} points, the header's grid has {expected}")
        dx = step
        dy = _number(header, "YStep", path) if "YStep" in header else step
    else:
        dx, dy = float(xmap.dx), float(xmap.dy)
        if not (np.isfinite(dx) and dx > 0):
            raise EbsdError(path, "no step size in the file")
    rows, cols, shape = _square_indices(x, y, dx, dy, path)
    grid = lambda a, fill: _to_grid(a, rows, cols, shape, fill)  # noqa: E731
    quality = {k: grid(v, np.nan) for k, v in props.items()}
    if abs(dy - dx) > 1e-6 * dx:
        meta["ystep_um"] = dy
    return EbsdMap(grid(euler, 0.0), grid(phase, 0).astype(np.int32), phases, float(dx), str(path), quality, meta)


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)


def _square_indices(x, y, dx, dy, path):
    cols = np.rint((x - x.min()) / dx).astype(np.int64)
    rows = np.rint((y - y.min()) / dy).astype(np.int64)
    shape = (int(rows.max()) + 1, int(cols.max()) + 1)
    if len(np.unique(rows * shape[1] + cols)) != len(x):
        raise EbsdError(path, "point coordinates are not on a square grid of the stated step")
    return rows, cols, shape


def _to_grid(a, rows, cols, shape, fill):
    out = np.full(shape + a.shape[1:], fill, dtype=np.result_type(a.dtype, type(fill)) if a.dtype.kind == "f" else a.dtype)
    out[rows, cols] = a
    return out


def hex_grid_xy(nrows: int, ncols_odd: int, ncols_even: int, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Point coordinates (um, row-major) of a TSL hexagonal grid: rows ``step * sqrt(3)/2`` apart, the even
    rows (2nd, 4th ...) shifted by half a step and ``ncols_even`` long."""
    xs, ys = [], []
    for r in range(nrows):
        n, shift = (ncols_odd, 0.0) if r % 2 == 0 else (ncols_even, 0.5)
        xs.append((np.arange(n) + shift) * step)
        ys.append(np.full(n, r * step * np.sqrt(3) / 2))
    return np.concatenate(xs), np.concatenate(ys)


def resample_hex_to_square(x: np.ndarray, y: np.ndarray, step: float, arrays: dict[str, np.ndarray]):
    """Nearest-neighbour resampling of per-point ``arrays`` (n, ...) at hexagonal-grid points (x, y, um) onto
    the square grid of the same ``step`` covering them; returns ({name: (rows, cols, ...)}, shape)."""
    from scipy.spatial import cKDTree

    ncols = int(np.floor((x.max() - x.min()) / step + 1e-9)) + 1
    nrows = int(np.floor((y.max() - y.min()) / step + 1e-9)) + 1
    rr, cc = np.mgrid[0:nrows, 0:ncols]
    q = np.column_stack([x.min() + cc.ravel() * step, y.min() + rr.ravel() * step])
    _, idx = cKDTree(np.column_stack([x, y])).query(q)
    return {k: np.asarray(v)[idx].reshape((nrows, ncols) + np.asarray(v).shape[1:]) for k, v in arrays.items()}, (nrows, ncols)


# --------------------------------------------------------------------------------------------------
# Oxford .cpr/.crc
# --------------------------------------------------------------------------------------------------
def _read_oxford_binary(path: Path) -> EbsdMap:
    crc = path.with_suffix(".crc")
    if not crc.is_file():
        crc = path.with_suffix(".CRC")
    if not crc.is_file():
        raise EbsdError(path, f"no data file {path.with_suffix('.crc').name} beside the .cpr")
    cp = configparser.ConfigParser(comment_prefixes=(";", "#"), strict=False, interpolation=None)
    cp.optionxform = str
    try:
        cp.read_string(path.read_text(errors="replace"))
        job = cp["Job"]
        ncols, nrows = int(job["xCells"]), int(job["yCells"])
    except Exception as exc:  # noqa: BLE001
        raise EbsdError(path, f"not a readable Channel 5 project file ({type(exc).__name__}: {exc})") from exc
    try:
        step = float(job.get("GridDistX", "nan"))
    except ValueError:
        step = float("nan")
    if not (np.isfinite(step) and step > 0):
        raise EbsdError(path, "no step size (Job GridDistX missing or not positive)")
    if job.get("GridType", "0").strip() not in ("0", "SqrGrid", ""):
        raise EbsdError(path, f"grid type {job.get('GridType')!r} is not supported (square grids only)")
    phases = {}
    for i in range(1, int(cp.get("Phases", "Count", fallback="0")) + 1):
        sec = cp[f"Phase{i}"] if cp.has_section(f"Phase{i}") else {}
        name = sec.get("StructureName", f"phase{i}")
        laue = OXFORD_LAUE_GROUPS.get(int(sec.get("LaueGroup", "0") or 0))
        if laue is None:
            raise EbsdError(path, f"phase {i} ({name!r}): unknown crystal symmetry (LaueGroup {sec.get('LaueGroup')!r})")
        phases[i] = phase_from_point_group(i, name, laue, path)
    fields = [("phase", "u1")]
    for i in range(1, int(cp.get("Fields", "Count", fallback="0")) + 1):
        fid = int(cp["Fields"][f"Field{i}"])
        if fid not in _CRC_FIELDS:
            raise EbsdError(path, f"unknown data field id {fid} in [Fields] (cannot decode the .crc records)")
        fields.append(_CRC_FIELDS[fid])
    dtype = np.dtype(fields)
    size = crc.stat().st_size
    if size != dtype.itemsize * nrows * ncols:
        raise EbsdError(crc, f"truncated or damaged: {size} bytes, {nrows} x {ncols} points of {dtype.itemsize} bytes need {dtype.itemsize * nrows * ncols}")
    data = np.fromfile(crc, dtype).reshape(nrows, ncols)
    if not {"phi1", "Phi", "phi2"} <= set(dtype.names):
        raise EbsdError(path, "the .crc records have no Euler angles")
    euler = np.stack([data["phi1"], data["Phi"], data["phi2"]], axis=-1).astype(np.float64)
    quality = {k: data[k].astype(np.float64) for k in dtype.names if k not in ("phase", "phi1", "Phi", "phi2")}
    meta = {"source": str(path), "reader": "configparser + numpy (Channel 5 .cpr/.crc)", "grid": "square",
            "points_in_file": nrows * ncols}
    return EbsdMap(euler, data["phase"].astype(np.int32), phases, step, str(path), quality, meta)
