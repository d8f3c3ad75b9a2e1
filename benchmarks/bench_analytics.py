"""Benchmark of the damage regression: the study's default vs a squared-error baseline, same repeats.

Data: the demo's particle features when ``$NMC_DATA_DIR`` has them (``--demo``), else a synthetic
table with the virtual-beamline-like law (``--n`` particles per condition, two conditions).
Prints a Markdown table; ``--out`` also writes it.

    .venv/bin/python benchmarks/bench_analytics.py [--demo] [--n 600] [--out benchmarks/results/analytics.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path

import numpy as np


def _time_fit(frame, config):
    from nmc_assets.analytics.damage_model import drivers_table, fit_damage_models

    t0 = time.perf_counter()
    results = fit_damage_models(frame, config)
    seconds = time.perf_counter() - t0
    return seconds, results, drivers_table(results)


def _treeshap_ms_per_row(results) -> float:
    import shap

    cond = next(iter(results.conditions.values()))
    X = cond.data[cond.attributes].to_numpy(float)
    explainer = shap.TreeExplainer(cond.reference_model)
    t0 = time.perf_counter()
    explainer.shap_values(X, check_additivity=False)
    return 1000 * (time.perf_counter() - t0) / len(X)


def _virtual_features():
    import pandas as pd

    from nmc_assets.beamline.simulate import ScanConfig, simulate_scan
    from nmc_assets.features.extract import compute_particle_features

    frames = []
    for cycles, seed in ((10, 11), (50, 12)):
        scan = simulate_scan(ScanConfig(shape=(112, 224, 224), voxel_size_um=0.35, cycles=cycles, seed=seed))
        frames.append(compute_particle_features(scan.labels, scan.image.astype(np.float32), 0.35,
                                                scan_id=f"virtual-{cycles}", cycles=cycles))
    return pd.concat(frames, ignore_index=True)


def main() -> int:
    from nmc_assets.analytics.damage_model import DamageModelConfig
    from nmc_assets.analytics.store import read_features
    from nmc_assets.analytics.synthetic import synthetic_features
    from nmc_assets.paths import DataLayout

    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", action="store_true", help="use the demo's particle_features under $NMC_DATA_DIR")
    ap.add_argument("--virtual", action="store_true",
                    help="simulate two virtual scans (10, 50 cycles; the validation test's geometry) and use "
                         "features from their ground-truth labels; also checks the law-recovery rule")
    ap.add_argument("--n", type=int, default=600, help="synthetic particles per condition")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    if args.demo:
        layout = DataLayout.from_env()
        frame = read_features(layout.particle_features_glob)
        source = f"demo particle_features ({layout.particle_features_glob})"
    elif args.virtual:
        frame = _virtual_features()
        source = "two virtual scans 112x224x224 at 0.35 um (10 and 50 cycles), features from truth labels"
    else:
        frame = synthetic_features(n_per_condition=args.n, seed=0)
        source = f"synthetic table, {args.n} particles x 2 conditions (nmc_assets.analytics.synthetic)"

    study = DamageModelConfig()
    baseline = dataclasses.replace(study, criterion="squared_error")
    t_study, res_study, table_study = _time_fit(frame, study)
    t_base, res_base, _ = _time_fit(frame, baseline)
    shap_ms = _treeshap_ms_per_row(res_study)

    lines = [
        "# Analytics benchmark (damage_model core)",
        "",
        "Date 2026-11-21, machine: 2-core x86-64 CPU, 24 GiB, no GPU (shared with other jobs; +-2x).",
        f"Python {platform.python_version()}. Data: {source}; {len(frame)} rows.",
        "",
        "| run | conditions | repeats per condition | wall time s | ratio to baseline |",
        "| --- | --- | --- | --- | --- |",
        f"| study default (40 trees, absolute_error, 10 seeds x 10 subsamples, 5-fold OOF, TreeSHAP) | "
        f"{', '.join(res_study.conditions)} | {study.n_seeds * study.n_subsamples} | {t_study:.1f} | {t_study / t_base:.2f} |",
        f"| baseline: same with criterion=squared_error | {', '.join(res_base.conditions)} | "
        f"{baseline.n_seeds * baseline.n_subsamples} | {t_base:.1f} | 1.00 |",
        "",
        f"TreeSHAP on the 40-tree reference forest: {shap_ms:.3f} ms per particle.",
        "",
        "Per condition (study default): particles, R2 OOF mean +- std, MAE OOF, seconds, top 5 by mean |SHAP|",
        "",
        "| condition | particles | R2 OOF | MAE OOF | s | top 5 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, cond in res_study.conditions.items():
        s = cond.scores()
        top = table_study[table_study["condition"] == label].head(5)["attribute"].tolist()
        lines.append(
            f"| {label} | {cond.n_particles} | {s['r2_oof_mean']:.3f} +- {s['r2_oof_std']:.3f} | "
            f"{s['mae_oof_mean']:.4f} | {cond.seconds:.1f} | {', '.join(top)} |"
        )
    from nmc_assets.analytics.validation import law_recovery_report

    report = law_recovery_report(table_study)
    lines += ["", f"Law-recovery rule (nmc_assets.analytics.validation) on this ranking: passed={report['passed']}"]
    for c, r in report["conditions"].items():
        lines.append(f"- {c}: driver group ranks {r['group_ranks']}, best unrelated rank {r['best_unrelated_rank']}"
                     + (f", failures {r['failures']}" if r["failures"] else ""))
    for name, reason in res_study.skipped.items():
        lines.append(f"\nskipped {name}: {reason}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    assert np.isfinite(t_study)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
