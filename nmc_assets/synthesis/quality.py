"""Calibration quality: section-descriptor distances and parameter recovery.

- ``distances``: W1 per descriptor between the observed sections and ``generated_factor`` x as many hard
  sections of the calibrated model (cut like the observed ones: the particle radius law and pixel sizes
  of :class:`.section_geometry.SectionGeometry` fitted to them). The larger generated sample measures the distance to the *model* rather than to one more
  finite draw of it: with equal sizes the observed-vs-generated distance of a perfect model is itself a
  two-sample distance, and one such draw exceeds 1.5x the mean in about a third of observed samples.
- ``two_sample_distances``: W1 between two independent samples of the same size from the reference model
  (the calibrated model when no reference is known), averaged over a few pairs: the distance that
  sampling noise alone produces.
- ``distance_ratio``: distances / two-sample distances (about 1 for a perfect fit; target <= 1.5).
- ``relative_error`` (reference known): (calibrated - reference) / reference for density, mean elongation,
  alignment spread and the other learned parameters.
- ``equivalent_alignment``: the alignment spread that another elongation log-sd would need to give the same
  grain orientations in sections. The two are confounded in 2D sections (a wider elongation spread at the
  same mean elongation makes more near-isotropic grains, whose angles look like misalignment), so the
  calibrated alignment is conditional on the log-sd, which the default calibration fixes at a prior.
"""

from __future__ import annotations

import numpy as np

from nmc_assets.particles.grains import GrainParams
from nmc_assets.synthesis.section_geometry import SectionGeometry, sections_like_observed
from nmc_assets.synthesis.sections import DESCRIPTORS, Section, descriptor_distances, descriptor_samples

#: The parameters whose recovery the calibration targets (the others are reported, not judged).
TARGET_PARAMETERS = ("density_per_um3", "mean_elongation", "alignment_spread_deg")

RECOVERY_KEYS = {
    "density_per_um3": "density_per_um3",
    "elongation_log_mean": "mean_elongation",
    "elongation_log_sd": "elongation_log_sd",
    "alignment_spread_deg": "alignment_spread_deg",
    "weight_spread": "weight_spread",
}


def parameter_errors(calibrated: GrainParams, reference: GrainParams, learned=None) -> dict[str, float]:
    """Relative error per learned parameter (the elongation log-mean is reported as the mean elongation)."""
    names = learned or ("density_per_um3", "elongation_log_mean", "alignment_spread_deg")
    cal, ref = calibrated.to_dict(), reference.to_dict()
    out = {}
    for n in names:
        key = RECOVERY_KEYS[n]
        out[key] = float((cal[key] - ref[key]) / ref[key]) if ref[key] else float("nan")
    return out


def calibration_report(sections: list[Section], calibrated: GrainParams, reference: GrainParams | None = None, seed: int = 7, learned=None, n_pairs: int = 4, generated_factor: int = 4) -> dict:
    """Distances (observed vs ``generated_factor`` x n generated sections), two-sample reference distances
    (samples of size n, mean over ``n_pairs`` pairs), ratios and parameter errors."""
    if n_pairs < 1 or generated_factor < 1:
        raise ValueError(f"calibration_report: n_pairs and generated_factor must be >= 1, got {n_pairs}, {generated_factor}")
    n = len(sections)
    geometry = SectionGeometry.fit(sections)
    observed = descriptor_samples(sections)
    generated = descriptor_samples(sections_like_observed(calibrated, geometry, generated_factor * n, seed))
    model = reference or calibrated
    pairs = []
    for i in range(n_pairs):
        a = descriptor_samples(sections_like_observed(model, geometry, n, seed + 1 + 2 * i))
        b = descriptor_samples(sections_like_observed(model, geometry, n, seed + 2 + 2 * i))
        pairs.append(descriptor_distances(a, b))
    dist = descriptor_distances(observed, generated)
    two = {k: float(np.mean([p[k] for p in pairs])) for k in DESCRIPTORS}
    rep = {
        "n_sections": n,
        "n_generated_sections": generated_factor * n,
        "n_pairs": n_pairs,
        "distances": dist,
        "two_sample_distances": two,
        "distance_ratio": {k: float(dist[k] / two[k]) if two[k] > 0 else float("inf") for k in DESCRIPTORS},
        "calibrated_params": calibrated.to_dict(),
    }
    if reference is not None:
        rep["reference_params"] = reference.to_dict()
        rep["relative_error"] = parameter_errors(calibrated, reference, learned)
    return rep


