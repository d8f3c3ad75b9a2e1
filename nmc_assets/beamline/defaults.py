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

:func:`mix_config` samples scans between the two (the training distribution of the shipped model): each
group of knobs (binder contrast, binder lumpiness, noise, packing, damage) gets its own position ``t`` in
[0, 1] between the ``default`` (0) and the ``hard`` (1) preset, drawn from the seed.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from nmc_assets.beamline.damage import DamageOverride
from nmc_assets.beamline.render import RenderParams
from nmc_assets.beamline.simulate import SIMULATOR_VERSION, ScanConfig, simulate_scan, write_scan

__all__ = ["DEFAULT_SCANS", "write_default_scans", "PRESETS", "preset_config", "mix_config", "MIX_GROUPS"]

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

#: knob groups of :func:`mix_config`, each interpolated with its own position between default (0) and hard (1)
MIX_GROUPS = ("contrast", "lumpiness", "noise", "packing", "damage")
#: filled-particle packing fraction of the default preset (its solid fraction is ~0.48)
_DEFAULT_SOLID_FRACTION = 0.48


def _lerp(a: float, b: float, t: float) -> float:
    return float(a + (b - a) * t)


def mix_config(seed: int, t: dict[str, float] | float | None = None, **overrides) -> tuple[ScanConfig, dict[str, float]]:
    """A scan between the ``default`` and ``hard`` presets: ``(ScanConfig, positions)``.

    ``t``: position per knob group (:data:`MIX_GROUPS`; 0 = default, 1 = hard), one float for all groups,
    or None to draw each uniformly in [0, 1] from ``seed`` (the scan's seed too, unless overridden).
    Binder contrast, lumpiness (and its scale), noise (sd and correlation length), solid fraction and
    overlap, and the damage distribution's mean are interpolated linearly; damage at 0 is the law's own.
    """
    if t is None:
        rng = np.random.default_rng([seed, 15])
        pos = {g: float(rng.uniform(0.0, 1.0)) for g in MIX_GROUPS}
    elif isinstance(t, (int, float)):
        pos = {g: float(t) for g in MIX_GROUPS}
    else:
        unknown = set(t) - set(MIX_GROUPS)
        if unknown:
            raise ValueError(f"unknown mix groups {sorted(unknown)}; choose from {MIX_GROUPS}")
        pos = {g: float(t.get(g, 0.0)) for g in MIX_GROUPS}
    bad = {g: v for g, v in pos.items() if not 0.0 <= v <= 1.0}
    if bad:
        raise ValueError(f"mix positions must be in [0, 1], got {bad}")
    d, h = RenderParams(), PRESETS["hard"]["render"]
    render = replace(
        d,
        phase_cbd=_lerp(d.phase_cbd, h.phase_cbd, pos["contrast"]),
        cbd_modulation=_lerp(d.cbd_modulation, h.cbd_modulation, pos["lumpiness"]),
        cbd_modulation_scale_um=_lerp(d.cbd_modulation_scale_um, h.cbd_modulation_scale_um, pos["lumpiness"]),
        noise_sd=_lerp(d.noise_sd, h.noise_sd, pos["noise"]),
        noise_scale_um=_lerp(d.noise_scale_um, h.noise_scale_um, pos["noise"]),
    )
    hard = PRESETS["hard"]
    settings: dict = {"render": render, "seed": seed}
    if pos["packing"] > 0:
        settings["target_solid_fraction"] = _lerp(_DEFAULT_SOLID_FRACTION, hard["target_solid_fraction"], pos["packing"])
        settings["overlap"] = _lerp(ScanConfig().overlap, hard["overlap"], pos["packing"])
    if pos["damage"] > 0:
        ho = hard["damage_override"]
        settings["damage_override"] = DamageOverride(mean=_lerp(0.04, ho.mean, pos["damage"]), max=_lerp(0.25, ho.max, pos["damage"]),
                                                     concentration=ho.concentration)
    return ScanConfig(**{**settings, **overrides}), pos


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
