"""The embedded default data: two virtual scans (10 and 50 cycles) for the demo and the tests downstream.

Each is 160 x 384 x 384 voxels at 0.2 um (32 x 77 x 77 um), about 450 particles (about 200 not cut by the
volume border, enough for the per-condition damage analytics), 8 um particles about 40 voxels across;
generation takes about 30-40 s per scan on a 2-core CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

from nmc_assets.beamline.simulate import SIMULATOR_VERSION, ScanConfig, simulate_scan, write_scan

__all__ = ["DEFAULT_SCANS", "write_default_scans"]

#: scan id -> configuration of the embedded default scans.
DEFAULT_SCANS: dict[str, ScanConfig] = {
    "virtual_c10": ScanConfig(shape=(160, 384, 384), voxel_size_um=0.2, cycles=10, seed=10),
    "virtual_c50": ScanConfig(shape=(160, 384, 384), voxel_size_um=0.2, cycles=50, seed=50),
}


def write_default_scans(incoming_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """Simulate the default scans into ``incoming_dir`` and return the volume paths (``<scan>.tif``).

    A scan whose four files already exist and whose sidecar names this simulator version and the same
    seed and shape is not simulated again unless ``overwrite`` (the output is deterministic, so
    regenerating would write the same bytes). Files from another simulator version are replaced.
    """
    out = Path(incoming_dir)
    paths = []
    for scan_id, config in DEFAULT_SCANS.items():
        files = [out / f"{scan_id}{s}" for s in (".tif", ".json", ".labels.tif", ".truth.parquet")]
        if not overwrite and all(f.exists() for f in files) and _up_to_date(files[1], config):
            paths.append(files[0])
            continue
        paths.append(write_scan(simulate_scan(config), out, scan_id)["volume"])
    return paths


def _up_to_date(sidecar: Path, config: ScanConfig) -> bool:
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return False
    return (meta.get("simulator_version") == SIMULATOR_VERSION and meta.get("seed") == config.seed
            and meta.get("shape") == list(config.shape) and meta.get("cycles") == config.cycles)
