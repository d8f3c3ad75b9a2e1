"""Tiny drop-folder files built with tifffile/h5py (no beamline simulator needed); used by ingest and defs tests."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

SHAPE = (6, 20, 24)  # (z, y, x): small, with different sizes per axis so axis mix-ups show


def make_volume(shape=SHAPE, seed: int = 0, dtype=np.uint16) -> np.ndarray:
    """A grey volume with a bright ball on a noisy background (deterministic)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    c = [(s - 1) / 2 for s in shape]
    ball = ((z - c[0]) / shape[0]) ** 2 + ((y - c[1]) / shape[1]) ** 2 + ((x - c[2]) / shape[2]) ** 2 < 0.09
    vol = 1000 + 3000 * ball + rng.normal(0, 50, shape)
    return vol.astype(dtype)


def make_labels(shape=SHAPE) -> np.ndarray:
    labels = np.zeros(shape, np.uint16)
    labels[:, 2:8, 2:8] = 1
    labels[:, 10:16, 12:20] = 2
    return labels


def write_tiff(path: Path, array: np.ndarray, **kwargs) -> Path:
    import tifffile

    tifffile.imwrite(path, array, **kwargs)
    return path


def write_h5(path: Path, array: np.ndarray | None, dataset: str = "exchange/data") -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        if array is not None:
            f.create_dataset(dataset, data=array)
        else:
            f.create_dataset("exchange/theta", data=np.zeros(3))
    return path


def write_sidecar(path: Path, **keys) -> Path:
    path.write_text(json.dumps(keys))
    return path


def write_scan(incoming: Path, scan_id: str, volume: np.ndarray, fmt: str = "tif", sidecar: dict | None = None,
               labels: np.ndarray | None = None) -> Path:
    """Write one scan (+ optional sidecar and labels) into ``incoming`` like a beamline would."""
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / f"{scan_id}.{fmt}"
    if fmt == "h5":
        write_h5(path, volume)
    else:
        write_tiff(path, volume)
    if sidecar is not None:
        write_sidecar(incoming / f"{scan_id}.json", **sidecar)
    if labels is not None:
        write_tiff(incoming / f"{scan_id}.labels.tif", labels)
    return path


def truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def tree_state(folder: Path) -> dict[str, tuple[int, int, str]]:
    """``{relative path: (size, mtime_ns, sha256)}`` of every file under ``folder``."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            p = Path(root) / name
            st = p.stat()
            out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


SIDECAR = {"voxel_size_um": 0.1, "cycles": 10, "sample": "NMC811-A", "beamline": "virtual", "thickness_axis": "z"}
