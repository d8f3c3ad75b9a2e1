"""Calibration intervals by simulated moments (nmc_assets.synthesis.intervals)."""

import math

import numpy as np
import pytest

from nmc_assets.particles.grains import GrainParams
from nmc_assets.particles.sections import Section
from nmc_assets.synthesis.intervals import (
    INTERVAL_PARAMETERS,
    MOMENT_NAMES,
    bootstrap_covariance,
    identified_combination,
    moment_intervals,
    moments,
    section_sums,
)
from nmc_assets.synthesis.parameter_space import PHYSICAL_BOUNDS


def _two_grain_section() -> Section:
    """A 40 x 40 px section at 0.1 um: grain 1 a 20 x 4 px bar pointing at the centre (radial), grain 2 a
    4 x 4 px square."""
    lab = np.zeros((40, 40), np.uint16)
    lab[2:22, 18:22] = 1  # long axis along the rows, centre column: radial
    lab[30:34, 30:34] = 2
    lab[20:38, 4:16] = 3  # a 18 x 12 block to put the mask centre near the middle
    return Section(lab, 0.1)


def test_moments_of_a_constructed_section():
    sec = _two_grain_section()
    m = dict(zip(MOMENT_NAMES, moments(section_sums([sec]))))
    areas = np.array([80, 16, 216]) * 0.01
    assert m["mean_ln_area_um2"] == pytest.approx(np.log(areas).mean())
    assert m["sd_ln_area"] == pytest.approx(np.log(areas).std())
    assert m["ln_grains_per_um2"] == pytest.approx(math.log(3 / (312 * 0.01)))
    # the bar (aspect sqrt((20^2 - 1) / (4^2 - 1)) = 5.2) is the only elongated grain; its long axis runs along
    # the rows, so its angle to the radial direction is that of (bar centroid - mask centroid) to the row axis
    dr, dc = np.array([11.5, 19.5]) - np.argwhere(sec.labels > 0).mean(axis=0)
    assert m["mean_angle_elongated_deg"] == pytest.approx(np.degrees(np.arctan2(abs(dc), abs(dr))))
    assert m["share_isotropic"] == pytest.approx(1 / 3)  # the square only (the 18 x 12 block has aspect 1.5)


def test_bootstrap_covariance_is_zero_for_identical_sections_and_shrinks_with_sample_size(observed_sections):
    sums = section_sums(observed_sections)
    same = np.repeat(sums[:1], 10, axis=0)
    assert np.allclose(bootstrap_covariance(same, 10, 50, np.random.default_rng(0)), 0)
    rng = np.random.default_rng(1)
    c4, c24 = bootstrap_covariance(sums, 4, 300, rng), bootstrap_covariance(sums, 24, 300, rng)
    assert c4.shape == (len(MOMENT_NAMES),) * 2
    ratio = np.diag(c4)[0] / np.diag(c24)[0]  # the variance of a mean falls like 1/n
    assert 3 < ratio < 12


@pytest.fixture(scope="module")
def intervals_24(observed_sections, reference_params):
    start = GrainParams.with_mean_elongation(reference_params.mean_elongation * 1.25, 0.35, density_per_um3=0.75,
                                             alignment_spread_deg=20.0, weight_spread=0.1)
    return moment_intervals(observed_sections, start, n_simulated=64, gauss_newton_steps=6, seed=3, n_boot=200)


def test_intervals_are_ordered_bounded_and_contain_the_truth(intervals_24, reference_params):
    r = intervals_24
    truth = {**reference_params.to_dict(), "mean_elongation": reference_params.mean_elongation}
    assert set(r["intervals"]) == set(INTERVAL_PARAMETERS) | {"mean_elongation"}
    for k, (lo, hi) in r["intervals"].items():
        assert lo <= r["estimate"][k] <= hi, k
        if k in PHYSICAL_BOUNDS:
            assert PHYSICAL_BOUNDS[k][0] <= lo and hi <= PHYSICAL_BOUNDS[k][1]
    for k in ("density_per_um3", "mean_elongation", "alignment_spread_deg"):  # started 25-33 % off
        lo, hi = r["intervals"][k]
        assert lo <= truth[k] <= hi, (k, lo, truth[k], hi)
    assert r["j_dof"] == len(MOMENT_NAMES) - len(INTERVAL_PARAMETERS)
    assert 0 <= r["j_p_value"] <= 1
    assert r["n_sections"] == 24


