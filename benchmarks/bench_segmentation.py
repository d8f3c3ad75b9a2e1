"""Segmentation benchmark: accuracy on unseen virtual scans, view fusion vs single views vs baselines,
throughput of the full path, and peak memory on a 512x1024x1024 scan.

    .venv/bin/python benchmarks/bench_segmentation.py [--scratch /tmp/seg_bench] [--large] \
        [--out benchmarks/results/segmentation.md]

Test scans come from the beamline simulator with seeds and cycle counts the default model never saw
(training used seeds 1001-1030 at 10/50 cycles). Every method works on the same binned volume
(0.4 um working pixels) and is scored at full resolution against the simulator's filled labels:
AP = tp / (tp + fp + fn) at IoU 0.5 / 0.75, precision, recall, mean matched IoU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TEST_SCANS = [(2001, 25), (2002, 100)]  # (seed, cycles): neither seen in training
SHAPE = (160, 384, 384)
VOXEL_UM = 0.2


def simulate_test_scans(scratch: Path) -> list[str]:
    from nmc_assets.beamline.simulate import ScanConfig, simulate_scan, write_scan

    ids = []
    for seed, cycles in TEST_SCANS:
        sid = f"test_s{seed}_c{cycles}"
        if not (scratch / f"{sid}.tif").exists():
            write_scan(simulate_scan(ScanConfig(shape=SHAPE, voxel_size_um=VOXEL_UM, cycles=cycles, seed=seed)), scratch, sid)
        ids.append(sid)
    return ids


def upsample(labels: np.ndarray, factor: int, shape) -> np.ndarray:
    from nmc_assets.segmentation.scaling import upsample_labels_slabs

    return np.concatenate([b for _, b in upsample_labels_slabs(labels, factor, tuple(shape), slab=64)])


def bench_scan(scratch: Path, sid: str, model_dir: Path) -> dict:
    import tifffile

    from nmc_assets.segmentation.classical import otsu_watershed
    from nmc_assets.segmentation.fusion import fuse
    from nmc_assets.segmentation.metrics import accuracy_summary
    from nmc_assets.segmentation.pipeline import FusionParams, fused_labels, fusion_config_for, prepare_volume, view_probabilities
    from nmc_assets.segmentation.views import read_fused_maps

    img = tifffile.imread(scratch / f"{sid}.tif").astype(np.float32)
    truth = tifffile.imread(scratch / f"{sid}.labels.tif")
    lo, hi = np.percentile(img[::4], [1, 99.8])
    out = {"scan": sid, "shape": list(img.shape), "n_true": int(len(np.unique(truth)) - 1)}
    vp, fl = scratch / f"{sid}.views.zarr", scratch / f"{sid}.fused.zarr"
    view_probabilities(model_dir, img, VOXEL_UM, scratch / "warmup.zarr", normalize=(lo, hi))  # load model / TF graph once
    t0 = time.perf_counter()
    info = view_probabilities(model_dir, img, VOXEL_UM, vp, normalize=(lo, hi))
    t1 = time.perf_counter()
    labels_b, finfo = fused_labels(vp, fl, FusionParams())
    t2 = time.perf_counter()
    from nmc_assets.storage import read_zarr

    fused_full = read_zarr(fl)
    out["timing_s"] = {"views": round(t1 - t0, 2), "fusion_and_write": round(t2 - t1, 2), "total": round(t2 - t0, 2)}
    out["voxels_per_s"] = float(np.prod(img.shape) / (t2 - t0))
    out["bin_factor"] = info["bin_factor"]
    res = {"fused_watershed (3 views)": accuracy_summary(truth, fused_full)}
    t3 = time.perf_counter()
    fused_labels(vp, scratch / f"{sid}.refined.zarr", FusionParams(), intensity=img)
    out["refine_s"] = round(time.perf_counter() - t3 - (t2 - t1), 2)  # fusion + refinement, less the fusion alone
    res["fused + boundary refinement (default)"] = accuracy_summary(truth, read_zarr(scratch / f"{sid}.refined.zarr"))
    prob, dist, attrs = read_fused_maps(vp)
    px = float(attrs["pixel_um"])
    f = info["bin_factor"]
    res["kmeans recipe (Li 2022, 3 views)"] = accuracy_summary(truth, upsample(fuse(prob, dist, fusion_config_for(px, FusionParams(method="kmeans"))), f, img.shape))
    for v in ("xy", "xz", "yz"):
        p1, d1, _ = read_fused_maps(vp, (v,))
        res[f"single view {v} (watershed)"] = accuracy_summary(truth, upsample(fuse(p1, d1, fusion_config_for(px)), f, img.shape))
    t3 = time.perf_counter()
    vol, _ = prepare_volume(img, VOXEL_UM, px, (lo, hi))
    cfg = fusion_config_for(px)
    classical = otsu_watershed(vol, smooth_sigma=cfg.smooth_sigma, h=cfg.h, min_radius=cfg.min_radius, min_size=cfg.min_size)
    out["classical_seconds"] = round(time.perf_counter() - t3, 2)
    res["classical Otsu + EDT watershed"] = accuracy_summary(truth, upsample(classical, f, img.shape))
    out["results"] = res
    return out


LARGE_CHILD = r"""
import sys, time, resource, json
sys.path.insert(0, {repo!r})
from nmc_assets.storage import open_zarr
from nmc_assets.segmentation.pipeline import view_probabilities, fused_labels, FusionParams
src = open_zarr({src!r})
t0 = time.perf_counter()
info = view_probabilities({model!r}, src, 0.2, {vp!r}, normalize=(0.0, 255.0))
t1 = time.perf_counter()
_, finfo = fused_labels({vp!r}, {fl!r}, FusionParams(), intensity={src!r})
t2 = time.perf_counter()
print(json.dumps({{"views_s": t1 - t0, "fusion_s": t2 - t1, "n_particles": finfo["n_particles"],
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}}))
"""


def bench_large(scratch: Path, sid: str, model_dir: Path, shape=(512, 1024, 1024)) -> dict:
    """Tile a test scan (mirrored) to ``shape`` in a float32 Zarr, run the full path in a child, report peak RSS."""
    import tifffile
    import zarr

    src = scratch / "large_src.zarr"
    if not src.exists():
        img = tifffile.imread(scratch / f"{sid}.tif")
        z = zarr.create_array(store=str(src), shape=shape, dtype="float32", chunks=(64, 256, 256), zarr_format=3)
        reps = [-(-s // t) for s, t in zip(shape, img.shape)]
        tile = img
        for ax, r in enumerate(reps):
            tile = np.concatenate([tile if i % 2 == 0 else np.flip(tile, ax) for i in range(r)], axis=ax)
        for z0 in range(0, shape[0], 64):
            z[z0 : z0 + 64] = tile[z0 : z0 + 64, : shape[1], : shape[2]].astype(np.float32)
        del tile, img
    code = LARGE_CHILD.format(repo=str(REPO), src=str(src), model=str(model_dir), vp=str(scratch / "large.views.zarr"), fl=str(scratch / "large.fused.zarr"))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr[-3000:])
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.perf_counter() - t0
    res["shape"] = list(shape)
    res["voxels_per_s"] = float(np.prod(shape) / (res["views_s"] + res["fusion_s"]))
    return res


def write_markdown(path: Path, scans: list[dict], large: dict | None, model_meta: dict) -> None:
    lines = [
        "# Segmentation benchmark",
        "",
        f"Date {time.strftime('%Y-%m-%d')}, machine: 2-core x86-64 CPU, 24 GiB, no GPU (shared with other jobs; timings +-2x).",
        f"Command: `.venv/bin/python benchmarks/bench_segmentation.py{' --large' if large else ''}`.",
        "",
        f"Model: shipped default `{model_meta['name']}` ({model_meta['n_params']} parameters, working pixel {model_meta['working_pixel_um']} um, "
        f"2D validation AP@0.5 {model_meta['val_ap50']:.3f}). Test scans: virtual, {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} at {VOXEL_UM} um, "
        f"seeds/cycles {TEST_SCANS} (training used seeds 1001-1030 at 10/50 cycles). 3D metrics at full resolution against the simulator's filled labels; "
        "AP = tp / (tp + fp + fn).",
        "",
    ]
    for s in scans:
        lines += [f"## {s['scan']} ({s['n_true']} true particles, bin factor {s['bin_factor']})", "",
                  "| method | AP@0.5 | AP@0.75 | precision@0.5 | recall@0.5 | mean matched IoU | n predicted |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, m in s["results"].items():
            lines.append(f"| {name} | {m['ap50']:.3f} | {m['ap75']:.3f} | {m['precision50']:.3f} | {m['recall50']:.3f} | {m['mean_matched_iou']:.3f} | {m['n_pred']} |")
        fused = s["results"]["fused + boundary refinement (default)"]["ap50"]
        best_single = max(v["ap50"] for k, v in s["results"].items() if k.startswith("single"))
        classical = s["results"]["classical Otsu + EDT watershed"]["ap50"]
        kmeans = s["results"]["kmeans recipe (Li 2022, 3 views)"]["ap50"]
        t = s["timing_s"]
        lines += ["", f"Fused + refinement AP@0.5 {fused:.3f}: {fused - best_single:+.3f} vs the best single view, {fused - classical:+.3f} vs the classical baseline, "
                  f"{fused - kmeans:+.3f} vs the k-means recipe.",
                  f"Full path (3 views + fusion + full-resolution write): {t['total']:.1f} s = views {t['views']:.1f} s + fusion {t['fusion_and_write']:.1f} s "
                  f"-> **{s['voxels_per_s'] / 1e6:.2f} M voxels/s**; boundary refinement {s['refine_s']:.1f} s more; classical baseline {s['classical_seconds']:.1f} s.", ""]
    if large:
        lines += ["## 512 x 1024 x 1024 scan (memory)", "",
                  "A test scan mirrored-tiled to 512x1024x1024 float32 in a Zarr (2 GiB on disk, read lazily like a stored tomogram); "
                  "the full path runs in a child process and its peak RSS (`ru_maxrss`) is reported.", "",
                  f"- peak RSS **{large['peak_rss_gib']:.2f} GiB** (limit 24 GiB)",
                  f"- views {large['views_s']:.0f} s, fusion + write {large['fusion_s']:.0f} s ({large['voxels_per_s'] / 1e6:.2f} M voxels/s), {large['n_particles']} particles", ""]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    from nmc_assets.segmentation.model import DEFAULT_MODEL_NAME, read_model_meta, shipped_model_dir

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scratch", default="/tmp/seg_bench")
    ap.add_argument("--model", default=str(shipped_model_dir(DEFAULT_MODEL_NAME)))
    ap.add_argument("--large", action="store_true", help="also run the 512x1024x1024 memory test (~5-10 min)")
    ap.add_argument("--only-large", action="store_true", help="run only the memory test; reuse the accuracy results of the last run")
    ap.add_argument("--keep-large", action="store_true", help="keep the memory-test result of the last run")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "segmentation.md"))
    a = ap.parse_args()
    scratch = Path(a.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    ids = simulate_test_scans(scratch)
    previous = json.loads((scratch / "results.json").read_text()) if (scratch / "results.json").exists() else {}
    if a.only_large:
        scans = previous["scans"]
    else:
        scans = []
        for sid in ids:
            r = bench_scan(scratch, sid, Path(a.model))
            print(json.dumps(r, default=float), flush=True)
            scans.append(r)
    large = bench_large(scratch, ids[0], Path(a.model)) if (a.large or a.only_large) else previous.get("large") if a.keep_large else None
    if large:
        print(json.dumps(large), flush=True)
    (scratch / "results.json").write_text(json.dumps({"scans": scans, "large": large}, default=float, indent=1))
    write_markdown(Path(a.out), scans, large, read_model_meta(a.model))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
