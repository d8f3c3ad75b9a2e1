"""Benchmark: the fast ``li2022`` feature set against the slow, readable port of ``getAllFeatures.m``.

One virtual scan (the beamline simulator, ground-truth labels, solid threshold = the median intensity
inside the labels so every particle has cracks and voids). In one run it times, CPU seconds of this
process (best of ``--repeats`` for the fast set):

1. the default set (:func:`~nmc_assets.features.compute_particle_features`, the baseline of this repo);
2. the ``li2022`` set (:func:`nmc_assets.features.li2022.li2022_raw`);
3. the port (``nmc_assets_tests/features/li2022_port.py``: a whole-volume mask per particle, as the
   seed), on the first ``--port-particles`` labels (its cost per particle does not depend on which
   particles: the whole-volume mask dominates as volumes grow) and extrapolated to all particles;
   checked equal to the ``li2022`` set on those particles (relative 1e-6, counts exact).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_li2022.py [--shape 96 320 320] [--voxel 0.25]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from _common import RESULTS, machine_line


def cpu(fn):
    t = time.process_time()
    out = fn()
    return time.process_time() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[96, 320, 320])
    ap.add_argument("--voxel", type=float, default=0.25)
    ap.add_argument("--port-particles", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "li2022.md"))
    args = ap.parse_args()

    try:
        from nmc_assets_tests.features import li2022_port
    except ImportError as exc:
        raise SystemExit(f"run from the repository root with PYTHONPATH=. ({exc})") from exc
    from nmc_assets.beamline.simulate import ScanConfig, simulate_scan
    from nmc_assets.features import compute_particle_features
    from nmc_assets.features.li2022 import li2022_raw, solid_labels

    header = machine_line()
    scan = simulate_scan(ScanConfig(shape=tuple(args.shape), voxel_size_um=args.voxel, cycles=50, seed=7))
    labels, image = scan.labels, scan.image.astype(np.float32)
    thr = float(np.median(image[labels > 0]))
    v = args.voxel
    li2022_raw(labels[:32, :64, :64], image[:32, :64, :64], v, thr)  # imports and compiled kernels warm
    compute_particle_features(labels[:32, :64, :64], image[:32, :64, :64], v, scan_id="w", cycles=50)

    t_default = min(cpu(lambda: compute_particle_features(labels, image, v, scan_id="b", cycles=50, solid_threshold=thr))[0]
                    for _ in range(args.repeats))
    runs = [cpu(lambda: li2022_raw(labels, image, v, thr)) for _ in range(args.repeats)]
    t_fast, fast = min(r[0] for r in runs), runs[0][1]
    n = len(fast)

    # the port's particle loop on the first labels only (the others stay in the volume: contact and
    # packing density see them)
    seg = solid_labels(labels, image, thr)
    first = fast["label"].to_numpy()[: args.port_particles]
    t_port_part, port_rows = cpu(lambda: li2022_port.get_all_features(seg, image, v, labels=first))
    t_port = t_port_part / len(first) * n
    port = pd.DataFrame(port_rows).set_index("label")
    got = fast.set_index("label").loc[port.index]
    cols = [c for c in port.columns if not c.startswith("loc") and c != "DisNearest"]
    worst = max(float(np.max(np.abs(got[c].to_numpy(float) - port[c].to_numpy(float))
                              / np.maximum(np.abs(port[c].to_numpy(float)), 1e-12))) for c in cols)

    lines = [
        "# li2022 feature set vs the slow port of getAllFeatures.m",
        "",
        header,
        "",
        f"Virtual scan {tuple(args.shape)} at {v} um ({labels.size / 1e6:.1f} M voxels), {n} particles with solid "
        f"voxels; solid threshold {thr:.3f} (median intensity inside the labels). CPU seconds of one process, "
        f"best of {args.repeats} (fast sets); the port timed on {len(first)} particles and extrapolated.",
        "",
        "| method | seconds | ms / particle | vs li2022 |",
        "| --- | --- | --- | --- |",
        f"| default set (baseline) | {t_default:.1f} | {1000 * t_default / n:.1f} | {t_default / t_fast:.2f}x |",
        f"| li2022 set | {t_fast:.1f} | {1000 * t_fast / n:.1f} | 1x |",
        f"| port of getAllFeatures.m (extrapolated from {t_port_part:.1f} s for {len(first)}) | {t_port:.0f} | "
        f"{1000 * t_port / n:.0f} | {t_port / t_fast:.1f}x slower |",
        "",
        f"li2022 set vs port on those {len(first)} particles (per-particle attributes; the neighbour ones need all "
        f"particles and are checked in nmc_assets_tests/features/test_li2022.py): largest relative difference "
        f"{worst:.1e}.",
    ]
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
