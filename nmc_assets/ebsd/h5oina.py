"""Oxford Instruments' HDF5 EBSD file (``.h5oina``, AZtec 4.2+), read with h5py (orix does not read it).

Layout (Oxford's public specification, github.com/oinanoanalysis/h5oina): slice group ``1`` (the names are
in the root ``Index`` dataset), ``<slice>/EBSD/Data/``: ``Phase`` (size,) uint8, 0 = not indexed;
``Euler`` (size, 3) Bunge ZXZ in radians; optional ``X``, ``Y`` (um, origin top left), ``Mean Angular
Deviation`` (radians), ``Band Contrast``, ``Band Slope``, ``Bands``, ``Error``, ``Pattern Quality``.
``<slice>/EBSD/Header/``: ``X Cells``, ``Y Cells``, ``X Step``, ``Y Step`` (um) and ``Phases/<i>/`` (i from
1) with ``Phase Name`` and ``Laue Group`` (Oxford's index; its ``Symbol`` attribute, e.g. ``-3m``, is used
when present). Points run row by row (x fastest). Points outside an irregular acquisition area hold NaN: not
indexed here. Quality figures: ``mad`` in degrees (as ``.ctf``/``.crc``), ``bc``, ``bs``, ``bands``,
``error``, ``pq``. Every problem raises :class:`~nmc_assets.ebsd.maps.EbsdError` ``<file>: <problem>``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nmc_assets.ebsd.maps import OXFORD_LAUE_GROUPS, EbsdError, EbsdMap, phase_from_point_group

__all__ = ["read_h5oina", "write_h5oina"]

#: ``Data`` datasets kept as quality figures: name in the file -> (key, factor to the stored unit).
_QUALITY = {"Mean Angular Deviation": ("mad", 180 / np.pi), "Band Contrast": ("bc", 1.0), "Band Slope": ("bs", 1.0),
            "Bands": ("bands", 1.0), "Error": ("error", 1.0), "Pattern Quality": ("pq", 1.0)}
#: Oxford's Laue-group index of each Laue-group name (the inverse of ``OXFORD_LAUE_GROUPS``).
_LAUE_INDEX = {v: k for k, v in OXFORD_LAUE_GROUPS.items()}


def _text(value) -> str:
    v = np.asarray(value).ravel()
    v = v[0] if v.size else ""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _scalar(group, name: str, path: Path, kind=float):
    if name not in group:
        raise EbsdError(path, f"no {group.name}/{name}")
    v = np.asarray(group[name][()]).ravel()
    try:
        return kind(v[0])
    except (IndexError, ValueError, TypeError):
        raise EbsdError(path, f"{group.name}/{name} is not a number: {v!r}") from None


def read_h5oina(path: str | Path) -> EbsdMap:
    """The EBSD map of the first slice of an ``.h5oina`` file (see the module docstring for the layout)."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError and others for non-HDF5 files
        raise EbsdError(path, f"not a readable HDF5 file ({type(exc).__name__}: {exc})") from exc
    with f:
        slices = [_text(s) for s in np.asarray(f["Index"][()]).ravel()] if "Index" in f else ["1"]
        name = next((s for s in slices if f"{s}/EBSD" in f), None)
        if name is None:
            raise EbsdError(path, f"no EBSD acquisition (no <slice>/EBSD group; slices {slices})")
        ebsd = f[f"{name}/EBSD"]
        if "Data" not in ebsd or "Header" not in ebsd:
            raise EbsdError(path, f"{ebsd.name} has no Data or no Header group")
        data, header = ebsd["Data"], ebsd["Header"]
        ncols, nrows = _scalar(header, "X Cells", path, int), _scalar(header, "Y Cells", path, int)
        step = _scalar(header, "X Step", path)
        ystep = _scalar(header, "Y Step", path) if "Y Step" in header else step
        if not (np.isfinite(step) and step > 0):
            raise EbsdError(path, f"step size must be positive, got X Step {step}")
        if nrows < 1 or ncols < 1:
            raise EbsdError(path, f"the header's grid is {ncols} x {nrows} cells")
        for key in ("Phase", "Euler"):
            if key not in data:
                raise EbsdError(path, f"no {data.name}/{key} dataset")
        n = nrows * ncols
        phase_raw = np.asarray(data["Phase"][()], np.float64).reshape(-1)
        euler = np.asarray(data["Euler"][()], np.float64)
        if euler.size != 3 * len(phase_raw) or len(phase_raw) != n:
            raise EbsdError(path, f"truncated or damaged: {len(phase_raw)} phase values and {euler.size // 3} orientations, "
                            f"the header's grid has {n} ({ncols} x {nrows})")
        euler = euler.reshape(nrows, ncols, 3)
        finite = np.isfinite(euler).all(-1) & np.isfinite(phase_raw.reshape(nrows, ncols))
        phase = np.where(finite, phase_raw.reshape(nrows, ncols), 0).astype(np.int32)
        quality = {}
        for ds, (key, factor) in _QUALITY.items():
            if ds in data and data[ds].size == n:
                quality[key] = np.asarray(data[ds][()], np.float64).reshape(nrows, ncols) * factor
        phases = {}
        for pname in sorted(header["Phases"], key=lambda s: int(s) if s.isdigit() else 0) if "Phases" in header else []:
            grp = header["Phases"][pname]
            if not pname.isdigit():
                raise EbsdError(path, f"phase group {pname!r} is not a phase number")
            pid = int(pname)
            label = _text(grp["Phase Name"][()]) if "Phase Name" in grp else f"phase{pid}"
            if "Laue Group" not in grp:
                raise EbsdError(path, f"phase {pid} ({label!r}): no Laue Group")
            laue = grp["Laue Group"]
            symbol = _text(laue.attrs["Symbol"]) if "Symbol" in laue.attrs else OXFORD_LAUE_GROUPS.get(_scalar(grp, "Laue Group", path, int))
            if not symbol:
                raise EbsdError(path, f"phase {pid} ({label!r}): unknown crystal symmetry (Laue Group {np.asarray(laue[()]).ravel()})")
            phases[pid] = phase_from_point_group(pid, label, symbol, path)
        meta = {"source": str(path), "reader": "h5py (Oxford .h5oina)", "grid": "square", "points_in_file": n, "slice": name}
        if "Format Version" in f:
            meta["format_version"] = _text(f["Format Version"][()])
        if abs(ystep - step) > 1e-6 * step:
            meta["ystep_um"] = ystep
        if "X" in data and data["X"].size == n:  # the points must run row by row, x fastest
            x = np.asarray(data["X"][()], np.float64).reshape(nrows, ncols)
            ok = np.isfinite(x)
            col = np.broadcast_to(np.arange(ncols), x.shape)
            if ok.any() and (np.rint((x[ok] - np.median(x[ok] - col[ok] * step)) / step) != col[ok]).any():
                raise EbsdError(path, "point X coordinates are not row by row on the header's grid (x fastest)")
    return EbsdMap(euler, phase, phases, float(step), str(path), quality, meta)


