"""Real-size benchmark: one 492 x 1324 x 1985 uint8 scan at 0.07 um through the four per-scan assets.

    .venv/bin/python benchmarks/bench_real_size.py [--scratch /tmp/nmc_real] [--shape 492 1324 1985]
        [--baseline-repo DIR] [--scaling] [--out benchmarks/results/real_size.md]

The scan is simulated once at 0.07 um (a third of the size per axis) and mirror-tiled 3 x 3 x 3 to the
study's size (1.29 G voxels, uint8 TIFF), like the measurement in issue 14. Each asset
(``raw_tomogram``, ``view_probabilities``, ``fused_labels``, ``particle_features``) runs in its own
process with ``dagster asset materialize`` against a fresh instance, in process (``NMC_EXECUTOR=in_process``),
so wall time and the peak RSS (``/usr/bin/time -v``) are those of the step itself, blocks included.

``--baseline-repo DIR``: a checkout of the code before the blockwise path (e.g. ``git worktree add
/tmp/nmc_base c09933e``) run on the same scan in the same session, with the same venv.
``--scaling``: ``fused_labels`` and ``particle_features`` again with their blocks on a
``distributed.LocalCluster`` of 1 and of 2 single-threaded worker processes (``NMC_DASK_SCHEDULER``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import REPO, machine_line

STEPS = ("raw_tomogram", "view_probabilities", "fused_labels", "particle_features")
SCAN = "real"
VOXEL_UM = 0.07


def build_scan(scratch: Path, shape: tuple[int, int, int], seed: int = 14) -> Path:
    """Simulate a third-size scan at 0.07 um and mirror-tile it to ``shape`` (uint8 TIFF + sidecar)."""
    import tifffile

    from nmc_assets.beamline.simulate import ScanConfig, simulate_scan, write_scan

    incoming = scratch / "incoming"
    target = incoming / f"{SCAN}.tif"
    if target.exists():
        return target
    small_dir = scratch / "small"
    small_shape = tuple(-(-s // 3) for s in shape)
    if not (small_dir / "small.tif").exists():
        write_scan(simulate_scan(ScanConfig(shape=small_shape, voxel_size_um=VOXEL_UM, cycles=50, seed=seed)),
                   small_dir, "small")
    small = tifffile.imread(small_dir / "small.tif")
    if small.dtype != np.uint8:
        lo, hi = np.percentile(small, [0.1, 99.9])
        small = np.clip((small - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    incoming.mkdir(parents=True, exist_ok=True)
    reps = [np.concatenate([a, a[::-1], a], axis=0) for a in (small,)][0]
    tiled = np.concatenate([reps, reps[:, ::-1], reps], axis=1)
    tiled = np.concatenate([tiled, tiled[:, :, ::-1], tiled], axis=2)[: shape[0], : shape[1], : shape[2]]
    tmp = incoming / f".{SCAN}.tif.part"
    with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
        for plane in tiled:  # one page per plane, as beamline software writes stacks
            tw.write(plane, contiguous=True)
    os.replace(tmp, target)
    (incoming / f"{SCAN}.json").write_text(json.dumps({"voxel_size_um": VOXEL_UM, "cycles": 50,
                                                       "shape": list(tiled.shape)}))
    return target


def _max_rss_gib(time_output: str) -> float:
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_output)
    return int(m.group(1)) / 2**20 if m else float("nan")


def run_step(step: str, root: Path, repo: Path, env_extra: dict[str, str] | None = None) -> dict:
    """Materialize one asset for the scan in a fresh process; wall seconds, peak RSS, success."""
    env = {**os.environ, "NMC_DATA_DIR": str(root), "DAGSTER_HOME": str(root / "dagster_home"),
           "NMC_EXECUTOR": "in_process", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(repo),
           **(env_extra or {})}
    (root / "dagster_home").mkdir(parents=True, exist_ok=True)
    dagster = str(Path(sys.executable).parent / "dagster")
    cmd = ["/usr/bin/time", "-v", dagster, "asset", "materialize", "-m", "nmc_assets.definitions",
           "--select", step, "--partition", SCAN]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    log = root / f"{step}.log"
    log.write_text(proc.stdout + proc.stderr)
    return {"step": step, "wall_s": round(wall, 1), "peak_rss_gib": round(_max_rss_gib(proc.stderr), 2),
            "ok": proc.returncode == 0, "log": str(log)}


def run_path(root: Path, repo: Path, incoming: Path, env_extra: dict[str, str] | None = None,
             steps: tuple[str, ...] = STEPS) -> list[dict]:
    """The per-scan assets in order on a data root whose drop folder links the benchmark scan's files."""
    import dagster as dg

    (root / "incoming").mkdir(parents=True, exist_ok=True)
    for f in incoming.iterdir():
        dst = root / "incoming" / f.name
        if not dst.exists() and not f.name.startswith("."):
            os.link(f, dst)
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        if SCAN not in instance.get_dynamic_partitions("scan"):
            instance.add_dynamic_partitions("scan", [SCAN])
    models = root / "models" / "stardist"
    if not models.exists():
        shutil.copytree(REPO / "data" / "models" / "stardist", models)
    results = []
    for step in steps:
        r = run_step(step, root, repo, env_extra)
        results.append(r)
        print(json.dumps(r), flush=True)
        if not r["ok"]:
            break
    return results


