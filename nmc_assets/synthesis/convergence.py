"""Convergence diagnostics of a calibration run, from its history (one record per parameter step).

The critic's Wasserstein estimate is not a convergence measure by itself: with a fresh critic it *rises*
while the critic learns (1.7 -> 3.3 over the demo's converging 400 steps). What tells a diverging run is
the parameters: a mean elongation running away from its start (the real-section case of issue 16: 3.4 ->
11.6 in 400 steps), a parameter pinned at its physical bound, or a parameter still drifting in the last
part of the run. :func:`diagnostics` measures these; :func:`stop_if_diverged` raises
:class:`CalibrationDiverged` during training so that a diverging run stops with a message instead of
publishing a wrong model.
"""

from __future__ import annotations

import math

import numpy as np

#: A run diverges when its mean elongation exceeds this multiple of the initial guess's.
MAX_ELONGATION_RATIO = 2.0
#: Tracked parameters (history keys) and the drift (|change of ln value| over the last quarter of the steps
#: done, from a linear fit) above which a parameter counts as still drifting.
TRACKED = ("density_per_um3", "mean_elongation", "alignment_spread_deg", "elongation_log_sd")
MAX_DRIFT = 0.3
#: Parameters whose physical bound means a run-away (an alignment spread at 80 deg is an answer: no radial
#: preference).
RUNAWAY_AT_BOUND = ("density_per_um3", "elongation_log_mean")
#: Divergence is checked from this fraction of the planned steps on (the first part moves from the guess).
CHECK_FROM_FRACTION = 0.3


class CalibrationDiverged(RuntimeError):
    """A calibration run left the region where the model means anything; ``diagnostics`` says how."""

    def __init__(self, message: str, diagnostics: dict):
        super().__init__(message)
        self.diagnostics = diagnostics


def _drift(values: np.ndarray) -> float:
    """Change of ln(values) over their span from a least-squares line (robust to step-to-step noise)."""
    v = np.log(np.maximum(values, 1e-12))
    if len(v) < 3:
        return 0.0
    t = np.arange(len(v), dtype=float)
    slope = np.polyfit(t, v, 1)[0]
    return float(slope * (len(v) - 1))


def diagnostics(history: list[dict], initial_mean_elongation: float, bounds_hit: list[str] | None = None) -> dict:
    """Elongation ratio (last-tenth mean / initial), drift per tracked parameter over the last quarter,
    the Wasserstein estimate's last-quarter mean vs the quarter before, and the list of ``problems``."""
    if not history:
        return {"steps": 0, "problems": [], "converged": True}
    n = len(history)
    quarter = history[-max(3, n // 4):]
    tenth = history[-max(1, n // 10):]
    elong = float(np.mean([r["mean_elongation"] for r in tenth]))
    ratio = elong / max(initial_mean_elongation, 1e-9)
    drift = {k: _drift(np.array([r[k] for r in quarter], float)) for k in TRACKED if k in history[0]}
    w_now = [r["wasserstein_estimate"] for r in quarter if "wasserstein_estimate" in r]
    w_before = [r["wasserstein_estimate"] for r in history[-2 * len(quarter):-len(quarter)] if "wasserstein_estimate" in r]
    w_trend = float(np.mean(w_now) / np.mean(w_before)) if w_now and w_before and abs(np.mean(w_before)) > 1e-9 else float("nan")
    problems = []
    if ratio > MAX_ELONGATION_RATIO:
        problems.append(f"mean elongation ran away: {elong:.2f} = {ratio:.1f}x the initial {initial_mean_elongation:.2f}")
    for k, d in drift.items():
        if abs(d) > MAX_DRIFT:
            problems.append(f"{k} still drifting: {math.exp(d):.2f}x over the last {len(quarter)} steps")
    notes = [f"{k} at its physical bound" for k in bounds_hit or [] if k not in RUNAWAY_AT_BOUND]
    for k in bounds_hit or []:
        if k in RUNAWAY_AT_BOUND:
            problems.append(f"{k} reached its physical bound")
    return {"steps": n, "elongation_ratio": ratio, "drift_last_quarter": drift, "wasserstein_trend": w_trend,
            "problems": problems, "notes": notes, "converged": not problems}


def stop_if_diverged(history: list[dict], initial_mean_elongation: float, planned_steps: int, bounds_hit: list[str] | None = None) -> None:
    """Raise :class:`CalibrationDiverged` if the run (past :data:`CHECK_FROM_FRACTION` of its steps) ran away
    (elongation ratio or a physical bound; drift alone is reported at the end, not stopped on)."""
    if len(history) < CHECK_FROM_FRACTION * planned_steps:
        return
    d = diagnostics(history, initial_mean_elongation, bounds_hit)
    fatal = [p for p in d["problems"] if "drifting" not in p]
    if fatal:
        last = history[-1]
        raise CalibrationDiverged(
            f"grain-model calibration stopped at step {len(history)}/{planned_steps}: " + "; ".join(fatal)
            + f" (density {last['density_per_um3']:.3g}/um^3, mean elongation {last['mean_elongation']:.2f}, alignment "
            f"{last['alignment_spread_deg']:.1f} deg). The radial-grain model does not describe these sections, or they are "
            "not grain sections at the pixel size stated: check the sections (grain_sections' preview) and their pixel size.", d)