def write_h5oina(path: str | Path, m: EbsdMap) -> Path:
    """Write ``m`` as a minimal ``.h5oina`` (the mandatory datasets plus X, Y and the ``mad``/``bc``/``bs``
    quality figures it has), atomically; for tests and for handing virtual maps to Oxford software."""
    import h5py

    from nmc_assets.storage import atomic_path

    rows, cols = m.shape
    rr, cc = np.mgrid[0:rows, 0:cols]
    with atomic_path(Path(path)) as tmp, h5py.File(tmp, "w") as f:
        f["Format Version"] = np.array([b"5.0"])
        f["Index"] = np.array([b"1"])
        f["Manufacturer"] = np.array([b"nmc_assets"])
        d = f.create_group("1/EBSD/Data")
        h = f.create_group("1/EBSD/Header")
        d["Phase"] = m.phase_id.ravel().astype(np.uint8)
        d["Euler"] = m.euler_rad.reshape(-1, 3).astype(np.float32)
        d["X"] = (cc.ravel() * m.step_um).astype(np.float32)
        d["Y"] = (rr.ravel() * m.step_um).astype(np.float32)
        for ds, (key, factor) in _QUALITY.items():
            if key in m.quality and key in ("mad", "bc", "bs"):
                d[ds] = (m.quality[key].ravel() / factor).astype(np.float32 if key == "mad" else np.uint8)
        for k, v in (("X Cells", cols), ("Y Cells", rows)):
            h[k] = np.array([v], np.int32)
        for k in ("X Step", "Y Step"):
            h[k] = np.array([m.step_um], np.float32)
        h["Project Label"] = np.array([b"nmc_assets"])
        for pid, ph in m.phases.items():
            g = h.create_group(f"Phases/{pid}")
            g["Phase Name"] = np.array([ph.name.encode()])
            g["Laue Group"] = np.array([_LAUE_INDEX.get(ph.laue_group, 0)], np.int32)
            g["Laue Group"].attrs["Symbol"] = ph.laue_group
    return Path(path)
