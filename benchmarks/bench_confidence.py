"""Segmentation confidence benchmark: does the label-free confidence rank the wrong particles first?

    .venv/bin/python benchmarks/bench_confidence.py [--scratch /tmp/conf_bench] [--fit] \
        [--out benchmarks/results/confidence.md]

Virtual scans (``_confidence_scans.py``: simulator, shipped default model, today's fusion with boundary
refinement). Each fused particle is matched to the truth: its best IoU with any true particle; IoU < 0.5
= wrong. Score: ROC AUC of (1 - confidence) for finding the wrong ones (sklearn ``roc_auc_score``), for
the combined ``segmentation_confidence`` and each sub-score, on the EVAL scans only. ``--fit`` fits the
combination weights by logistic regression on the FIT scans (disjoint seeds) and prints them for
``nmc_assets/segmentation/confidence.py``; the evaluation always uses the weights stored there.
Baseline (today's pipeline has no confidence): the mean fused probability inside the particle.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _common import REPO, RESULTS, machine_line
from _confidence_scans import EVAL, EVAL_HARD, FIT, VOXEL_UM, prepare, scan_id

sys.path.insert(0, str(REPO))


def particle_table(scratch: Path, sid: str) -> tuple[pd.DataFrame, dict]:
    """Per fused particle: the confidence columns, the baseline, best IoU with the truth, wrong flag."""
    import tifffile

    from nmc_assets.features import compute_particle_features
    from nmc_assets.segmentation.confidence import confidence_columns, view_scores
    from nmc_assets.segmentation.metrics import overlap_table
    from nmc_assets.storage import read_zarr

    img = tifffile.imread(scratch / f"{sid}.tif").astype(np.float32)
    truth = tifffile.imread(scratch / f"{sid}.labels.tif")
    fl, vp = scratch / f"{sid}.fused.zarr", scratch / f"{sid}.views.zarr"
    pred = read_zarr(fl)
    t0 = time.perf_counter()
    feats = compute_particle_features(pred, img, VOXEL_UM, scan_id=sid, cycles=None)
    t1 = time.perf_counter()
    scores = view_scores(fl, vp, VOXEL_UM)
    t2 = time.perf_counter()
    conf = confidence_columns(feats, scores)
    _, _, p_ids, _, pairs = overlap_table(truth, pred)
    best = pd.Series(0.0, index=pd.Index(p_ids.astype(np.int64)))
    if len(pairs):
        b = pd.DataFrame(pairs, columns=["t", "p", "iou"]).groupby("p")["iou"].max()
        best.loc[b.index.astype(np.int64)] = b.to_numpy()
    df = pd.concat([feats[["particle_id", "x_um", "y_um", "z_um", "volume_um3", "sphericity", "touches_border"]], conf], axis=1)
    df["mean_probability"] = scores.loc[df["particle_id"], "mean_probability"].to_numpy()
    df["best_iou"] = best.loc[df["particle_id"]].to_numpy()
    df["wrong"] = df["best_iou"] < 0.5
    df["scan"] = sid
    return df, {"features_s": t1 - t0, "confidence_s": t2 - t1, "voxels": int(pred.size)}


def auc_rows(df: pd.DataFrame) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    from nmc_assets.segmentation.confidence import CONFIDENCE_COLUMNS

    y = df["wrong"].to_numpy()
    if y.all() or not y.any():
        return {}
    cols = ["segmentation_confidence", *[c for c in CONFIDENCE_COLUMNS if c != "segmentation_confidence"], "mean_probability"]
    out = {c: float(roc_auc_score(y, 1.0 - df[c].to_numpy())) for c in cols}
    out["volume (small first)"] = float(roc_auc_score(y, -df["volume_um3"].to_numpy()))
    return out


def bootstrap_ci(df: pd.DataFrame, column: str = "segmentation_confidence", n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of the AUC over particles resampled with replacement (few wrong particles: wide)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    y, s = df["wrong"].to_numpy(), 1.0 - df[column].to_numpy()
    aucs = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(i):
            aucs.append(roc_auc_score(y[i], s[i]))
    return tuple(np.percentile(aucs, [2.5, 97.5]))


def fit_weights(df: pd.DataFrame) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    from nmc_assets.segmentation.confidence import design_matrix

    lr = LogisticRegression(C=1.0, max_iter=1000).fit(design_matrix(df), ~df["wrong"].to_numpy())
    return np.concatenate([lr.intercept_, lr.coef_[0]])


def _gallery(scratch: Path, sid: str, table: pd.DataFrame) -> None:
    """The check's gallery of the scan's 8 least confident particles, to look at (not committed)."""
    import tifffile

    from nmc_assets.segmentation.confidence_check import gallery_caption, gallery_png, least_confident
    from nmc_assets.storage import open_zarr

    rows = least_confident(table, 8)
    png = gallery_png(tifffile.imread(scratch / f"{sid}.tif"), open_zarr(scratch / f"{sid}.fused.zarr"), rows, VOXEL_UM)
    (scratch / f"{sid}.gallery.png").write_bytes(png)
    print(gallery_caption(rows))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scratch", default="/tmp/conf_bench")
    ap.add_argument("--fit", action="store_true", help="fit and print the weights on the FIT scans")
    ap.add_argument("--out", default=str(RESULTS / "confidence.md"))
    a = ap.parse_args()
    scratch = Path(a.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    tables, timing = {}, {}
    for seed, cycles in (FIT if a.fit else []) + EVAL + EVAL_HARD:
        sid = prepare(scratch, seed, cycles)
        tables[sid], timing[sid] = particle_table(scratch, sid)
        print(sid, len(tables[sid]), "particles,", int(tables[sid]["wrong"].sum()), "wrong", auc_rows(tables[sid]), flush=True)
    if a.fit:
        fit = pd.concat([tables[scan_id(*s)] for s in FIT])
        w = fit_weights(fit)
        print("fitted weights (intercept, " + ", ".join(("view", "margin", "size", "shape")) + "):",
              "(" + ", ".join(f"{x:.4f}" for x in w) + ")", f"on {len(fit)} particles, {int(fit['wrong'].sum())} wrong")
    ev = pd.concat([tables[scan_id(*s)] for s in EVAL])
    hard = pd.concat([tables[scan_id(*s)] for s in EVAL_HARD])
    pd.concat([ev, hard]).to_parquet(scratch / "confidence_eval.parquet")  # for a closer look; not committed
    lines = ["# Segmentation confidence: ROC AUC for finding wrong particles (IoU < 0.5)", "", machine_line(), ""]
    from nmc_assets.segmentation.confidence import WEIGHTS, WEIGHTS_PROVENANCE

    lines += [f"Weights {tuple(round(w, 4) for w in WEIGHTS)} ({WEIGHTS_PROVENANCE}).", "",
              "| scans | particles | wrong | " + " | ".join(auc_rows(ev)) + " |",
              "| --- | --- | --- |" + " --- |" * len(auc_rows(ev))]

    def row(name, d):
        r = auc_rows(d)
        return f"| {name} | {len(d)} | {int(d['wrong'].sum())} | " + " | ".join(f"{v:.3f}" for v in r.values()) + " |"

    for seed, cycles in EVAL + EVAL_HARD:
        lines.append(row(scan_id(seed, cycles), tables[scan_id(seed, cycles)]))
    lines.append(row("**EVAL (default render)**", ev))
    lines.append(row("**EVAL hard (3x noise, wider PSF)**", hard))
    both = pd.concat([ev, hard])
    lines.append(row("**all evaluation scans**", both))
    lines.append(row("all, particles touching the volume boundary", both[both["touches_border"]]))
    lines.append(row("all, interior particles", both[~both["touches_border"]]))
    lo, hi = bootstrap_ci(both)
    lines += ["", f"segmentation_confidence, all evaluation scans: 95 % bootstrap interval of the AUC {lo:.3f}-{hi:.3f} "
              f"(particles resampled; only {int(both['wrong'].sum())} wrong particles).",
              f"Wrong particles touching the volume boundary: {int((both['wrong'] & both['touches_border']).sum())} "
              f"of {int(both['wrong'].sum())}; best IoU of the wrong ones: median {both.loc[both['wrong'], 'best_iou'].median():.2f}.",
              "", "Baselines (today's pipeline has no confidence): `mean_probability`, the mean fused view probability "
              "inside the particle; `volume (small first)`, the particle's volume.", "",
              "| scan | share below 0.5 | share below 0.8 | share wrong |", "| --- | --- | --- | --- |",
              *[f"| {sid} | {(t['segmentation_confidence'] < 0.5).mean():.3f} | {(t['segmentation_confidence'] < 0.8).mean():.3f} "
                f"| {t['wrong'].mean():.3f} |" for sid, t in tables.items()], "",
              "| scan | voxels | features s | confidence s | ratio |", "| --- | --- | --- | --- | --- |"]
    for sid, t in timing.items():
        lines.append(f"| {sid} | {t['voxels']} | {t['features_s']:.1f} | {t['confidence_s']:.1f} | "
                     f"{t['confidence_s'] / t['features_s']:.2f} |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    _gallery(scratch, scan_id(*EVAL_HARD[0]), tables[scan_id(*EVAL_HARD[0])])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
