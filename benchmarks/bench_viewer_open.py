"""Benchmark of OME-Zarr pyramids: what they cost to write, and how fast a viewer's first view opens.

One synthetic uint8 scan of ``--shape`` (default the real scan's 492 x 1324 x 1985; smooth structure plus
noise, so it compresses like a scan) is written as TIFF into a temp drop folder, then:

1. **Writing** (best of ``--repeat``, alternating): ``write_tomogram`` (the ``raw_tomogram`` step's work:
   validation, checksum, percentiles, Zarr) without a pyramid (``pyramid_min_side=None``: the old layout,
   level 0 only) and with the default pyramid; the overhead is their ratio. Labels: a binned label volume
   upsampled to ``--shape`` by ``write_full_resolution`` (``fused_labels``' writer, without refinement,
   its cheapest form), with the time of its nearest pyramid measured inside the same call.
2. **Opening** (what ``nmc-assets view`` / napari read first): the coarsest level whole plus one
   full-resolution 512 x 512 xy tile at the centre, against the plain-array baseline (no pyramid: one
   whole full-resolution xy plane, the smallest first view napari can show without levels). Warm page
   cache (the stores were just written); medians of ``--repeat`` fresh opens.

    .venv/bin/python benchmarks/bench_viewer_open.py [--shape 492 1324 1985] [--repeat 2] [--out benchmarks/results/viewer_open.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_scan(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """uint8 (z, y, x): smooth blobs (sums of separable sinusoids) plus Gaussian noise, built slab by slab."""
    rng = np.random.default_rng(seed)
    z, y, x = (np.arange(n, dtype=np.float32) for n in shape)
    fy, fx = np.sin(y / 23.0)[:, None], np.cos(x / 31.0)[None, :]
    out = np.empty(shape, np.uint8)
    for z0 in range(0, shape[0], 32):
        zz = np.sin(z[z0:z0 + 32] / 17.0)[:, None, None]
        slab = 128 + 60 * zz * fy * fx + rng.normal(0, 12, (len(zz), shape[1], shape[2])).astype(np.float32)
        out[z0:z0 + 32] = np.clip(slab, 0, 255).astype(np.uint8)
    return out


def time_write(incoming: Path, out: Path, min_side) -> float:
    from nmc_assets.ingest.tomogram import write_tomogram

    t0 = time.perf_counter()
    write_tomogram("scan", incoming, out, pyramid_min_side=min_side)
    return time.perf_counter() - t0


def time_first_view(path: Path, pyramid: bool) -> float:
    from nmc_assets.storage import open_zarr_levels

    t0 = time.perf_counter()
    levels = open_zarr_levels(path)
    full = levels[0]
    zc, yc, xc = (n // 2 for n in full.shape)
    if pyramid:
        np.asarray(levels[-1][...])
        np.asarray(full[zc, max(0, yc - 256):yc + 256, max(0, xc - 256):xc + 256])
    else:
        np.asarray(full[zc])
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[492, 1324, 1985])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--label-factor", type=int, default=4, help="bin factor of the label volume that is upsampled")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import tifffile

    from nmc_assets.segmentation.fullres import write_full_resolution
    from nmc_assets.storage import open_zarr_levels

    shape = tuple(args.shape)
    t0 = time.perf_counter()
    volume = synthetic_scan(shape)
    make_s = time.perf_counter() - t0
    gvox = volume.size / 1e9
    rows = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        tmp = Path(tmp)
        (tmp / "incoming").mkdir()
        tifffile.imwrite(tmp / "incoming" / "scan.tif", volume)
        (tmp / "incoming" / "scan.json").write_text('{"voxel_size_um": 0.07, "cycles": 50}')
        del volume
        plain, pyr = tmp / "plain.zarr", tmp / "pyramid.zarr"
        times = {"level 0 only (old layout)": [], "with pyramid": []}
        for _ in range(args.repeat):
            times["level 0 only (old layout)"].append(time_write(tmp / "incoming", plain, None))
            times["with pyramid"].append(time_write(tmp / "incoming", pyr, 256))
        rows["write"] = {k: min(v) for k, v in times.items()}
        levels = [tuple(a.shape) for a in open_zarr_levels(pyr)]

        # labels: a binned volume of blocky particles, upsampled (nearest) to the full shape
        f = args.label_factor
        binned_shape = tuple(-(-n // f) for n in shape)
        rng = np.random.default_rng(1)
        binned = rng.integers(1, 5000, size=tuple(-(-n // 8) for n in binned_shape)).astype(np.uint32)
        binned = np.repeat(np.repeat(np.repeat(binned, 8, 0), 8, 1), 8, 2)[tuple(slice(0, n) for n in binned_shape)]
        t0 = time.perf_counter()
        info = write_full_resolution(binned, f, shape, tmp / "labels.zarr", {"scan_id": "scan"}, voxel_um=0.07)
        label_total = time.perf_counter() - t0
        rows["labels"] = {"total": label_total, "pyramid": info["pyramid_seconds"], "levels": info["pyramid_levels"]}

        opens = {"plain": [], "pyramid": []}
        for _ in range(max(3, args.repeat)):
            opens["plain"].append(time_first_view(plain, False))
            opens["pyramid"].append(time_first_view(pyr, True))
        rows["open"] = {k: statistics.median(v) for k, v in opens.items()}

    w = rows["write"]
    base, with_pyr = w["level 0 only (old layout)"], w["with pyramid"]
    lab = rows["labels"]
    load = os.getloadavg()
    lines = [
        "# OME-Zarr pyramid: write cost and first view",
        "",
        f"2026-11-30, 2-core x86-64 CPU, 24 GiB, no GPU, shared with other jobs (load average {load[0]:.1f} / "
        f"{load[1]:.1f} / {load[2]:.1f} at the end). Synthetic uint8 scan {shape} ({gvox:.2f} G voxels, made in "
        f"{make_s:.0f} s), chunks 64 x 256 x 256; levels {levels}. "
        f"`bench_viewer_open.py --shape {' '.join(map(str, shape))} --repeat {args.repeat}`.",
        "",
        "| step | without pyramid (s) | with pyramid (s) | pyramid share |",
        "| --- | ---: | ---: | ---: |",
        f"| `write_tomogram` (raw_tomogram's work), best of {args.repeat} | {base:.1f} | {with_pyr:.1f} | "
        f"{(with_pyr - base) / base * 100:+.1f} % |",
        f"| `write_full_resolution` of labels (x{f} nearest upsampling, no refinement), one run | "
        f"{lab['total'] - lab['pyramid']:.1f} | {lab['total']:.1f} | {lab['pyramid'] / (lab['total'] - lab['pyramid']) * 100:+.1f} % |",
        "",
        "| first view | seconds (median) |",
        "| --- | ---: |",
        f"| plain array (old layout): one full-resolution xy plane | {rows['open']['plain']:.2f} |",
        f"| OME-Zarr: coarsest level whole + one 512 x 512 full-resolution tile | {rows['open']['pyramid']:.2f} |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
