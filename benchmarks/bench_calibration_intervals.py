"""Coverage and width of the calibration's 90 % intervals (``synthesis.intervals.moment_intervals``).

Cases (virtual sections with a known truth):

- ``gan``: the observed samples and end points of the GAN runs recorded in
  ``results/calibration_robustness.jsonl`` (variant ``default`` and the asset's current settings): the interval
  starts where the GAN ended, as in the ``grain_model`` asset.
- ``few``: 1, 4 and 16 sections of the packaged reference, started 50 % off (no GAN).
- ``equiaxed``: sections of an ordinary power diagram (elongation 1) and of one such section: the verdict must
  say ``equiaxed`` and the intervals contain the truth.

Run: .venv/bin/python benchmarks/bench_calibration_intervals.py [--cases gan few equiaxed] [--n-simulated 256] [--max-gan 8]
Appends one JSON line per case to benchmarks/results/calibration_intervals.jsonl; ``--summary`` prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

from _common import REPO as ROOT
from _synthesis_common import reference, start_params

RESULTS = ROOT / "benchmarks" / "results" / "calibration_intervals.jsonl"
ROBUSTNESS = ROOT / "benchmarks" / "results" / "calibration_robustness.jsonl"
KEYS = ("density_per_um3", "mean_elongation", "alignment_spread_deg", "elongation_log_sd")


def run_case(label: str, truth, sections, start, n_simulated: int, seed: int) -> dict:
    from nmc_assets.synthesis.intervals import architecture_verdict, covers, moment_intervals

    t0 = time.perf_counter()
    r = moment_intervals(sections, start, n_simulated=n_simulated, seed=seed)
    ref = {**truth.to_dict(), "mean_elongation": truth.mean_elongation}
    st = {**start.to_dict(), "mean_elongation": start.mean_elongation}
    return {"case": label, "n_sections": len(sections), "seconds": time.perf_counter() - t0, "n_simulated": n_simulated,
            "truth": {k: ref[k] for k in KEYS}, "start": {k: st[k] for k in KEYS},
            "start_error": {k: st[k] / ref[k] - 1 for k in KEYS}, "estimate": {k: r["estimate"][k] for k in KEYS},
            "error": {k: r["estimate"][k] / ref[k] - 1 for k in KEYS}, "intervals": r["intervals"], "covered": covers(r, truth),
            "verdict": architecture_verdict(r), "j_p_value": r["j_p_value"], "identified": r["identified"],
            "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine()}


def cases(which: list[str], max_gan: int):
    from nmc_assets.particles.grains import GrainParams
    from nmc_assets.particles.sections import hard_sections

    if "gan" in which:
        rows = [json.loads(line) for line in ROBUSTNESS.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r.get("kind") == "gan" and r.get("variant") == "default"]
        rows = sorted(rows, key=lambda r: -r["n_sections"])[:max_gan]  # the asset's 256-section runs first
        for r in rows:
            truth, secs = reference(r["obs_seed"], r["n_sections"])
            yield f"gan obs {r['obs_seed']} seed {r['gan_seed']} ({r['variant']}, {r['steps']} steps)", truth, secs, GrainParams.from_dict(r["calibrated"])
    if "few" in which:
        for n in (1, 4, 16):
            truth, secs = reference(2024, n)
            yield f"few: {n} sections from 50 % off", truth, secs, start_params(truth)
    if "equiaxed" in which:
        truth = GrainParams(density_per_um3=1.0, elongation_log_mean=-1.0, elongation_log_sd=0.05, alignment_spread_deg=40.0, weight_spread=0.1)
        for n in (64, 1):
            secs = hard_sections(truth, [3.0] * n, [0.1] * n, seed=5)
            yield f"equiaxed: {n} sections from the generic start", truth, secs, GrainParams.with_mean_elongation(
                3.3, 0.3, density_per_um3=1.0, alignment_spread_deg=22.5, weight_spread=0.1)


def summary() -> None:
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    print("| case | n | start error (dens / elong / align) | estimate error | 90 % intervals (dens; mean elong; align deg; log-sd) | covered | verdict | J p |")
    print("| --- | ---: | --- | --- | --- | --- | --- | ---: |")
    for r in rows:
        e, s, iv, c = r["error"], r["start_error"], r["intervals"], r["covered"]
        pct = lambda d: " / ".join(f"{100 * d[k]:+.0f} %" for k in KEYS[:3])  # noqa: E731
        ivs = "; ".join(f"{iv[k][0]:.3g}-{iv[k][1]:.3g}" for k in KEYS)
        cov = "".join("y" if c[k] else "n" for k in KEYS)
        print(f"| {r['case']} | {r['n_sections']} | {pct(s)} | {pct(e)} | {ivs} | {cov} | {r['verdict']['architecture']} | {r['j_p_value']:.2f} |")
    cover = [r["covered"][k] for r in rows for k in KEYS]
    print(f"\ncoverage over {len(rows)} cases x {len(KEYS)} parameters: {sum(cover)}/{len(cover)} = {sum(cover) / max(len(cover), 1):.0%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=["gan", "few", "equiaxed"])
    ap.add_argument("--n-simulated", type=int, default=256)
    ap.add_argument("--max-gan", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--summary", action="store_true")
    a = ap.parse_args()
    if a.summary:
        summary()
        return
    for label, truth, secs, start in cases(a.cases, a.max_gan):
        row = run_case(label, truth, secs, start, a.n_simulated, a.seed)
        with RESULTS.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(label, {k: f"{v:+.1%}" for k, v in row["error"].items()}, row["covered"], row["verdict"]["architecture"], f"{row['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
