"""The grain-model reference and the start 50 % off that the synthesis benchmarks share
(``bench_synthesis``, ``bench_calibration_robustness``, ``bench_confounding``)."""

from __future__ import annotations

import json

from _common import REPO as ROOT


def reference(seed: int | None = None, n_sections: int | None = None):
    """The packaged reference parameters and an observed sample of its sections (the packaged one by
    default; another independent sample with ``seed``)."""
    from nmc_assets.particles.grains import GrainParams
    from nmc_assets.particles.sections import hard_sections

    spec = json.loads((ROOT / "nmc_assets" / "synthesis" / "data" / "reference_grain_params.json").read_text())
    ref = GrainParams.from_dict(spec["grain_params"])
    n = int(n_sections or spec["n_sections"])
    sections = hard_sections(ref, [spec["particle_radius_um"]] * n, [spec["pixel_size_um"]] * n, seed=int(spec["seed"] if seed is None else seed))
    return ref, sections


def start_params(ref, log_sd: float | None = None):
    """Start 50 % off for density, mean elongation and alignment; elongation log-sd 0.35 (``log_sd``)."""
    from nmc_assets.particles.grains import GrainParams

    return GrainParams.with_mean_elongation(ref.mean_elongation * 1.5, 0.35 if log_sd is None else log_sd, density_per_um3=ref.density_per_um3 * 0.5,
                                            alignment_spread_deg=ref.alignment_spread_deg * 1.5, weight_spread=ref.weight_spread,
                                            hard_core_fraction=ref.hard_core_fraction)
