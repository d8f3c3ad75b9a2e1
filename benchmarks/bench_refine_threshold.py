"""The refinement's particle/matrix threshold: today's adaptive rule against the former midpoint (issue 15).

    .venv/bin/python benchmarks/bench_refine_threshold.py [--scratch /tmp/hard_bench] \
        [--out benchmarks/results/refine_threshold.md]

Runs on the scans and stored view maps that ``bench_hard.py`` leaves in its scratch folder (run that
first). Per scan the view maps are fused once (default :class:`FusionParams`); the upsampled labels are
then refined (``refine_labels``, default band and smoothing) with

* the former threshold: midpoint between the median smoothed intensity of the particle interiors and
  the median of the matrix more than 3 voxels away from the labels (the rule until seg-fused-v5);
* today's threshold (:func:`~nmc_assets.segmentation.refine.particle_matrix_threshold`): at least
  halfway to the matrix next to the particles and above its 90th percentile;
* no refinement (nearest upsampling), and the ceiling: the simulator's true labels pushed through the
  refinement with today's threshold (how close an intensity edge can get on these images).

Scored against the truth at full resolution: AP@0.5, mean matched IoU, and the interior volume error
(median |V_pred - V_true| / V_true over matched predictions not touching the scan border, volumes as
voxel counts; ``bench_hard.py`` uses the feature table's volumes, which agree to a few 0.1 %).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine_line, table_header  # noqa: E402

SCANS = ["default_v200nm_s3001", "hard_v200nm_s3001", "default_v70nm_s3002", "hard_v70nm_s3002",
         "default_v70nm_s3003", "hard_v70nm_s3003"]


def former_threshold(labels: np.ndarray, intensity: np.ndarray, sigma: float) -> float:
    """The rule until seg-fused-v5: midpoint of the particle interiors and the matrix > 3 voxels away."""
    from scipy import ndimage as ndi

    from nmc_assets.segmentation.refine import smooth_intensity

    smooth = smooth_intensity(intensity, sigma)
    fg = labels > 0
    inside, outside = ndi.binary_erosion(fg, iterations=2), ~ndi.binary_dilation(fg, iterations=3)
    return float(0.5 * (np.median(smooth[inside]) + np.median(smooth[outside])))


def interior_volume(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(median signed, median absolute) relative volume error of matched interior predictions."""
    from nmc_assets.segmentation.metrics import overlap_table

    pairs = overlap_table(truth, pred)[4]
    hit = pairs[pairs[:, 2] > 0.5]
    faces = [pred[0], pred[-1], pred[:, 0], pred[:, -1], pred[:, :, 0], pred[:, :, -1]]
    border = set(np.unique(np.concatenate([f.ravel() for f in faces])).tolist())
    t_count, p_count = np.bincount(truth.ravel()), np.bincount(pred.ravel())
    err = np.array([(p_count[int(p)] - t_count[int(t)]) / t_count[int(t)] for t, p, _ in hit if int(p) not in border])
    return (float(np.median(err)), float(np.median(np.abs(err)))) if err.size else (float("nan"), float("nan"))


def bench_scan(scratch: Path, sid: str) -> list[dict]:
    import tifffile

    from nmc_assets.segmentation.fusion import fuse
    from nmc_assets.segmentation.metrics import accuracy_summary
    from nmc_assets.segmentation.pipeline import FusionParams, fusion_config_for
    from nmc_assets.segmentation.refine import particle_matrix_threshold, refine_labels, refinement_voxels
    from nmc_assets.segmentation.scaling import upsample_region
    from nmc_assets.segmentation.views import read_fused_maps

    img = tifffile.imread(scratch / f"{sid}.tif")
    truth = tifffile.imread(scratch / f"{sid}.labels.tif")
    prob, dist, attrs = read_fused_maps(scratch / f"{sid}.views.zarr", None)
    params = FusionParams()
    voxel = float(attrs["voxel_size_um"])
    binned = fuse(prob, dist, fusion_config_for(float(attrs["pixel_um"]), params))
    labels = upsample_region(binned, int(attrs["bin_factor"]), tuple(slice(0, s) for s in img.shape))
    band, sigma = refinement_voxels(params.refine_band_um, params.refine_sigma_um, voxel)
    # (name, labels the refinement starts from, threshold; None = no refinement)
    runs = [("no refinement", labels, None),
            ("former threshold", labels, former_threshold(labels, img, sigma)),
            ("today's threshold", labels, particle_matrix_threshold(labels, img, sigma, band)),
            ("ceiling: true labels, today's threshold", truth, particle_matrix_threshold(truth, img, sigma, band))]
    rows = []
    for name, start, threshold in runs:
        t0 = time.perf_counter()
        pred = start if threshold is None else refine_labels(start, img, threshold, band, sigma)
        acc = accuracy_summary(truth, pred)
        bias, err = interior_volume(truth, pred)
        rows.append({"scan": sid, "run": name, "threshold": threshold, "ap50": acc["ap50"], "iou": acc["mean_matched_iou"],
                     "volume_bias": bias, "volume_err": err, "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scratch", default="/tmp/hard_bench")
    ap.add_argument("--out", default=str(RESULTS / "refine_threshold.md"))
    a = ap.parse_args()
    scratch = Path(a.scratch)
    missing = [s for s in SCANS if not (scratch / f"{s}.views.zarr").exists()]
    if missing:
        print(f"run benchmarks/bench_hard.py --scratch {scratch} first: no view maps for {', '.join(missing)}")
        return 2
    rows = [r for sid in SCANS for r in bench_scan(scratch, sid)]
    lines = ["# The refinement threshold: adaptive (today) against the former midpoint (issue 15)", "", machine_line(),
             "Command: `python benchmarks/bench_refine_threshold.py` (scans and view maps of `bench_hard.py`, shipped model). "
             "Same fused labels per scan; only the refinement's threshold differs. Volume error: median over matched interior "
             "particles (signed bias in brackets).", "",
             *table_header("scan", "run", "threshold", "AP@0.5", "mean IoU", "volume err (bias)")]
    for r in rows:
        thr = "" if r["threshold"] is None else f"{r['threshold']:.1f}"
        lines.append(f"| {r['scan']} | {r['run']} | {thr} | {r['ap50']:.3f} | {r['iou']:.3f} | "
                     f"{100 * r['volume_err']:.1f} % ({100 * r['volume_bias']:+.1f} %) |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
