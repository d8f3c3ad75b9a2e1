"""Benchmark of scan ingest: validated reading vs a bare read, and the whole raw_tomogram step.

Writes one synthetic uint16 scan (``--shape z y x``) as TIFF and as HDF5 into a temp drop folder, then
times, best of ``--repeat``:
- baseline: ``tifffile.imread`` / ``h5py`` read of the same file (no checks),
- ``load_scan``: header probe, full read, truncation/shape/finite/constant checks, sha256, float32,
- ``raw_tomogram`` work: ``load_scan`` + percentiles + atomic Zarr write + PNG preview.
Prints a Markdown table; ``--out`` also writes it.

    .venv/bin/python benchmarks/bench_ingest.py [--shape 128 256 256] [--out benchmarks/results/ingest.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[128, 256, 256])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import h5py
    import tifffile

    from nmc_assets.ingest import load_scan, tomogram_attrs
    from nmc_assets.previews import volume_preview_markdown
    from nmc_assets.storage import write_zarr

    shape = tuple(args.shape)
    rng = np.random.default_rng(0)
    volume = (20000 + rng.normal(0, 2000, shape)).astype(np.uint16)
    mib = volume.nbytes / 2**20
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        incoming = Path(tmp) / "incoming"
        incoming.mkdir()
        tifffile.imwrite(incoming / "t.tif", volume)
        with h5py.File(incoming / "h.h5", "w") as f:
            f.create_dataset("exchange/data", data=volume)

        def h5_read():
            with h5py.File(incoming / "h.h5", "r") as f:
                return f["exchange/data"][()]

        def step(scan_id):
            vol, meta, warnings = load_scan(scan_id, incoming)
            write_zarr(Path(tmp) / "warehouse" / f"{scan_id}.zarr", vol, attrs=tomogram_attrs(meta, vol, warnings))
            volume_preview_markdown(vol)

        for label, scan_id, baseline in (("TIFF", "t", lambda: tifffile.imread(incoming / "t.tif")),
                                         ("HDF5", "h", h5_read)):
            t_base = _best(baseline, args.repeat)
            t_load = _best(lambda: load_scan(scan_id, incoming), args.repeat)
            t_step = _best(lambda: step(scan_id), args.repeat)
            rows.append((label, t_base, t_load, t_step))

    lines = [
        "# Ingest benchmark",
        "",
        f"2026-11-21, 2-core x86-64 CPU, 24 GiB, no GPU (shared with other jobs). Volume {shape} uint16 "
        f"({mib:.0f} MiB), best of {args.repeat}. `bench_ingest.py --shape {' '.join(map(str, shape))}`.",
        "",
        "| format | bare read (s) | load_scan (s) | ratio | raw_tomogram work (s) | MiB/s (raw_tomogram) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, t_base, t_load, t_step in rows:
        lines.append(f"| {label} | {t_base:.3f} | {t_load:.3f} | {t_load / t_base:.1f}x | {t_step:.3f} | "
                     f"{mib / t_step:.0f} |")
    lines += ["", "load_scan = header probe + full read + validation (truncation, 3D, finite, constant) + sha256 "
              "+ float32; raw_tomogram work adds percentiles, the atomic Zarr write (float32) and the PNG preview."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
