from dataclasses import replace

import pytest

from nmc_assets.synthesis.quality import calibration_report, parameter_errors
from nmc_assets.synthesis.sections import DESCRIPTORS


def test_report_scores_the_truth_better_than_a_wrong_model(observed_sections, reference_params):
    sections = observed_sections[:12]
    truth = calibration_report(sections, reference_params, reference_params, n_pairs=2, generated_factor=2)
    wrong_params = replace(reference_params, density_per_um3=0.4)
    wrong = calibration_report(sections, wrong_params, reference_params, n_pairs=2, generated_factor=2)
    assert truth["n_generated_sections"] == 24 and truth["n_pairs"] == 2
    assert set(truth["distance_ratio"]) == set(DESCRIPTORS)
    assert truth["relative_error"]["density_per_um3"] == 0.0
    assert wrong["relative_error"]["density_per_um3"] == pytest.approx(-0.6)
    # fewer, larger grains: grains per section and areas are far off
    assert wrong["distance_ratio"]["grains_per_section"] > 3 * truth["distance_ratio"]["grains_per_section"]
    assert wrong["distance_ratio"]["area_um2"] > 2 * truth["distance_ratio"]["area_um2"]
    with pytest.raises(ValueError, match="n_pairs"):
        calibration_report(sections, reference_params, n_pairs=0)


def test_parameter_errors_report_the_mean_elongation(reference_params):
    longer = replace(reference_params, elongation_log_mean=reference_params.elongation_log_mean + 0.1)
    err = parameter_errors(longer, reference_params, ("elongation_log_mean", "alignment_spread_deg"))
    assert set(err) == {"mean_elongation", "alignment_spread_deg"}
    assert err["alignment_spread_deg"] == 0.0
    assert err["mean_elongation"] == pytest.approx(longer.mean_elongation / reference_params.mean_elongation - 1)


def test_judge_covers_the_target_parameters_only():
    from nmc_assets.synthesis.quality import judge

    rep = {"distance_ratio": {"area_um2": 0.9, "grains_per_section": 1.4},
           "relative_error": {"density_per_um3": 0.1, "mean_elongation": -0.14, "alignment_spread_deg": 0.0, "elongation_log_sd": 0.8}}
    assert judge(rep) == {"distances_ok": True, "recovery_ok": True, "passed": True}
    assert judge({**rep, "distance_ratio": {"area_um2": 1.6}})["passed"] is False
    assert judge({**rep, "relative_error": {"density_per_um3": -0.2}}) == {"distances_ok": True, "recovery_ok": False, "passed": False}
    # reference unknown: only the distances decide
    assert judge({"distance_ratio": {"area_um2": 1.2}}) == {"distances_ok": True, "recovery_ok": None, "passed": True}


def test_equivalent_alignment_trades_the_log_sd_against_the_alignment(reference_params):
    """A wider elongation spread (same mean elongation) needs a narrower alignment spread for the same
    grain orientations in sections: the confounding the calibration report states."""
    import math

    from nmc_assets.synthesis.quality import equivalent_alignment
    from nmc_assets.synthesis.section_geometry import SectionGeometry

    geometry = SectionGeometry(math.log(2.5), 0.0, (0.1,))
    rows = equivalent_alignment(reference_params, geometry, [0.1, 0.25, 0.45], n_sections=24, seed=3)
    by_sd = {r["elongation_log_sd"]: r for r in rows}
    assert by_sd[0.25]["alignment_spread_deg"] == pytest.approx(15.0)  # its own log-sd: nothing to trade
    assert by_sd[0.1]["alignment_spread_deg"] > 15.2 and by_sd[0.45]["alignment_spread_deg"] < 14.5
    for r in rows:  # each solution reproduces the target's mean radial angle
        assert r["mean_radial_angle_deg"] == pytest.approx(r["target_mean_radial_angle_deg"], abs=0.4)
    with pytest.raises(ValueError, match="n_sections"):
        equivalent_alignment(reference_params, geometry, [0.3], n_sections=0)
