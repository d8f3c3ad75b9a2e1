"""Virtual scans for the confidence benchmark: simulate, predict the view maps, fuse (today's pipeline).

    .venv/bin/python benchmarks/_confidence_scans.py [--scratch /tmp/conf_bench]

Each scan is cached in the scratch folder: ``<id>.tif`` / ``<id>.labels.tif`` (simulator),
``<id>.views.zarr`` (StarDist view maps of the shipped default model), ``<id>.fused.zarr`` (the default
fusion with boundary refinement, as the ``fused_labels`` asset makes them). Seeds: the default model
was trained on 1001-1030; the confidence weights are fitted on the ``FIT`` scans, evaluated on ``EVAL``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from _common import REPO

sys.path.insert(0, str(REPO))

SHAPE = (160, 384, 384)
VOXEL_UM = 0.2
#: (seed, cycles) of the scans the weights are fitted on (never evaluated on).
FIT = [(3001, 10), (3002, 50), (3003, 100), (3004, 200)]
#: (seed, cycles) of the evaluation scans: bench_segmentation's test scans and two more; 200 cycles is
#: the harder one (more and wider cracks: more split particles).
EVAL = [(2001, 25), (2002, 100), (2003, 50), (2004, 200)]
#: Harder evaluation scans (this benchmark's own, not the beamline's presets): 3x the noise, a wider
#: point-spread function and binder closer to the particles' grey value.
EVAL_HARD = [(2005, 100), (2006, 200)]
HARD_RENDER = {"noise_sd": 0.135, "psf_sigma_um": 0.2, "phase_cbd": 0.5}


def scan_id(seed: int, cycles: int) -> str:
    return f"conf_s{seed}_c{cycles}" + ("_hard" if (seed, cycles) in EVAL_HARD else "")


def prepare(scratch: Path, seed: int, cycles: int, report=print) -> str:
    """Simulate (if missing), predict the views (if missing or from another model), fuse; return the scan id."""
    import tifffile

    from nmc_assets.beamline.simulate import ScanConfig, simulate_scan, write_scan
    from nmc_assets.segmentation.model import shipped_model_dir
    from nmc_assets.segmentation.pipeline import FusionParams, fused_labels, view_probabilities
    from nmc_assets.storage import open_zarr_group

    sid = scan_id(seed, cycles)
    t0 = time.perf_counter()
    if not (scratch / f"{sid}.labels.tif").exists():
        from nmc_assets.beamline.render import RenderParams

        render = RenderParams(**HARD_RENDER) if (seed, cycles) in EVAL_HARD else RenderParams()
        config = ScanConfig(shape=SHAPE, voxel_size_um=VOXEL_UM, cycles=cycles, seed=seed, render=render)
        write_scan(simulate_scan(config), scratch, sid)
    vp, fl = scratch / f"{sid}.views.zarr", scratch / f"{sid}.fused.zarr"
    img = tifffile.imread(scratch / f"{sid}.tif").astype(np.float32)
    if not vp.exists() or open_zarr_group(vp).attrs.get("model_dir") != str(shipped_model_dir()):  # reused per model only
        lo, hi = np.percentile(img[::4], [1, 99.8])
        view_probabilities(shipped_model_dir(), img, VOXEL_UM, vp, normalize=(float(lo), float(hi)))
    fused_labels(vp, fl, FusionParams(), intensity=img)  # always today's fusion and refinement
    report(f"{sid}: ready ({time.perf_counter() - t0:.0f} s)")
    return sid


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scratch", default="/tmp/conf_bench")
    a = ap.parse_args()
    scratch = Path(a.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    for seed, cycles in FIT + EVAL + EVAL_HARD:
        prepare(scratch, seed, cycles)


if __name__ == "__main__":
    main()
