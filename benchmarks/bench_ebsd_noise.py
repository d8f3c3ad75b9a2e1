"""What misindexing noise does to EBSD grain sections, without the calibration (cheap: ~1 min).

Virtual ``.ang`` maps (as ``bench_ebsd_calibration``: R = 3 um, 0.1 um step, the packaged reference, half
square / half hexagonal grid) with and without misindexing noise (30 % of boundary points, 2 % of the
others: random orientation, CI < 0.08, so masked) go through the EBSD path (minimum grain size 3) with each
fill of the masked points (``nearest``: the fill before 2026-11-30; ``majority``: weighted vote of the
neighbouring grains; ``default``: indexed points next to a particle belong to it, low-quality points whose
orientation matches a neighbouring grain join it, then the majority). Each
map carries its truth, so per map: the section descriptors (grain area, aspect ratio, angle to the radial
direction, grains per section; ``nmc_assets.synthesis.sections``) against the truth label sections of the same
particles (1-Wasserstein distance), the per-grain IoU of the rebuilt grains with the truth grains (truth
grains of >= 10 points, best match), and the fraction of masked points the fill gives to another grain
than the truth's. The two real maps in ``../shared/data/ebsd`` go through the nearest and the default fill too
(how many section points change; the DefDAP map also with its high-MAD points masked).

    .venv/bin/python benchmarks/bench_ebsd_noise.py [--n-maps 64]

Appends one JSON line per run to ``benchmarks/results/ebsd_noise.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO, RESULTS, load_average

from _synthesis_common import reference

#: Fills compared: name -> SectionSettings fields. "nearest" is the path before 2026-11-30 20:00; "default" today's.
FILLS = {"nearest": {"fill_method": "nearest", "fill_by_orientation": False, "particle_rim": False},
         "majority": {"fill_method": "majority", "fill_by_orientation": False, "particle_rim": False},
         "default": {"fill_method": "majority", "fill_by_orientation": True, "particle_rim": True}}


def _maps(folder: Path, n_maps: int, clean: bool) -> list:
    import tifffile

    from nmc_assets.ebsd.readers import read_map
    from nmc_assets.ebsd.virtual import VirtualEbsdSettings, write_virtual_maps

    ref, _ = reference(n_sections=1)
    noise = {"boundary_misindex": 0.0, "low_confidence_fraction": 0.0} if clean else {}
    out = []
    for grid, seed in (("square", 3024), ("hex", 3025)):
        paths = write_virtual_maps(folder / grid, n_maps // 2, VirtualEbsdSettings(grid=grid, radius_um=3.0, step_um=0.1, **noise),
                                   params=ref, seed=seed)
        out += [(read_map(p), tifffile.imread(p.parent / "truth" / f"{p.stem}.tif")) for p in paths]
    return out


def _filled(m, s):
    """(points in grains, section labels after the fill, particle mask) of the whole map (``particle_grains``)."""
    from nmc_assets.ebsd.particles import particle_grains

    pg = particle_grains(m, s)
    region = pg["particles"] > 0
    return np.where(region, pg["grains"], 0), pg["filled"], region


def _scores(measured, lab, region, truth):
    """Best IoU per truth grain of >= 10 points; wrong-fill count and masked count (masked points whose truth
    grain has measured points, judged by the rebuilt grain holding most of them)."""
    t, g = truth.ravel().astype(np.int64), lab.ravel().astype(np.int64)
    nt, ng = t.max() + 1, g.max() + 1
    inter = np.bincount(t * ng + g, minlength=nt * ng).reshape(nt, ng)
    at, ag = inter.sum(1), inter.sum(0)
    iou = inter[1:, 1:] / np.maximum(at[1:, None] + ag[None, 1:] - inter[1:, 1:], 1)
    best = iou.max(1)[at[1:] >= 10]
    meas = np.bincount(t * ng + measured.ravel().astype(np.int64), minlength=nt * ng).reshape(nt, ng)[:, 1:]
    owner = np.where(meas.max(1) > 0, meas.argmax(1) + 1, 0)
    want = owner[truth]
    masked = region & (measured == 0) & (truth > 0) & (want > 0)
    return best, int((lab[masked] != want[masked]).sum()), int(masked.sum())


def measure(maps, fill: str) -> dict:
    from nmc_assets.ebsd.particles import SectionSettings, map_sections
    from nmc_assets.particles.sections import Section
    from nmc_assets.synthesis.sections import descriptor_distances, descriptor_samples

    s = SectionSettings(min_grain_size=3, **FILLS[fill])
    t0 = time.perf_counter()
    sections, ious, wrong, masked, missing, area = [], [], 0, 0, 0, 0
    for m, truth in maps:
        sections += map_sections(m, s)[0]
        measured, lab, region = _filled(m, s)
        missing, area = missing + int((~region & (truth > 0)).sum()), area + int((truth > 0).sum())
        b, w, n = _scores(measured, lab, region, truth)
        ious.append(b)
        wrong, masked = wrong + w, masked + n
    seconds = time.perf_counter() - t0
    truth_secs = [Section(t.astype(np.uint16), m.step_um, f"t{i}") for i, (m, t) in enumerate(maps)]
    obs, ref = descriptor_samples(sections), descriptor_samples(truth_secs)
    iou = np.concatenate(ious)
    return {"fill": fill, "n_sections": len(sections), "particle_missing_fraction": missing / max(area, 1), "w1_vs_truth": descriptor_distances(obs, ref),
            "mean": {k: float(v.mean()) for k, v in obs.items()}, "truth_mean": {k: float(v.mean()) for k, v in ref.items()},
            "split_half_w1_truth": descriptor_distances(descriptor_samples(truth_secs[::2]), descriptor_samples(truth_secs[1::2])),
            "iou_mean": float(iou.mean()), "iou_ge_0.8": float((iou >= 0.8).mean()), "masked_points": masked,
            "masked_wrong_fraction": wrong / max(masked, 1), "seconds": seconds}


def real_maps() -> list[dict]:
    """The nearest and the default fill on the shared real maps (fully indexed, so only points of grains below
    the minimum size are filled): sections, grains, section points that differ. On the DefDAP map also with its high-MAD points
    masked (MAD > 0.9 deg, 5 % of the points), scored against the grains of the unmasked map (IoU, fill errors)."""
    from dataclasses import replace

    from nmc_assets.ebsd.particles import SectionSettings, map_sections
    from nmc_assets.ebsd.readers import read_map

    out = []
    for rel in ("defdap/testDataEBSD.cpr", "orix_sdss/sdss_ferrite_austenite.ang"):
        path = REPO.parent / "shared" / "data" / "ebsd" / rel
        if not path.is_file():
            continue
        m = read_map(path)
        base = SectionSettings(min_particle_area_px=20)
        res = {f: map_sections(m, replace(base, **FILLS[f])) for f in ("nearest", "default")}
        a, b = res["nearest"][0], res["default"][0]
        row = {"map": rel, "indexed_fraction": float(m.indexed.mean()), "sections": [len(a), len(b)],
               "grains_rebuilt": int(res["default"][2].max()), "section_grains": [int(sum(x.labels.max() for x in y)) for y in (a, b)],
               "section_points": sum(int((x.labels > 0).sum()) for x in a),
               "points_changed": sum(int((x.labels != y.labels).sum()) for x, y in zip(a, b))}
        if "mad" in m.quality:
            reference_labels = _filled(m, base)[1]
            for f in FILLS:
                measured, lab, region = _filled(m, replace(base, max_mad_deg=0.9, **FILLS[f]))
                best, wrong, masked = _scores(measured, lab, region, reference_labels)
                row[f"mad_masked_{f}"] = {"masked_points": masked, "masked_wrong_fraction": wrong / max(masked, 1),
                                         "iou_mean": float(best.mean()), "iou_ge_0.8": float((best >= 0.8).mean())}
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-maps", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="noisy maps only")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clean in (False, True):
            maps = _maps(Path(tmp) / ("clean" if clean else "noisy"), args.n_maps, clean)
            rows += [{"maps": "no noise" if clean else "noisy", **measure(maps, f)} for f in FILLS]
            if args.quick:
                break
    record = {"date": time.strftime("%Y-%m-%d %H:%M"), "n_maps": args.n_maps, "rows": rows, "real_maps": real_maps(),
              "load_average_end": load_average()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "ebsd_noise.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    for r in rows:
        print(r["maps"], r["fill"], {k: round(v, 3) for k, v in r["w1_vs_truth"].items()}, {k: round(v, 3) for k, v in r["mean"].items()},
              f"IoU {r['iou_mean']:.3f} ({r['iou_ge_0.8']:.3f} >= 0.8), masked wrong {r['masked_wrong_fraction']:.3f}, "
              f"particle points missing {r['particle_missing_fraction']:.4f}")
    print("truth", {k: round(v, 3) for k, v in rows[0]["truth_mean"].items()}, "split-half", {k: round(v, 3) for k, v in rows[0]["split_half_w1_truth"].items()})
    for r in record["real_maps"]:
        print(r)


if __name__ == "__main__":
    main()
