"""EBSD maps: grain reconstruction against DefDAP (agreement and speed), and reading + rebuilding speed.

    .venv/bin/python benchmarks/bench_ebsd.py [--skip-nmc]

1. Agreement on DefDAP's test map (``../shared/data/ebsd/defdap``), 5 degrees, minimum grain size 0, 10, 100:
   grain counts and the fraction of DefDAP's grains matched at IoU >= 0.9 (targets: >= 95 %, counts within 2 %).
2. Speed on a 1-megapixel map of real orientations: DefDAP's map tiled 3 x 4 (972 x 1077 points) written as a
   Channel 5 .cpr/.crc pair; ours (read + rebuild) against DefDAP's own routine (``ebsd.Map`` load +
   ``find_boundaries`` + ``find_grains``), same file, same settings; the grains must agree.
3. Speed on a 1-megapixel NMC map (virtual .ang, trigonal -3m, 8 nm step): orix reading + our rebuilding.
   DefDAP has no baseline here (its phases are m-3m and 6/mmm only).
Writes ``benchmarks/results/ebsd.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import REPO, RESULTS, load_average, machine_line

SHARED = REPO.parent / "shared" / "data" / "ebsd" / "defdap"


def _defdap_grains(path: Path, threshold: float, min_size: int) -> tuple[np.ndarray, float]:
    """DefDAP's grains (0 = none) and its wall time (load + boundaries + grains)."""
    from defdap import ebsd

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        m = ebsd.Map(str(path.with_suffix("")), data_type="OxfordBinary")
        pb, gb = m.find_boundaries(misori_tol=threshold)
        m.data.phase_boundaries, m.data.grain_boundaries = pb, gb
        grains = m.find_grains(min_grain_size=min_size)
    return np.where(grains > 0, grains, 0), time.perf_counter() - t0


def _ours(path: Path, threshold: float, min_size: int) -> tuple[np.ndarray, float, float]:
    from nmc_assets.ebsd.grains import GrainSettings, rebuild_grains
    from nmc_assets.ebsd.readers import read_map

    t0 = time.perf_counter()
    m = read_map(path)
    t1 = time.perf_counter()
    labels = rebuild_grains(m, GrainSettings(threshold_deg=threshold, min_grain_size=min_size))
    return labels, t1 - t0, time.perf_counter() - t1


def agreement(lines: list[str]) -> None:
    from nmc_assets.segmentation.metrics import match_instances

    lines += ["## Agreement with DefDAP's grains (testDataEBSD, 359 x 243, 5 degrees)", "",
              "| min grain size | DefDAP grains (expected) | ours | matched at IoU >= 0.9 | identical pixels |",
              "| --- | --- | --- | --- | --- |"]
    for min_size, expected in ((0, 141), (10, 109), (100, 76)):
        ref = np.load(SHARED / f"ebsd_grains_5deg_{min_size}.npz")["grains"]
        ref = np.where(ref > 0, ref, 0)
        labels, _, _ = _ours(SHARED / "testDataEBSD.cpr", 5.0, min_size)
        r = match_instances(ref, labels, (0.9,))[0.9]
        lines.append(f"| {min_size} | {ref.max()} ({expected}) | {labels.max()} | {r['tp']}/{r['n_true']} = "
                     f"{100 * r['tp'] / r['n_true']:.1f} % | {100 * (labels == ref).mean():.2f} % |")
    lines.append("")


def _tiled_cpr(folder: Path, reps=(4, 3)) -> Path:
    """DefDAP's map tiled reps (rows, cols) as a .cpr/.crc pair (same record layout)."""
    cpr = (SHARED / "testDataEBSD.cpr").read_text()
    from nmc_assets.ebsd.readers import read_map

    m = read_map(SHARED / "testDataEBSD.cpr")
    rows, cols = m.shape
    raw = np.fromfile(SHARED / "testDataEBSD.crc", np.uint8).reshape(rows, cols, -1)
    tiled = np.tile(raw, (reps[0], reps[1], 1))
    out = folder / "tiled.cpr"
    out.write_text(cpr.replace(f"xCells={cols}", f"xCells={cols * reps[1]}").replace(f"yCells={rows}", f"yCells={rows * reps[0]}"))
    tiled.tofile(out.with_suffix(".crc"))
    return out


def speed_real(lines: list[str], folder: Path) -> None:
    path = _tiled_cpr(folder)
    rows = ["## Speed on 1 megapixel of real orientations (DefDAP's map tiled 4 x 3 = 972 x 1077 points, Ni m-3m)", "",
            "| min grain size | DefDAP load + boundaries + grains s | ours read s | ours rebuild s | ours total s | "
            "ours points/s | DefDAP points/s | speed-up | grains (DefDAP / ours) | identical |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for min_size in (10,):
        ref, t_ref = _defdap_grains(path, 5.0, min_size)
        labels, t_read, t_rebuild = _ours(path, 5.0, min_size)
        n = labels.size
        total = t_read + t_rebuild
        rows.append(f"| {min_size} | {t_ref:.1f} | {t_read:.2f} | {t_rebuild:.2f} | {total:.2f} | {n / total:,.0f} | "
                    f"{n / t_ref:,.0f} | {t_ref / total:.1f}x | {ref.max()} / {labels.max()} | {bool((ref == labels).all())} |")
    lines += rows + [""]


def speed_nmc(lines: list[str], folder: Path) -> None:
    from nmc_assets.ebsd.particles import SectionSettings, map_sections
    from nmc_assets.ebsd.virtual import VirtualEbsdSettings, write_virtual_maps
    from nmc_assets.particles.grains import GrainParams

    # ~7.9 um particle section at 8 nm: 1000 x 1000 points; grains ~0.3 um (density 40 / um^3)
    s = VirtualEbsdSettings(radius_um=4.0, step_um=0.008, margin_px=0)
    t0 = time.perf_counter()
    path = write_virtual_maps(folder / "nmc", 1, s, params=GrainParams(density_per_um3=40.0), seed=5)[0]
    t_write = time.perf_counter() - t0
    labels, t_read, t_rebuild = _ours(path, 5.0, 10)
    t0 = time.perf_counter()
    from nmc_assets.ebsd.readers import read_map

    secs, table, _, _ = map_sections(read_map(path), SectionSettings())
    t_sections = time.perf_counter() - t0
    n = labels.size
    lines += ["## Speed on a 1-megapixel NMC map (virtual .ang, -3m, 8 nm step, 4 um particle radius)", "",
              "| points | write s | read (orix) s | rebuild s | points/s (read + rebuild) | grains | read + sections + table s |",
              "| --- | --- | --- | --- | --- | --- | --- |",
              f"| {n:,} | {t_write:.1f} | {t_read:.2f} | {t_rebuild:.2f} | {n / (t_read + t_rebuild):,.0f} | {labels.max()} | {t_sections:.1f} |",
              "", "DefDAP cannot read this map (Laue group -3m: DefDAP's phases are m-3m and 6/mmm only), so there is no peer baseline.", ""]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-nmc", action="store_true")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"shared EBSD data not found at {SHARED}", file=sys.stderr)
        return 1
    lines = ["# EBSD maps: grains against DefDAP, reading and rebuilding speed", "", machine_line(), ""]
    agreement(lines)
    with tempfile.TemporaryDirectory() as tmp:
        speed_real(lines, Path(tmp))
        if not args.skip_nmc:
            speed_nmc(lines, Path(tmp))
    lines.append(f"Load average at the end: {load_average()}.")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ebsd.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
