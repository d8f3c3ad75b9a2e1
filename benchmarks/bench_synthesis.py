"""Synthesis benchmarks: stereological GAN vs descriptor-matching baseline, shell-fit recovery, generation speed.

Run:  .venv/bin/python benchmarks/bench_synthesis.py [--gan-steps 400] [--baseline-evals 80] [--parts gan,baseline,generation,shell]
      [--scans-dir DIR]   (folder with virtual scans <scan>.labels.tif + <scan>.json for the shell-fit check)
      [--gan-seeds 0 1] [--stats-weight 0.1] [--stats-descriptors area_um2,radial_angle_deg] [--lr-final-fraction 0.1]
      [--gan-key gan_stats_match]   (GAN variants: statistics-matching term, lr decay; results under that key)

Writes benchmarks/results/synthesis.json (all figures); the Markdown summary in benchmarks/results/synthesis.md
is written from it by hand with commentary.

Calibration protocol: the 256 embedded pseudo-EBSD sections of the packaged reference
(nmc_assets/synthesis/data/reference_grain_params.json), start 50 % off (density x0.5, mean elongation x1.5,
alignment spread x1.5, log-sd 0.35 instead of 0.25, kept fixed); both methods learn the same parameters
(parameter_space.DEFAULT_LEARNED) in the same log coordinates; both are scored by the same calibration_report (seed 7: observed vs 4x as many generated sections, 4 two-sample pairs).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path


from _common import REPO as ROOT
from _synthesis_common import reference, start_params

RESULTS = ROOT / "benchmarks" / "results" / "synthesis.json"


def bench_gan(ref, sections, steps: int, seed: int, stats_weight: float | None = None, stats_descriptors=None, lr_final_fraction: float | None = None) -> dict:
    import torch

    from gan_variants import VariantConfig, VariantGan
    from nmc_assets.synthesis.quality import calibration_report

    torch.set_num_threads(1)
    cfg = VariantConfig.starting_at(start_params(ref), steps=steps, seed=seed)
    if stats_weight is not None:
        cfg.stats_weight = stats_weight
    if lr_final_fraction is not None:
        cfg.lr_final_fraction = lr_final_fraction
    if stats_descriptors:
        cfg.stats_descriptors = tuple(stats_descriptors)
    gan = VariantGan(sections, cfg)
    t0 = time.perf_counter()
    gan.train(log=lambda m: print(m, flush=True))
    seconds = time.perf_counter() - t0
    rep = calibration_report(sections, gan.calibrated_params(), ref, seed=7, learned=list(cfg.learned))
    trace = [{k: h[k] for k in ("step", "density_per_um3", "mean_elongation", "alignment_spread_deg", "wasserstein_estimate")} for h in gan.history[:: max(1, steps // 20)]]
    return {"method": "stereological WGAN-GP" + (" + statistics match" if cfg.stats_weight > 0 else ""), "stats_weight": cfg.stats_weight, "stats_descriptors": list(cfg.stats_descriptors), "lr_final_fraction": cfg.lr_final_fraction, "steps": steps, "seed": seed, "seconds": seconds, "report": rep, "trace": trace}


def bench_baseline(ref, sections, evals: int) -> dict:
    from nmc_assets.synthesis.baseline import BaselineConfig, calibrate_by_descriptors
    from nmc_assets.synthesis.quality import calibration_report

    cfg = BaselineConfig(max_evaluations=evals, initial=start_params(ref).to_dict())
    res = calibrate_by_descriptors(sections, cfg, log=lambda m: print(m, flush=True))
    rep = calibration_report(sections, res["params"], ref, seed=7, learned=list(cfg.learned))
    return {"method": "Nelder-Mead on descriptor W1", "evaluations": res["evaluations"], "seconds": res["seconds"], "objective": res["objective"], "report": rep}


def bench_start(ref, sections) -> dict:
    from nmc_assets.synthesis.quality import calibration_report

    return calibration_report(sections, start_params(ref), ref, seed=7)


def bench_generation(ref, grid_sizes=(64, 128), n_by_grid=None) -> list[dict]:
    import torch

    from nmc_assets.particles.shell import ShellParams
    from nmc_assets.synthesis.dataset import generate_dataset

    torch.set_num_threads(2)
    n_by_grid = n_by_grid or {64: 8, 128: 3}
    out = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        for g in grid_sizes:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                res = generate_dataset(Path(tmp) / "p", ShellParams(), ref, n_by_grid[g], g, seed=0, device=dev)
                total = time.perf_counter() - t0
            df = res["particles"]
            out.append({
                "device": dev, "grid": g, "n_particles": n_by_grid[g], "voxel_size_um": res["voxel_size_um"],
                "render_particles_per_s": res["particles_per_second"], "end_to_end_particles_per_s": n_by_grid[g] / total,
                "mean_grains_per_particle": float(df["n_grains"].mean()),
            })
            print(out[-1], flush=True)
    return out


def bench_shell(scans_dir: Path) -> dict:
    from nmc_assets.beamline.simulate import DEFAULT_SHELL_PARAMS
    from nmc_assets.synthesis.shell_fit import fit_shell_params, particle_shapes, read_label_volume

    shapes = []
    t0 = time.perf_counter()
    files = sorted(scans_dir.glob("*.labels.tif"))
    for f in files:
        labels, vs = read_label_volume(f)
        shapes.append(particle_shapes(labels, vs, lmax=10, n_directions=600, min_voxels=1000))
    params, summary = fit_shell_params(shapes)
    true = DEFAULT_SHELL_PARAMS
    return {
        "scans": [f.name for f in files],
        "seconds": time.perf_counter() - t0,
        "n_particles": summary["n_particles"],
        "skipped_border": summary["skipped_border"],
        "fitted": {k: getattr(params, k) for k in ("mean_diameter_um", "size_sigma", "amplitude", "exponent")},
        "simulator": {k: getattr(true, k) for k in ("mean_diameter_um", "size_sigma", "amplitude", "exponent")},
        "mean_spectrum": summary["mean_spectrum"],
        "simulator_spectrum": true.spectrum().tolist(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gan-steps", type=int, default=400)
    ap.add_argument("--gan-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--stats-weight", type=float, default=None, help="weight of the statistics-matching term (default: the grain_model asset's)")
    ap.add_argument("--stats-descriptors", default="", help="comma-separated matched descriptors (default: the grain_model asset's)")
    ap.add_argument("--lr-final-fraction", type=float, default=None, help="parameter learning rate at the last step / initial (default 1: constant, as in the asset)")
    ap.add_argument("--gan-key", default="gan", help="key of the GAN results in synthesis.json")
    ap.add_argument("--baseline-evals", type=int, default=80)
    ap.add_argument("--baseline-samples", type=int, nargs="*", default=[], help="also run the baseline on these independent observed samples (seeds, 256 sections)")
    ap.add_argument("--parts", default="gan,baseline,generation,shell")
    ap.add_argument("--scans-dir", default="")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = f"{platform.machine()} {platform.processor() or ''}".strip()
    ref, sections = reference()
    results["reference"] = ref.to_dict()
    if "start" in parts or "gan" in parts:
        results["start"] = bench_start(ref, sections)
    if "gan" in parts:
        results[args.gan_key] = [bench_gan(ref, sections, args.gan_steps, s, args.stats_weight, [d for d in args.stats_descriptors.split(",") if d], args.lr_final_fraction) for s in args.gan_seeds]
    if "baseline" in parts:
        results[f"baseline_evals_{args.baseline_evals}"] = bench_baseline(ref, sections, args.baseline_evals)
        for s in args.baseline_samples:
            results.setdefault("baseline_samples", {})[str(s)] = bench_baseline(ref, reference(s, len(sections))[1], args.baseline_evals)
    if "generation" in parts:
        results["generation"] = bench_generation(ref)
    if "shell" in parts and args.scans_dir:
        results["shell"] = bench_shell(Path(args.scans_dir))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True, default=float) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "gan"}, indent=1, default=float)[:4000])


if __name__ == "__main__":
    main()
