"""The embedded default data: two virtual scans (10 and 50 cycles) for the demo and the tests downstream.

Each is 160 x 384 x 384 voxels at 0.2 um (32 x 77 x 77 um), about 450 particles (about 200 not cut by the
volume border, enough for the per-condition damage analytics), 8 um particles about 40 voxels across;
generation takes about 30-40 s per scan on a 2-core CPU.

Named presets (:data:`PRESETS`, ``python -m nmc_assets.beamline simulate --preset hard``):

* ``default``: the :class:`ScanConfig` defaults (the default scans, the model's training scans);
* ``hard``: a harder benchmark set (issue 15): denser packing (solid fraction 0.60 instead of ~0.48),
  wider damage (targets with mean 0.1 and a tail up to 0.4, ranked by the law), binder/particle contrast
  halved (binder phase 0.69 instead of 0.38, NMC = 1), lumpier binder (density texture sd 0.35 of the
  binder phase at 0.8 um instead of 0.3 at 1.2 um) and stronger, correlated noise (sd x2, correlation
  length 0.12 um instead of 0.07 um). Every other setting is the default's.
"""

from __future__ import annotations

import json
from pathlib import Path

from nmc_assets.beamline.damage import DamageOverride
from nmc_assets.beamline.render import RenderParams
from nmc_assets.beamline.simulate import SIMULATOR_VERSION, ScanConfig, simulate_scan, write_scan

__all__ = ["DEFAULT_SCANS", "write_default_scans", "PRESETS", "preset_config"]

#: preset name -> the ScanConfig settings that differ from the defaults (module docstring).
PRESETS: dict[str, dict] = {
    "default": {},
    "hard": {
        "target_solid_fraction": 0.60,
        "overlap": 0.08,
        "damage_override": DamageOverride(mean=0.1, max=0.4, concentration=2.5),
        "render": RenderParams(phase_cbd=0.69, cbd_modulation=0.35, cbd_modulation_scale_um=0.8,
                               noise_sd=0.09, noise_scale_um=0.12),
    },
}


def preset_config(name: str = "default", **overrides) -> ScanConfig:
    """The :class:`ScanConfig` of preset ``name`` with ``overrides`` (shape, voxel_size_um, cycles, seed, ...)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return ScanConfig(**{**PRESETS[name], **overrides})

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
