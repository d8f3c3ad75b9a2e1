"""Command line of the virtual beamline.

    python -m nmc_assets.beamline simulate --out data/incoming --shape 160 384 384 --voxel-size 0.2 \
        --cycles 50 --seed 3 [--preset default|hard] [--scan-id ID] [--device cpu]
    python -m nmc_assets.beamline defaults --out data/incoming [--overwrite]
    python -m nmc_assets.beamline realism --out /tmp/virtual_slab.tif   (then ../shared/tools/realism.py)
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nmc_assets.beamline",
                                 description="Virtual X-ray nano-tomography beamline for NMC cathodes.")
    sub = ap.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="simulate one scan into a drop folder")
    sim.add_argument("--out", required=True, help="output folder (the drop folder, e.g. data/incoming)")
    sim.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), default=(160, 384, 384))
    sim.add_argument("--voxel-size", type=float, default=0.2, help="voxel size in um (default 0.2)")
    sim.add_argument("--cycles", type=int, default=50)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--preset", default="default", choices=("default", "hard"),
                     help="named settings (nmc_assets.beamline.defaults.PRESETS); hard: denser, more damage, "
                          "low binder contrast, lumpy binder, strong correlated noise")
    sim.add_argument("--scan-id", help="default: virtual_c<cycles>_s<seed> (virtual_hard_c<cycles>_s<seed> for --preset hard)")
    sim.add_argument("--device", default="cpu", help="torch device for the grain tessellation (auto|cpu|cuda[:N])")
    dft = sub.add_parser("defaults", help="write the two embedded default scans")
    dft.add_argument("--out", required=True)
    dft.add_argument("--overwrite", action="store_true")
    rl = sub.add_parser("realism", help="write a thin slab at the real slice's pixel size (0.06 um) for realism.py")
    rl.add_argument("--out", required=True, help="output TIFF path")
    rl.add_argument("--seed", type=int, default=7)
    a = ap.parse_args(argv)

    from nmc_assets.beamline.defaults import preset_config, write_default_scans
    from nmc_assets.beamline.simulate import simulate_scan, write_scan

    t0 = time.perf_counter()
    if a.command == "simulate":
        tag = "" if a.preset == "default" else f"{a.preset}_"
        scan_id = a.scan_id or f"virtual_{tag}c{a.cycles}_s{a.seed}"
        try:
            config = preset_config(a.preset, shape=tuple(a.shape), voxel_size_um=a.voxel_size, cycles=a.cycles,
                                   seed=a.seed, device=a.device)
            scan = simulate_scan(config)
            paths = write_scan(scan, a.out, scan_id)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(json.dumps({"scan_id": scan_id, "n_particles": scan.sidecar["n_particles"],
                          "solid_fraction": round(scan.sidecar["solid_fraction"], 4),
                          "timings_s": {k: round(v, 2) for k, v in scan.timings_s.items()},
                          "files": {k: str(v) for k, v in paths.items()}}, indent=2))
    elif a.command == "realism":
        from nmc_assets.beamline.realism import write_realism_slab

        path = write_realism_slab(a.out, seed=a.seed)
        print(json.dumps({"volume": str(path), "seconds": round(time.perf_counter() - t0, 1)}, indent=2))
    else:
        paths = write_default_scans(a.out, overwrite=a.overwrite)
        print(json.dumps({"volumes": [str(p) for p in paths], "seconds": round(time.perf_counter() - t0, 1)},
                         indent=2))
    return 0
