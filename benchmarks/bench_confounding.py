"""Is the elongation log-sd identifiable from 2D sections, separately from the alignment spread?

Hard sections of the packaged reference cut like the pseudo-EBSD sections (R = 3 um, 0.1 um pixels),
on a grid of (elongation log-sd, alignment spread) with the density and the *mean* elongation kept at
their reference values, all with the same seed (common random numbers: every grid point tessellates the
same seeds). Prints, per grid point, the grain radial-angle distribution (mean, quartiles; also for
grains of aspect ratio >= 2 only) and the aspect-ratio quantiles, then the alignment spread that
``quality.equivalent_alignment`` finds for log-sd 0.15 and 0.35 (reference: 15 deg at 0.25).

Run:  .venv/bin/python benchmarks/bench_confounding.py [--sections 500] [--seed 99]
Writes benchmarks/results/confounding.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time

from _common import REPO as ROOT

from _synthesis_common import reference

GRID = [(0.15, 10.0), (0.15, 15.0), (0.15, 20.0), (0.25, 10.0), (0.25, 15.0), (0.25, 20.0), (0.35, 10.0), (0.35, 15.0), (0.35, 20.0)]


def grid_row(ref, log_sd: float, alignment: float, n: int, seed: int) -> dict:
    import numpy as np
    import pandas as pd

    from nmc_assets.synthesis.sections import section_grain_table
    from nmc_assets.particles.grains import GrainParams
    from nmc_assets.particles.sections import hard_sections

    p = GrainParams.with_mean_elongation(ref.mean_elongation, log_sd, density_per_um3=ref.density_per_um3, alignment_spread_deg=alignment,
                                         weight_spread=ref.weight_spread, hard_core_fraction=ref.hard_core_fraction)
    t = pd.concat([section_grain_table(s, i) for i, s in enumerate(hard_sections(p, [3.0] * n, [0.1] * n, seed=seed))]).dropna()
    angle, aspect = t["radial_angle_deg"].to_numpy(), t["aspect_ratio"].to_numpy()
    elongated = angle[aspect >= 2.0]
    return {"elongation_log_sd": log_sd, "alignment_spread_deg": alignment, "n_grains": int(len(t)),
            "radial_angle_mean": float(angle.mean()), "radial_angle_q25": float(np.quantile(angle, 0.25)), "radial_angle_q75": float(np.quantile(angle, 0.75)),
            "radial_angle_mean_aspect_ge_2": float(elongated.mean()),
            "aspect_q10": float(np.quantile(aspect, 0.1)), "aspect_q50": float(np.quantile(aspect, 0.5)), "aspect_q90": float(np.quantile(aspect, 0.9))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sections", type=int, default=500)
    ap.add_argument("--seed", type=int, default=99)
    args = ap.parse_args()
    import torch

    from nmc_assets.synthesis.quality import equivalent_alignment
    from nmc_assets.synthesis.section_geometry import SectionGeometry

    torch.set_num_threads(1)
    ref, _ = reference(n_sections=1)
    t0 = time.perf_counter()
    rows = [grid_row(ref, sd, a, args.sections, args.seed) for sd, a in GRID]
    print("| log-sd | alignment (deg) | mean radial angle | q25 / q75 | mean angle, aspect >= 2 | aspect q10 / q50 / q90 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['elongation_log_sd']:.2f} | {r['alignment_spread_deg']:.0f} | {r['radial_angle_mean']:.2f} | {r['radial_angle_q25']:.2f} / {r['radial_angle_q75']:.2f} "
              f"| {r['radial_angle_mean_aspect_ge_2']:.2f} | {r['aspect_q10']:.3f} / {r['aspect_q50']:.3f} / {r['aspect_q90']:.3f} |")
    equivalence = equivalent_alignment(ref, SectionGeometry(math.log(3.0), 0.0, (0.1,)), [0.15, 0.35], n_sections=128)
    for e in equivalence:
        print(f"equivalent alignment at log-sd {e['elongation_log_sd']:.2f}: {e['alignment_spread_deg']:.2f} deg (reference: {ref.alignment_spread_deg} deg at {ref.elongation_log_sd})")
    out = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(), "sections": args.sections, "seed": args.seed,
           "seconds": time.perf_counter() - t0, "grid": rows, "equivalent_alignment": equivalence}
    (ROOT / "benchmarks" / "results" / "confounding.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