def _table(rows: list[dict], voxels: int) -> list[str]:
    lines = ["| step | wall (s) | peak RSS (GiB) | voxels/s | ok |", "| --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        rate = voxels / r["wall_s"] if r["wall_s"] else float("nan")
        lines.append(f"| {r['step']} | {r['wall_s']:.1f} | {r['peak_rss_gib']:.2f} | {rate / 1e6:.1f} M | {r['ok']} |")
    total = sum(r["wall_s"] for r in rows)
    peak = max((r["peak_rss_gib"] for r in rows), default=float("nan"))
    lines.append(f"| **all four** | **{total:.1f}** | **{peak:.2f}** | {voxels / total / 1e6:.1f} M | |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scratch", default="/tmp/nmc_real")
    ap.add_argument("--shape", type=int, nargs=3, default=(492, 1324, 1985))
    ap.add_argument("--baseline-repo", help="checkout of the code before the blockwise path, run on the same scan")
    ap.add_argument("--scaling", action="store_true", help="1 vs 2 Dask worker processes for the blockwise steps")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "real_size.md"))
    a = ap.parse_args(argv)
    scratch = Path(a.scratch)
    t = time.perf_counter()
    source = build_scan(scratch, tuple(a.shape))
    print(f"scan {source} ({source.stat().st_size / 2**30:.2f} GiB) ready in {time.perf_counter() - t:.0f} s", flush=True)
    voxels = int(np.prod(a.shape))
    lines = [f"# Real-size per-scan path ({time.strftime('%Y-%m-%d')})", "", machine_line(), "",
             f"Scan: {a.shape[0]} x {a.shape[1]} x {a.shape[2]} uint8 at {VOXEL_UM} um ({voxels / 1e9:.2f} G voxels, "
             f"{source.stat().st_size / 2**30:.2f} GiB TIFF), mirror-tiled 3 x 3 x 3 from a simulated scan.", ""]

    new_root = scratch / "run_new"
    shutil.rmtree(new_root, ignore_errors=True)
    new = run_path(new_root, REPO, source.parent)
    tomo = new_root / "warehouse" / "tomograms" / f"{SCAN}.zarr"
    zarr_bytes = sum(p.stat().st_size for p in tomo.resolve().rglob("*") if p.is_file()) if tomo.exists() else 0
    lines += ["## This code", ""] + _table(new, voxels)
    lines += ["", f"Tomogram Zarr on disk: {zarr_bytes / 2**30:.2f} GiB = {zarr_bytes / source.stat().st_size:.2f}x "
                  "the source file."]

    if a.scaling:
        from distributed import LocalCluster

        lines += ["", "## Dask LocalCluster scaling (fused_labels, particle_features)", "",
                  "| workers | step | wall (s) |", "| ---: | --- | ---: |"]
        walls = {}
        for workers in (1, 2):
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
                rows = run_path(new_root, REPO, source.parent, {"NMC_DASK_SCHEDULER": c.scheduler_address},
                                steps=("fused_labels", "particle_features"))
            for r in rows:
                walls[(workers, r["step"])] = r["wall_s"]
                lines.append(f"| {workers} | {r['step']} | {r['wall_s']:.1f} |")
        for step in ("fused_labels", "particle_features"):
            if (1, step) in walls and (2, step) in walls:
                lines.append(f"| ratio 1/2 | {step} | {walls[(1, step)] / walls[(2, step)]:.2f}x |")

    if a.baseline_repo:
        base_root = scratch / "run_baseline"
        shutil.rmtree(base_root, ignore_errors=True)
        base = run_path(base_root, Path(a.baseline_repo), source.parent)
        lines += ["", f"## Baseline: {a.baseline_repo} (same scan, same session)", ""] + _table(base, voxels)
        if len(base) == len(new) and all(r["ok"] for r in base + new):
            ratio = sum(r["wall_s"] for r in base) / sum(r["wall_s"] for r in new)
            lines += ["", f"Speed-up of the whole path: {ratio:.2f}x; peak RSS "
                          f"{max(r['peak_rss_gib'] for r in base):.2f} -> {max(r['peak_rss_gib'] for r in new):.2f} GiB."]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["ok"] for r in new) else 1


if __name__ == "__main__":
    sys.exit(main())
