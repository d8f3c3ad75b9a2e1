"""Damage drivers (RF + mean |SHAP|) with the default feature set beside the ``li2022`` set.

Two virtual scans (10 and 50 cycles, the beamline simulator), features of both sets from the ground-truth
labels and the rendered image (the same solid threshold), the damage model
(:func:`~nmc_assets.analytics.damage_model.fit_damage_models`, the study's forest) per set, and the
rankings side by side per condition, with each attribute's rank change and, for li2022, the direction
of its relation to damage (Spearman rho), so a sign flip shows. Writes
``benchmarks/results/li2022_drivers.md`` (``--demo``: the demo's two default scans,
``nmc_assets.beamline.defaults.DEFAULT_SCANS``, into ``li2022_drivers_demo.md``).

    .venv/bin/python benchmarks/li2022_drivers.py [--shape 112 224 224] [--voxel 0.35] [--seeds 4] [--demo]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from _common import RESULTS, machine_line

SCANS = {10: 11, 50: 12}  # cycles -> simulator seed (as nmc_assets_tests/analytics/test_validation_virtual.py)


def features(configs):
    from nmc_assets.beamline.simulate import simulate_scan
    from nmc_assets.features import FeatureSettings, compute_particle_features, estimate_solid_threshold

    out = {"default": [], "li2022": []}
    for config in configs:
        scan = simulate_scan(config)
        cycles, voxel = config.cycles, config.voxel_size_um
        image = scan.image.astype(np.float32)
        thr = estimate_solid_threshold(scan.labels, image)
        for name in out:
            out[name].append(compute_particle_features(scan.labels, image, voxel, scan_id=f"virtual-{cycles}",
                                                       cycles=cycles, solid_threshold=thr,
                                                       settings=FeatureSettings(feature_set=name)))
    return {name: pd.concat(frames, ignore_index=True) for name, frames in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[112, 224, 224])
    ap.add_argument("--voxel", type=float, default=0.35)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--demo", action="store_true", help="the demo's default scans instead of --shape/--voxel")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from nmc_assets.analytics.damage_model import DamageModelConfig, drivers_table, fit_damage_models
    from nmc_assets.beamline.defaults import DEFAULT_SCANS
    from nmc_assets.beamline.simulate import ScanConfig

    if args.demo:
        configs = list(DEFAULT_SCANS.values())
        what = "The demo's two default scans (" + ", ".join(
            f"{k}: {c.shape} at {c.voxel_size_um} um, {c.cycles} cycles, seed {c.seed}" for k, c in DEFAULT_SCANS.items()) + ")"
    else:
        configs = [ScanConfig(shape=tuple(args.shape), voxel_size_um=args.voxel, cycles=c, seed=s) for c, s in SCANS.items()]
        what = (f"Two virtual scans {tuple(args.shape)} at {args.voxel} um (10 and 50 cycles, simulator seeds "
                f"{list(SCANS.values())})")
    out = args.out or str(RESULTS / ("li2022_drivers_demo.md" if args.demo else "li2022_drivers.md"))

    header = machine_line()
    tables = features(configs)
    ranks = {}
    scores = {}
    for name, df in tables.items():
        res = fit_damage_models(df, DamageModelConfig(n_seeds=args.seeds, n_subsamples=1))
        t = drivers_table(res)
        ranks[name] = t
        scores[name] = t.groupby("condition")[["r2_oof_mean", "n_particles"]].first()
    lines = ["# Damage drivers: default feature set beside the li2022 set", "", header, "",
             f"{what}, ground-truth labels, one solid threshold per scan for both sets; "
             f"damage model with {args.seeds} seeds x 1 subsample, default exclusions (leaky attributes). "
             "Damage itself differs between the sets (the target is each set's own `damage`).", ""]
    for cond in ("10", "50"):
        d = ranks["default"].query("condition == @cond").set_index("attribute")
        s = ranks["li2022"].query("condition == @cond").set_index("attribute")
        li = tables["li2022"].query("cycles == @cond_int", local_dict={"cond_int": int(cond)})
        lines += [f"## {cond} cycles", "",
                  f"R^2 out of fold: default {scores['default'].loc[cond, 'r2_oof_mean']:.3f} "
                  f"({int(scores['default'].loc[cond, 'n_particles'])} particles), li2022 "
                  f"{scores['li2022'].loc[cond, 'r2_oof_mean']:.3f} ({int(scores['li2022'].loc[cond, 'n_particles'])}).", "",
                  "| attribute | rank default | mean abs SHAP default | rank li2022 | mean abs SHAP li2022 | rank change | "
                  "rho(li2022 value, li2022 damage) |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for attr in d.sort_values("rank").index:
            rank_d = int(d.loc[attr, "rank"])
            rs = s.loc[attr, "rank"] if attr in s.index else np.nan
            rank_s = "" if np.isnan(rs) else str(int(rs))
            change = "" if np.isnan(rs) else f"{int(rs) - rank_d:+d}"
            shap_s = s.loc[attr, "mean_abs_shap"] if attr in s.index else np.nan
            rho = li[[attr, "damage"]].corr(method="spearman").iloc[0, 1] if attr in li else np.nan
            lines.append(f"| {attr} | {rank_d} | {d.loc[attr, 'mean_abs_shap']:.4f} | {rank_s} | {shap_s:.4f} | "
                         f"{change} | {rho:+.2f} |")
        lines.append("")
    text = "\n".join(lines) + "\n"
    with open(out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
