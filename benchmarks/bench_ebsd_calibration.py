"""Calibration from virtual EBSD maps against calibration from the same particles' label sections.

Virtual ``.ang`` maps (half square, half hexagonal grid; R = 3 um, 0.1 um step, the packaged reference's
grain parameters, c-axes 15 deg around the radial direction, boundary misindexing and low-confidence
noise) go through the whole EBSD path (orix reading, grains at 5 deg, minimum grain size 3, particles,
fill: ``--fill`` majority, the default, or nearest, the fill before 2026-11-30 20:00) into the default calibration (GanConfig defaults: start 50 % off, 1200 steps). The baseline, in the
same run and side by side on the two cores: the same calibration on the truth label sections of the same
particles (what a label TIFF of these sections would give). Scored by ``calibration_report`` against the
reference.

    .venv/bin/python benchmarks/bench_ebsd_calibration.py [--n-maps 128] [--steps 1200]

Appends one JSON line per run to ``benchmarks/results/ebsd_calibration.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _common import RESULTS, load_average

from _synthesis_common import reference


#: EBSD fill settings: "nearest" is the path before 2026-11-30 20:00, "majority+orientation+rim" today's defaults.
_PATHS = {"nearest": {"fill_method": "nearest", "fill_by_orientation": False, "particle_rim": False},
          "majority": {"fill_method": "majority", "fill_by_orientation": False, "particle_rim": False},
          "nearest+orientation+rim": {"fill_method": "nearest", "fill_by_orientation": True, "particle_rim": True},
          "majority+orientation+rim": {"fill_method": "majority", "fill_by_orientation": True, "particle_rim": True}}


def _sections(folder: Path, n_maps: int, kind: str, clean: bool = False, fill: str = "majority+orientation+rim"):
    import numpy as np
    import tifffile

    from nmc_assets.ebsd.cross_sections import read_cross_sections
    from nmc_assets.ebsd.particles import SectionSettings
    from nmc_assets.ebsd.virtual import VirtualEbsdSettings, write_virtual_maps
    from nmc_assets.particles.sections import Section

    ref, _ = reference(n_sections=1)
    out = []
    for grid, seed in (("square", 3024), ("hex", 3025)):
        d = folder / grid
        if not d.is_dir():
            noise = {"boundary_misindex": 0.0, "low_confidence_fraction": 0.0} if clean else {}
            write_virtual_maps(d, n_maps // 2, VirtualEbsdSettings(grid=grid, radius_um=3.0, step_um=0.1, **noise), params=ref, seed=seed)
        if kind == "ebsd":
            out += read_cross_sections(d, SectionSettings(min_grain_size=3, **_PATHS[fill]))[0]
        else:
            out += [Section(tifffile.imread(p).astype(np.uint16), 0.1, p.stem) for p in sorted((d / "truth").glob("*.tif"))]
    return ref, out


def run(kind: str, folder: str, n_maps: int, steps: int, seed: int, clean: bool = False, fill: str = "majority+orientation+rim") -> dict:
    import numpy as np
    import torch

    from nmc_assets.synthesis.gan import GanConfig, StereologicalGan
    from nmc_assets.synthesis.quality import calibration_report

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    ref, sections = _sections(Path(folder), n_maps, kind, clean, fill)
    t_sections = time.perf_counter() - t0
    cfg = GanConfig(steps=steps, seed=seed)
    gan = StereologicalGan(sections, cfg)
    t0 = time.perf_counter()
    gan.train()
    seconds = time.perf_counter() - t0
    rep = calibration_report(sections, gan.calibrated_params(), ref, seed=7, learned=list(cfg.learned))
    return {"kind": kind + ("_no_noise" if clean else ""), "fill": fill if kind == "ebsd" else None, "n_sections": len(sections), "grains_per_section": float(np.mean([s.labels.max() for s in sections])),
            "steps": steps, "seed": seed, "sections_seconds": t_sections, "train_seconds": seconds,
            "calibrated": gan.calibrated_params().to_dict(), "relative_error": rep.get("relative_error", {}),
            "distance_ratio": rep["distance_ratio"], "load_average_end": load_average()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-maps", type=int, default=128)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-noise", action="store_true", help="maps without misindexing (what the noise costs)")
    ap.add_argument("--fill", default="majority+orientation+rim", choices=list(_PATHS), help="EBSD fill settings (_PATHS)")
    ap.add_argument("--kinds", nargs="+", default=["ebsd", "truth_labels"], choices=["ebsd", "truth_labels"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _sections(Path(tmp), args.n_maps, "truth", args.no_noise)  # write the maps once
        with ProcessPoolExecutor(len(args.kinds)) as pool:
            futures = [pool.submit(run, kind, tmp, args.n_maps, args.steps, args.seed, args.no_noise, args.fill) for kind in args.kinds]
            results = [f.result() for f in futures]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "ebsd_calibration.jsonl", "a") as f:
        for r in results:
            f.write(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), **r}) + "\n")
    for r in results:
        print(r["kind"], r["n_sections"], round(r["grains_per_section"], 1), {k: f"{100 * v:+.1f} %" for k, v in r["relative_error"].items()},
              {k: round(v, 2) for k, v in r["distance_ratio"].items()}, f"{r['train_seconds']:.0f} s")


if __name__ == "__main__":
    main()
