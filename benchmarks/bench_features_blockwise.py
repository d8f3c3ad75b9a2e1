"""Benchmark of blockwise feature extraction from Zarr against the in-memory path: time, peak memory, equality.

Volume: a virtual beamline scan (``--sim-shape``, 0.2 um voxels, 50 cycles) tiled over ``--shape`` (z, y,
x) with the labels of each copy offset, stored as real scans are: labels uint32 Zarr in (64, 256, 256)
chunks, tomogram uint8 Zarr in 128^3 chunks (built slab by slab once, kept in ``--work``).

Each mode runs in a fresh Python process, which reports its wall time, CPU time and peak RSS (``VmHWM``
of ``/proc/self/status``: ``ru_maxrss`` would include the parent's peak, which Linux carries over an
``exec``) and writes its table to Parquet:

- ``in-memory``: what ``particle_features`` did before: ``read_zarr`` of both stores, then
  ``estimate_solid_threshold`` and ``compute_particle_features``;
- ``blockwise-N``: ``compute_particle_features_zarr`` on a local Dask cluster of N threads.

The tables must be equal (``assert_frame_equal(check_exact=True)``).

    .venv/bin/python benchmarks/bench_features_blockwise.py [--shape 320 768 1152] [--modes in-memory blockwise-1 blockwise-2]
    .venv/bin/python benchmarks/bench_features_blockwise.py --shape 492 1324 1985 --modes blockwise-2  # real size
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


def build_stores(work: Path, sim_shape: tuple[int, int, int], shape: tuple[int, int, int]) -> dict:
    """Simulate one scan, tile it over ``shape`` (copy k of the scan gets labels + k * (max + 1)), write
    the two Zarr stores slab by slab (skipped when they exist); their facts."""
    info_path = work / "volume.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        if info["shape"] == list(shape) and info.get("sim_shape") == list(sim_shape):
            return info
    import shutil

    import zarr

    from nmc_assets.beamline import simulate
    from nmc_assets.storage import atomic_path

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    scan = simulate.simulate_scan(simulate.ScanConfig(shape=sim_shape, voxel_size_um=VOXEL_UM, cycles=50, seed=7))
    labels = scan.labels.astype(np.uint32)
    step = int(labels.max()) + 1
    tiles = [-(-n // s) for n, s in zip(shape, sim_shape)]
    # per output index: the source index and the copy's index along each axis
    src = [np.arange(n) % s for n, s in zip(shape, sim_shape)]
    copy = [np.arange(n) // s for n, s in zip(shape, sim_shape)]
    for name, source, dtype, chunks in [("labels", labels, np.uint32, (64, 256, 256)),
                                        ("tomogram", scan.image, np.uint8, (128, 128, 128))]:
        with atomic_path(work / f"{name}.zarr") as tmp:
            z = zarr.create_array(store=str(tmp), shape=shape, dtype=dtype, chunks=chunks, zarr_format=3)
            for z0 in range(0, shape[0], chunks[0]):
                z1 = min(shape[0], z0 + chunks[0])
                slab = source[np.ix_(src[0][z0:z1], src[1], src[2])]
                if name == "labels":
                    k = ((copy[0][z0:z1, None, None] * tiles[1] + copy[1][None, :, None]) * tiles[2]
                         + copy[2][None, None, :]).astype(np.uint32)
                    slab = np.where(slab > 0, slab + k * np.uint32(step), np.uint32(0))
                z[z0:z1] = slab
            z.attrs.update({"voxel_size_um": VOXEL_UM, "cycles": 50})
    info = {"shape": list(shape), "sim_shape": list(sim_shape), "simulated_particles": step - 1,
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
            "peak_rss_gib": round(peak_rss_bytes() / 2**30, 2), "rows": len(df), "threshold": thr, **extra}


def peak_rss_bytes() -> int:
    """This process's peak resident set size (``VmHWM``; Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/nmc_bench_features_blockwise"))
    ap.add_argument("--sim-shape", type=int, nargs=3, default=[160, 384, 384])
    ap.add_argument("--shape", type=int, nargs=3, default=[320, 768, 1152],
                    help="volume (z, y, x); 492 1324 1985 is a real scan (use only the blockwise modes there)")
    ap.add_argument("--modes", nargs="+", default=["in-memory", "blockwise-1", "blockwise-2"])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_mode(args.child, args.work)))
        return

    import pandas as pd

    from nmc_assets.features import read_features

    info = build_stores(args.work, tuple(args.sim_shape), tuple(args.shape))
    shape = info["shape"]
    print(f"# volume {'x'.join(map(str, shape))} = {np.prod(shape) / 1e6:.0f} Mvoxels (tiled {info['sim_shape']} "
          f"scan); {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}", flush=True)
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
    print("\n| mode | particles | wall s | CPU s | peak RSS GiB | blocks | mosaics |\n| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['mode']} | {r['rows']} | {r['seconds']} | {r['cpu_s']} | {r['peak_rss_gib']} | "
              f"{r.get('blocks', '-')} | {r.get('mosaics', '-')} |")


if __name__ == "__main__":
    main()
