"""Benchmark of blockwise feature extraction from Zarr against the in-memory path: time, peak memory, equality.

Volume: a virtual beamline scan (``--sim-shape``, 0.2 um voxels, 50 cycles) tiled ``--tiles`` times
along (z, y, x) with the labels of each copy offset, stored as real scans are: labels uint32 Zarr in
(64, 256, 256) chunks, tomogram uint8 Zarr in 128^3 chunks (built once, kept in ``--work``).

Each mode runs in a fresh Python process, which reports its wall time and peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and writes its table to Parquet:

- ``in-memory``: what ``particle_features`` did before: ``read_zarr`` of both stores, then
  ``estimate_solid_threshold`` and ``compute_particle_features``;
- ``blockwise-N``: ``compute_particle_features_zarr`` on a local Dask cluster of N threads.

The tables must be equal (``assert_frame_equal(check_exact=True)``).

    .venv/bin/python benchmarks/bench_features_blockwise.py [--tiles 2 2 3] [--modes in-memory blockwise-1 blockwise-2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VOXEL_UM = 0.2


def build_stores(work: Path, sim_shape: tuple[int, int, int], tiles: tuple[int, int, int]) -> dict:
    """Simulate one scan, tile it, write the two Zarr stores (skipped when they exist); their facts."""
    info_path = work / "volume.json"
    if info_path.exists():
        return json.loads(info_path.read_text())
    from nmc_assets.beamline import simulate
    from nmc_assets.storage import write_zarr

    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    scan = simulate.simulate_scan(simulate.ScanConfig(shape=sim_shape, voxel_size_um=VOXEL_UM, cycles=50, seed=7))
    labels = scan.labels.astype(np.uint32)
    step = int(labels.max()) + 1
    big = np.zeros([s * t for s, t in zip(sim_shape, tiles)], np.uint32)
    for k, corner in enumerate(np.ndindex(*tiles)):  # copy k: labels + k * step, background stays 0
        at = tuple(slice(c * s, (c + 1) * s) for c, s in zip(corner, sim_shape))
        big[at] = np.where(labels > 0, labels + np.uint32(k * step), 0)
    write_zarr(work / "labels.zarr", big, chunks=(64, 256, 256), attrs={"voxel_size_um": VOXEL_UM})
    n_particles = int(np.unique(big).size - 1)
    del big
    write_zarr(work / "tomogram.zarr", np.tile(scan.image, tiles), chunks=(128, 128, 128),
               attrs={"voxel_size_um": VOXEL_UM, "cycles": 50})
    info = {"shape": [s * t for s, t in zip(sim_shape, tiles)], "particles": n_particles,
            "build_s": round(time.perf_counter() - t0, 1)}
    info_path.write_text(json.dumps(info))
    return info


def run_mode(mode: str, work: Path) -> dict:
    """Child process body: one mode, its table to ``work/<mode>.parquet``; returns time and peak RSS."""
    import resource

    from nmc_assets.features import write_features

    labels_path, tomo_path = work / "labels.zarr", work / "tomogram.zarr"
    t0 = time.perf_counter()
    if mode == "in-memory":
        from nmc_assets.features import compute_particle_features, estimate_solid_threshold
        from nmc_assets.storage import read_zarr

        intensity = read_zarr(tomo_path)
        labels = read_zarr(labels_path)
        thr = estimate_solid_threshold(labels, intensity)
        df = compute_particle_features(labels, intensity, VOXEL_UM, scan_id="bench", cycles=50, solid_threshold=thr)
        extra = {}
    else:
        from nmc_assets.blockwise import BlockRunner
        from nmc_assets.features.blockwise import compute_particle_features_zarr

        workers = int(mode.rsplit("-", 1)[1])
        with BlockRunner(workers=workers) as runner:
            res = compute_particle_features_zarr(labels_path, tomo_path, VOXEL_UM, scan_id="bench", cycles=50,
                                                 runner=runner, progress=lambda m: print(m, file=sys.stderr))
        df, thr = res.table, res.solid_threshold
        extra = {"blocks": res.blocks, "mosaics": res.mosaics}
    seconds = time.perf_counter() - t0
    write_features(df, work / f"{mode}.parquet")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"mode": mode, "seconds": round(seconds, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2), "rows": len(df), "threshold": thr, **extra}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/nmc_bench_features_blockwise"))
    ap.add_argument("--sim-shape", type=int, nargs=3, default=[160, 384, 384])
    ap.add_argument("--tiles", type=int, nargs=3, default=[2, 2, 3])
    ap.add_argument("--modes", nargs="+", default=["in-memory", "blockwise-1", "blockwise-2"])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_mode(args.child, args.work)))
        return

    import pandas as pd

    from nmc_assets.features import read_features

    info = build_stores(args.work, tuple(args.sim_shape), tuple(args.tiles))
    shape = info["shape"]
    print(f"# volume {'x'.join(map(str, shape))} = {np.prod(shape) / 1e6:.0f} Mvoxels, {info['particles']} "
          f"particles; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}")
    rows = []
    for mode in args.modes:
        out = subprocess.run([sys.executable, __file__, "--work", str(args.work), "--child", mode],
                             capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if out.returncode:
            raise SystemExit(f"{mode} failed:\n{out.stderr[-4000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    tables = {r["mode"]: read_features(args.work / f"{r['mode']}.parquet") for r in rows}
    first, *others = tables
    for mode in others:
        pd.testing.assert_frame_equal(tables[mode], tables[first], check_exact=True)
    print(f"tables equal ({', '.join(tables)}): yes")
    print("\n| mode | wall s | CPU s | peak RSS GiB | blocks | mosaics |\n| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['mode']} | {r['seconds']} | {r['cpu_s']} | {r['peak_rss_gib']} | {r.get('blocks', '-')} | "
              f"{r.get('mosaics', '-')} |")


if __name__ == "__main__":
    main()
