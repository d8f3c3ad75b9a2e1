"""Contact between touching particles from fused labels against the simulator's truth (issue 15 part 3).

    .venv/bin/python benchmarks/bench_contact.py [--scratch /tmp/contact_bench] [--model DIR] \
        [--out benchmarks/results/contact.md]

Virtual scans with seeds the shipped model never saw (``default`` and ``hard`` presets at 0.2 um, one
``default`` scan at 0.07 um) go through the ``view_probabilities`` + ``fused_labels`` path (shipped model,
default :class:`FusionParams`), then the default feature set twice: the geometric rule of the last
release (every face between two labels is contact, ``contact_window_um = 0``) as the baseline, and
today's rule (a face counts only where the intensity stays at or above the contact level along its
normal, ``contact_window_um = 0.6``). Particles: interior (not touching the scan border) predictions
matched to a true particle at IoU >= 0.5. Reported: mean contact / mean truth, Pearson correlation with
the truth, and the same for the features of the true labels (how much of the error is segmentation).
Targets: mean within 15 % of the truth, correlation >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, machine_line, table_header  # noqa: E402

#: (preset, voxel size um, shape, seed, cycles): seeds unseen by the model (training 1001-1008).
SCANS = [("default", 0.2, (160, 384, 384), 3201, 10), ("default", 0.2, (160, 384, 384), 3202, 50),
         ("hard", 0.2, (160, 384, 384), 3203, 50), ("default", 0.07, (192, 512, 512), 3204, 50)]
RULES = {"geometric (last release)": 0.0, "intensity along the normal (today)": 0.6}


def segment(scratch: Path, preset: str, vs: float, shape, seed: int, cycles: int, model_dir: Path):
    """(scan id, image, truth labels, truth table, fused labels, seconds) of one simulated scan."""
    import pandas as pd
    import tifffile

    from nmc_assets.beamline.defaults import preset_config
    from nmc_assets.beamline.simulate import simulate_scan, write_scan
    from nmc_assets.ingest.readers import intensity_percentiles
    from nmc_assets.segmentation.pipeline import FusionParams, fused_labels, view_probabilities
    from nmc_assets.storage import open_zarr_group, read_zarr

    sid = f"{preset}_v{int(round(vs * 1000))}nm_s{seed}"
    if not (scratch / f"{sid}.tif").exists():
        write_scan(simulate_scan(preset_config(preset, shape=shape, voxel_size_um=vs, cycles=cycles, seed=seed)), scratch, sid)
    img = tifffile.imread(scratch / f"{sid}.tif")
    truth = tifffile.imread(scratch / f"{sid}.labels.tif")
    table = pd.read_parquet(scratch / f"{sid}.truth.parquet")
    vp, fl = scratch / f"{sid}.views.zarr", scratch / f"{sid}.fused.zarr"
    t0 = time.perf_counter()
    params = FusionParams()
    if not vp.exists() or open_zarr_group(vp).attrs.get("model_dir") != str(model_dir):  # view maps are reused per model only
        pct = intensity_percentiles(img)
        view_probabilities(model_dir, img, vs, vp, normalize=(pct["1"], pct["99.8"]))
    fused_labels(vp, fl, params, intensity=img, band_um=params.refine_band_um, sigma_um=params.refine_sigma_um)  # always today's fusion
    return sid, img, truth, table, read_zarr(fl), time.perf_counter() - t0


def interior_matches(truth: np.ndarray, labels: np.ndarray) -> dict[int, int]:
    """Predicted id -> true id for pairs with IoU >= 0.5."""
    from nmc_assets.segmentation.metrics import overlap_table

    _, _, _, _, pairs = overlap_table(truth, labels)
    hit = pairs[pairs[:, 2] >= 0.5]
    return dict(zip(hit[:, 1].astype(int).tolist(), hit[:, 0].astype(int).tolist()))


def contact_scores(features, table, to_truth: dict[int, int]) -> dict:
    """Mean ratio and correlation of ``features.contact`` against the truth over matched interior particles."""
    f = features[~features.touches_border.astype(bool) & features.particle_id.isin(to_truth)]
    truth = table.set_index("particle_id").contact.loc[[to_truth[int(p)] for p in f.particle_id]].to_numpy()
    got = f.contact.to_numpy()
    return {"n": int(len(got)), "truth_mean": float(truth.mean()), "mean_ratio": float(got.mean() / truth.mean()),
            "corr": float(np.corrcoef(got, truth)[0, 1])}


def bench(scratch: Path, model_dir: Path) -> list[dict]:
    from nmc_assets.features import FeatureSettings, compute_particle_features

    rows = []
    for preset, vs, shape, seed, cycles in SCANS:
        sid, img, truth, table, labels, seg_s = segment(scratch, preset, vs, shape, seed, cycles, model_dir)
        fused = interior_matches(truth, labels)
        exact = {int(i): int(i) for i in np.unique(truth) if i}
        for rule, window in RULES.items():
            settings = FeatureSettings(contact_window_um=window)
            t0 = time.perf_counter()
            feats = compute_particle_features(labels, img, vs, scan_id=sid, cycles=cycles, settings=settings)
            seconds = time.perf_counter() - t0
            on_truth = compute_particle_features(truth, img, vs, scan_id=sid, cycles=cycles, settings=settings)
            rows.append({"scan": sid, "preset": preset, "voxel_um": vs, "rule": rule, "window_um": window,
                         "fused": contact_scores(feats, table, fused), "truth_labels": contact_scores(on_truth, table, exact),
                         "features_s": round(seconds, 1), "segmentation_s": round(seg_s, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def write_markdown(path: Path, rows: list[dict], command: str) -> None:
    lines = ["# Contact from fused labels vs the simulator's truth (issue 15 part 3)", "", machine_line(), "",
             f"Command: `{command}`. Interior particles matched at IoU >= 0.5; targets: mean ratio 0.85-1.15, "
             "correlation >= 0.95.", "",
             *table_header("scan", "rule", "particles", "truth mean", "fused: mean ratio", "fused: corr",
                           "truth labels: mean ratio", "truth labels: corr", "features s")]
    for r in rows:
        f, t = r["fused"], r["truth_labels"]
        lines.append(f"| {r['scan']} | {r['rule']} | {f['n']} | {f['truth_mean']:.3f} | {f['mean_ratio']:.2f} | "
                     f"{f['corr']:.3f} | {t['mean_ratio']:.2f} | {t['corr']:.3f} | {r['features_s']} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scratch", default="/tmp/contact_bench")
    ap.add_argument("--model", default=str(REPO / "data" / "models" / "stardist" / "nmc_default"))
    ap.add_argument("--out", default=str(RESULTS / "contact.md"))
    a = ap.parse_args()
    scratch = Path(a.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    rows = bench(scratch, Path(a.model))
    write_markdown(Path(a.out), rows, "python " + " ".join(sys.argv))
    (scratch / "contact.json").write_text(json.dumps(rows, indent=1))
    print(Path(a.out).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
