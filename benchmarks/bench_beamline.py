"""Benchmark of the virtual beamline and of the grain tessellation it uses.

    .venv/bin/python benchmarks/bench_beamline.py [--shape 160 384 384] [--voxel-size 0.2]

1. Grain tessellation of one particle (128^3 box, ~300 grains): the torch matmul formulation used by
   ``nmc_assets.particles.tessellation.hard_labels`` against a plain numpy baseline in the same run (direct
   quadratic form per grain, chunked the same way). Both must give the same labels.
2. One full scan (default 160 x 384 x 384 at 0.2 um): wall time per stage (pack + label, grains + cracks,
   render) and in total, against the 60 s target.
Prints a Markdown report (paste into benchmarks/results/beamline.md).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def numpy_hard_labels(points: np.ndarray, seeds, metrics, weights, chunk: int = 1 << 14) -> np.ndarray:
    """Baseline: d_i(x) = (x - s_i)^T M_i (x - s_i) - w_i evaluated directly with numpy, argmin over i."""
    out = np.empty(len(points), dtype=np.int64)
    s = seeds.astype(np.float32)
    m = metrics.astype(np.float32)
    w = weights.astype(np.float32)
    for a in range(0, len(points), chunk):
        diff = points[a:a + chunk, None, :] - s[None]  # (P, n, 3)
        d = np.einsum("pni,nij,pnj->pn", diff, m, diff, optimize=True) - w
        out[a:a + chunk] = np.argmin(d, axis=1)
    return out


def bench_tessellation() -> dict:
    from nmc_assets.particles import GrainParams, ShellParams, sample_grains, sample_shell
    from nmc_assets.particles.tessellation import hard_labels
    from nmc_assets.particles.shell import shell_mask

    rng = np.random.default_rng(0)
    shell = sample_shell(rng, ShellParams(mean_diameter_um=8.0, size_sigma=0.0))
    grains = sample_grains(rng, GrainParams(density_per_um3=1.0), shell.max_radius_um())
    vs = 2 * shell.max_radius_um() / 127
    t = time.perf_counter()
    inside = shell_mask(shell, (128,) * 3, vs, (63.5,) * 3)
    t_mask = time.perf_counter() - t
    pts = ((np.stack(np.nonzero(inside), axis=1) - 63.5) * vs).astype(np.float32)
    hard_labels(pts[:1000], grains)  # warm up torch
    t = time.perf_counter()
    lab_t = hard_labels(pts, grains)
    t_torch = time.perf_counter() - t
    t = time.perf_counter()
    lab_n = numpy_hard_labels(pts, grains.seeds, grains.metrics, grains.weights)
    t_numpy = time.perf_counter() - t
    return {"grains": len(grains), "points": len(pts), "mask_s": t_mask, "torch_s": t_torch, "numpy_s": t_numpy,
            "agree": float((lab_t == lab_n).mean())}


def bench_scan(shape, voxel_size_um) -> dict:
    from nmc_assets.beamline.simulate import ScanConfig, simulate_scan

    t = time.perf_counter()
    scan = simulate_scan(ScanConfig(shape=tuple(shape), voxel_size_um=voxel_size_um, cycles=50, seed=3))
    total = time.perf_counter() - t
    return {"total_s": total, "stages": scan.timings_s, "n_particles": scan.sidecar["n_particles"],
            "solid_fraction": scan.sidecar["solid_fraction"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", type=int, nargs=3, default=(160, 384, 384))
    ap.add_argument("--voxel-size", type=float, default=0.2)
    a = ap.parse_args()
    tess = bench_tessellation()
    scan = bench_scan(a.shape, a.voxel_size)
    print(f"# Beamline benchmark ({time.strftime('%Y-%m-%d')}, {platform.machine()}, python {platform.python_version()})\n")
    print("## Grain tessellation of one particle (128^3 box)\n")
    print("| grains | voxels inside | shell mask s | torch matmul s | numpy baseline s | speed-up | labels agree |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {tess['grains']} | {tess['points']} | {tess['mask_s']:.2f} | {tess['torch_s']:.2f} | "
          f"{tess['numpy_s']:.2f} | {tess['numpy_s'] / tess['torch_s']:.1f}x | {tess['agree']:.5f} |\n")
    print(f"## One scan {tuple(a.shape)} at {a.voxel_size} um\n")
    print("| stage | s |\n| --- | --- |")
    for k, v in scan["stages"].items():
        print(f"| {k} | {v:.1f} |")
    print(f"\nTotal {scan['total_s']:.1f} s (target < 60 s); {scan['n_particles']} particles; "
          f"solid fraction {scan['solid_fraction']:.3f}.")


if __name__ == "__main__":
    main()