def test_one_section_gives_a_wider_interval(observed_sections, intervals_24):
    one = moment_intervals(observed_sections[:1], GrainParams.from_dict(intervals_24["estimate"] | {"weight_spread": 0.1}),
                           n_simulated=48, gauss_newton_steps=1, seed=3, n_boot=200)

    def width(r, k):
        lo, hi = r["intervals"][k]
        return math.log(hi / lo)

    assert width(one, "density_per_um3") > 2 * width(intervals_24, "density_per_um3")
    assert width(one, "mean_elongation") > width(intervals_24, "mean_elongation")


def test_identified_combination_of_confounded_parameters():
    ia, isd = INTERVAL_PARAMETERS.index("alignment_spread_deg"), INTERVAL_PARAMETERS.index("elongation_log_sd")
    cov = np.eye(4) * 0.01
    cov[ia, ia] = cov[isd, isd] = 1.0
    cov[ia, isd] = cov[isd, ia] = -0.99  # nearly only ln(alignment) + ln(log-sd) is known
    r = identified_combination(cov)
    assert not r["separable"]
    assert r["correlation_alignment_log_sd"] == pytest.approx(-0.99)
    assert r["combination"].startswith("ln(alignment_spread_deg) + 1.00 ln(elongation_log_sd)")
    assert r["combination_sd"] == pytest.approx(math.sqrt(0.01), rel=1e-6)
    assert identified_combination(np.eye(4) * 0.04)["separable"]


@pytest.mark.parametrize("mean_elongation, alignment, expected", [
    ((2.2, 2.4), (14.0, 16.5), "radial"),
    ((1.0, 1.3), (0.5, 80.0), "equiaxed"),
    ((2.0, 2.6), (50.0, 80.0), "not radial"),
    ((1.2, 3.1), (10.0, 60.0), "undetermined"),
])
def test_architecture_verdict(mean_elongation, alignment, expected):
    from nmc_assets.synthesis.intervals import architecture_verdict

    result = {"intervals": {"mean_elongation": list(mean_elongation), "alignment_spread_deg": list(alignment)},
              "j_statistic": 4.0, "j_dof": 5, "j_p_value": 0.55}
    v = architecture_verdict(result)
    assert v["architecture"] == expected and v["model_fits"]
    misfit = architecture_verdict({**result, "j_statistic": 30.0, "j_p_value": 1e-5})
    assert not misfit["model_fits"] and "does NOT reproduce" in misfit["model_fit"]


def test_a_misfit_keeps_the_gan_estimate(observed_sections, tmp_path):
    from nmc_assets.synthesis.gan import GanConfig, StereologicalGan
    from nmc_assets.synthesis.store import save_grain_model

    gan = StereologicalGan(observed_sections[:4], GanConfig(steps=1, batch_size=2, critic_warmup=0, canvas_px=32))
    estimate = {"density_per_um3": 2.0, "elongation_log_mean": 0.5, "elongation_log_sd": 0.3, "alignment_spread_deg": 30.0, "mean_elongation": 1.8}
    fits = {"estimate": estimate, "intervals": {"mean_elongation": [1.6, 2.0], "alignment_spread_deg": [25.0, 35.0]},
            "j_statistic": 4.0, "j_dof": 5, "j_p_value": 0.55}
    p = save_grain_model(tmp_path / "a", gan, "v", intervals=fits)
    assert p["grain_params"]["density_per_um3"] == 2.0 and "refinement with 90 % intervals" in p["method"]
    misfit = {**fits, "j_statistic": 1330.0, "j_p_value": 1e-280}
    p = save_grain_model(tmp_path / "b", gan, "v", intervals=misfit)
    assert p["grain_params"] == p["gan_params"] and "was not used" in p["method"]
    assert p["intervals"] == misfit