def equivalent_alignment(params: GrainParams, geometry: SectionGeometry, log_sd_values, n_sections: int = 128, seed: int = 11, iterations: int = 3) -> list[dict]:
    """For each elongation log-sd in ``log_sd_values``: the alignment spread (deg) whose sections have the
    same mean grain radial angle as ``params`` (density and mean elongation kept).

    ``n_sections`` hard sections cut by ``geometry``, the same ``seed`` for every evaluation (common random
    numbers: with the density fixed, every evaluation tessellates the same seeds), solved by secant steps
    from ``params.alignment_spread_deg`` (the mean angle rises by ~0.5 deg per deg of alignment spread).
    Returns one dict per value: ``elongation_log_sd``, ``alignment_spread_deg``, ``mean_radial_angle_deg``
    (and ``target_mean_radial_angle_deg``, that of ``params``).
    """
    if n_sections < 1 or iterations < 1:
        raise ValueError(f"equivalent_alignment: n_sections and iterations must be >= 1, got {n_sections}, {iterations}")

    def mean_angle(p: GrainParams) -> float:
        return float(np.mean(descriptor_samples(sections_like_observed(p, geometry, n_sections, seed))["radial_angle_deg"]))

    def with_log_sd(log_sd: float, alignment: float) -> GrainParams:
        return GrainParams.with_mean_elongation(params.mean_elongation, float(log_sd), density_per_um3=params.density_per_um3,
                                                alignment_spread_deg=float(alignment), weight_spread=params.weight_spread,
                                                hard_core_fraction=params.hard_core_fraction)

    target = mean_angle(params)
    out = []
    for log_sd in log_sd_values:
        a0 = params.alignment_spread_deg
        m0 = mean_angle(with_log_sd(log_sd, a0))
        a1 = min(max(a0 * 1.2, a0 + 1.0), 80.0)
        m1 = mean_angle(with_log_sd(log_sd, a1))
        for _ in range(iterations):
            if abs(m1 - target) < 1e-9 or a1 == a0:
                break
            slope = max((m1 - m0) / (a1 - a0), 0.05)  # the angle rises with the spread; guard a flat secant
            a0, m0 = a1, m1
            a1 = float(np.clip(a1 + (target - m1) / slope, 0.1, 80.0))
            m1 = mean_angle(with_log_sd(log_sd, a1))
        best_a, best_m = (a1, m1) if abs(m1 - target) <= abs(m0 - target) else (a0, m0)
        out.append({"elongation_log_sd": float(log_sd), "alignment_spread_deg": float(best_a),
                    "mean_radial_angle_deg": float(best_m), "target_mean_radial_angle_deg": target})
    return out


def judge(report: dict, max_distance_ratio: float = 1.5, max_relative_error: float = 0.15) -> dict:
    """Pass/fail of a :func:`calibration_report`: every descriptor ratio <= ``max_distance_ratio``, and
    (reference known) every target parameter (:data:`TARGET_PARAMETERS`) within ``max_relative_error``."""
    distances_ok = all(r <= max_distance_ratio for r in report["distance_ratio"].values())
    errors = {k: v for k, v in report.get("relative_error", {}).items() if k in TARGET_PARAMETERS}
    recovery_ok = all(abs(v) <= max_relative_error for v in errors.values()) if errors else None
    return {"distances_ok": distances_ok, "recovery_ok": recovery_ok, "passed": bool(distances_ok and recovery_ok is not False)}
