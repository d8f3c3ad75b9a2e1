"""Convergence diagnostics of calibration runs (nmc_assets.synthesis.convergence)."""

import numpy as np
import pytest

from nmc_assets.synthesis.convergence import CalibrationDiverged, diagnostics, stop_if_diverged


def _history(n, elongation, density=1.0, alignment=15.0, w=3.0, seed=0):
    rng = np.random.default_rng(seed)
    e = np.broadcast_to(elongation, (n,)) * np.exp(0.03 * rng.normal(size=n))
    return [{"mean_elongation": float(e[i]), "density_per_um3": density * float(np.exp(0.03 * rng.normal())),
             "alignment_spread_deg": alignment, "elongation_log_sd": 0.35, "wasserstein_estimate": w} for i in range(n)]


def test_a_settled_run_is_converged():
    h = _history(200, 2.3)
    d = diagnostics(h, 3.45)
    assert d["converged"] and d["problems"] == []
    assert d["elongation_ratio"] == pytest.approx(2.3 / 3.45, rel=0.05)
    assert abs(d["drift_last_quarter"]["mean_elongation"]) < 0.1
    stop_if_diverged(h, 3.45, planned_steps=400)


def test_a_run_away_elongation_stops_the_run_with_a_message():
    h = _history(160, np.linspace(3.4, 11.6, 160))  # the real-section case of issue 16
    with pytest.raises(CalibrationDiverged, match=r"mean elongation ran away: .*x the initial 3.40") as err:
        stop_if_diverged(h, 3.4, planned_steps=400)
    assert "pixel size" in str(err.value)
    assert err.value.diagnostics["drift_last_quarter"]["mean_elongation"] == pytest.approx(np.log(11.6 / 9.6), abs=0.05)


def test_early_steps_and_drift_alone_do_not_stop():
    h = _history(50, np.linspace(3.4, 11.6, 50))
    stop_if_diverged(h, 3.4, planned_steps=400)  # before 30 % of the steps
    drifting = _history(200, 1.5 * np.exp(np.linspace(0, 1.6, 200)))  # x1.5 over the last quarter
    d = diagnostics(drifting, 4.0)
    assert any("mean_elongation still drifting: 1.4" in p or "mean_elongation still drifting: 1.5" in p for p in d["problems"]), d
    stop_if_diverged(drifting, 4.0, planned_steps=200)  # reported, not stopped


def test_bounds():
    h = _history(200, 2.3)
    d = diagnostics(h, 3.45, bounds_hit=["alignment_spread_deg"])
    assert d["converged"] and d["notes"] == ["alignment_spread_deg at its physical bound"]
    with pytest.raises(CalibrationDiverged, match="density_per_um3 reached its physical bound"):
        stop_if_diverged(h, 3.45, planned_steps=200, bounds_hit=["density_per_um3"])
