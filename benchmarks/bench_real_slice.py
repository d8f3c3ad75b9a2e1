"""The real slice at assumed pixel sizes 0.06, 0.07 and 0.08 um: the same particles? (issue 15)

    .venv/bin/python benchmarks/bench_real_slice.py [--image ../shared/data/example_xy_left.tif] \
        [--model data/models/stardist/nmc_default] [--pixel-sizes 0.06 0.07 0.08] \
        [--out benchmarks/results/real_slice.md]

The slice (655 x 1024 px, ID16A-NI, ESRF, Li et al. 2022; no pixel size in the file) goes through
``segment_image_2d`` at each assumed pixel size twice: the former path (``refine=False``: labels back to
the input grid by nearest, no refinement, no merging: ``refine=False, seed_h=None``) and today's defaults
(shallow seeds merged, full-resolution refinement, merging of pieces); then the defaults with one merge
setting changed at a time. Measures, all on the full-resolution grid:

- particles: objects after the minimum area (3 um^2);
- fragments: objects with less than 25 % of the area of another object within 2 px of them (a small
  piece next to a larger particle; a real small particle pressed against a large one counts too);
- matched to the reference (0.07 um): share of this run's objects with an object of the reference
  at IoU >= 0.5 (one-to-one), and the median IoU of those pairs; also every pair of assumptions;
- edge: mean gradient magnitude of the image (Gaussian sigma 1.5 px, the same for every assumption) on
  the outer boundary (labelled rim pixels next to background and background pixels next to a label)
  against 2 px inside and 2 px outside; boundary / mean(inside, outside) > 1 means the boundary sits
  on the intensity edge, not beside it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, machine_line  # noqa: E402

sys.path.insert(0, str(REPO))

FRAGMENT_AREA_SHARE = 0.25
FRAGMENT_GAP_PX = 2
EDGE_SIGMA_PX = 1.5
EDGE_OFFSET_PX = 2
#: merge settings around the defaults (seed_h 0.1, merge_dip 0.5, merge_solidity 0.9): how much the counts hang on them
VARIANTS = (("no seed merging (seed_h None)", {"seed_h": None}), ("seed_h 0.05", {"seed_h": 0.05}), ("seed_h 0.2", {"seed_h": 0.2}),
            ("no intensity merging (merge_dip None)", {"merge_dip": None}), ("merge_dip 0.3", {"merge_dip": 0.3}),
            ("merge_dip 0.7", {"merge_dip": 0.7}), ("merge_solidity 0.85", {"merge_solidity": 0.85}),
            ("merge_solidity 0.95", {"merge_solidity": 0.95}), ("neither merge", {"seed_h": None, "merge_dip": None}),
            ("contacts kept in the refinement (open_contacts False)", {"open_contacts": False}))


def fragments(labels: np.ndarray, share: float = FRAGMENT_AREA_SHARE, gap_px: int = FRAGMENT_GAP_PX) -> list[int]:
    """Ids of objects with less than ``share`` of the area of another object within ``gap_px`` pixels."""
    from scipy import ndimage as ndi

    areas = np.bincount(labels.ravel())
    out = []
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        box = tuple(slice(max(0, s.start - gap_px), s.stop + gap_px) for s in sl)
        lab = labels[box]
        near = ndi.binary_dilation(lab == i, iterations=gap_px) & (lab > 0) & (lab != i)
        if near.any() and areas[i] < share * areas[np.unique(lab[near])].max():
            out.append(i)
    return out


def unmatched(a: np.ndarray, ids: list[int], b: np.ndarray) -> list[int]:
    """Those ``ids`` of ``a`` with no object of ``b`` at IoU >= 0.5."""
    from nmc_assets.segmentation.metrics import overlap_table

    pairs = overlap_table(a, b)[4]
    hit = set(pairs[pairs[:, 2] >= 0.5, 0].astype(int)) if len(pairs) else set()
    return [i for i in ids if i not in hit]


def match(a: np.ndarray, b: np.ndarray) -> tuple[int, list[float]]:
    """Objects of ``a`` with an object of ``b`` at IoU >= 0.5 (count) and those IoUs."""
    from nmc_assets.segmentation.metrics import overlap_table

    pairs = overlap_table(a, b)[4]
    hit = pairs[pairs[:, 2] >= 0.5] if len(pairs) else pairs
    return len(hit), [float(x) for x in hit[:, 2]] if len(hit) else []


def edge_measure(image: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean gradient magnitude on the outer boundary, ``EDGE_OFFSET_PX`` inside and outside."""
    from scipy import ndimage as ndi

    grad = ndi.gaussian_gradient_magnitude(image.astype(np.float32), EDGE_SIGMA_PX)
    fg = labels > 0
    d_in = ndi.distance_transform_edt(fg)
    d_out = ndi.distance_transform_edt(~fg)
    valid = np.zeros(fg.shape, bool)
    m = EDGE_OFFSET_PX + 2
    valid[m:-m, m:-m] = True  # the image border is no particle edge
    boundary = valid & (((d_in > 0) & (d_in <= 1)) | ((d_out > 0) & (d_out <= 1)))
    inside = valid & (np.abs(d_in - EDGE_OFFSET_PX - 0.5) <= 0.5)
    outside = valid & (np.abs(d_out - EDGE_OFFSET_PX - 0.5) <= 0.5)
    b, i, o = (float(grad[x].mean()) for x in (boundary, inside, outside))
    return {"boundary": b, "inside": i, "outside": o, "ratio": b / (0.5 * (i + o))}


def run(image: np.ndarray, model: str, pixel_sizes: list[float]) -> dict:
    from nmc_assets.segmentation.pipeline import segment_image_2d

    out = {}
    for px in pixel_sizes:
        for mode, kwargs in (("before", {"refine": False, "seed_h": None}), ("after", {})):
            t0 = time.time()
            labels, info = segment_image_2d(model, image, px, **kwargs)
            out[(px, mode)] = {"labels": labels, "info": info, "seconds": time.time() - t0, "fragments": fragments(labels),
                               "edge": edge_measure(image, labels)}
        for name, kwargs in VARIANTS:
            labels, info = segment_image_2d(model, image, px, **kwargs)
            out[(px, name)] = {"labels": labels, "info": info, "fragments": fragments(labels)}
    return out


def report(res: dict, pixel_sizes: list[float], ref: float, image_name: str, model: str, image: np.ndarray) -> str:
    lines = [f"# Real slice at assumed pixel sizes ({image_name})", "", machine_line(), "",
             f"`benchmarks/bench_real_slice.py`, model `{model}`; reference assumption {ref} um. "
             "Before = no refinement and no merging (`refine=False, seed_h=None`: nearest upsampling of the grown "
             "StarDist instances); after = the defaults (shallow seeds merged, full-resolution refinement with "
             "contacts opened, pieces with no dip and a convex union merged). Fragments (not in ref): how many "
             "of them have no match in the reference run. Definitions in the script's docstring.", ""]
    lines += ["| assumed um/px | path | particles | fragments (not in ref) | matched to ref (IoU>=0.5) | median matched IoU "
              "| edge: boundary / inside / outside | edge ratio | merged: seeds + pieces | seconds |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for px in pixel_sizes:
        for mode in ("before", "after"):
            r = res[(px, mode)]
            lab, e = r["labels"], r["edge"]
            n = int(lab.max())
            k, ious = match(lab, res[(ref, mode)]["labels"])
            new = unmatched(lab, r["fragments"], res[(ref, mode)]["labels"])
            lines.append(f"| {px} | {mode} | {n} | {len(r['fragments'])} ({len(new)}) | {k}/{n} = {k / max(n, 1):.2f} | "
                         f"{np.median(ious) if ious else float('nan'):.3f} | {e['boundary']:.2f} / {e['inside']:.2f} / {e['outside']:.2f} | "
                         f"{e['ratio']:.2f} | {r['info'].get('merged_seeds', 0)} + {r['info'].get('merged', 0)} | {r['seconds']:.1f} |")
    lines += ["", "Pairs of assumptions (objects of A matched in B at IoU >= 0.5; median IoU of the pairs):", "",
              "| A | B | path | matched / objects in A | objects in B | median IoU |", "| --- | --- | --- | --- | --- | --- |"]
    for i, a in enumerate(pixel_sizes):
        for b in pixel_sizes[i + 1:]:
            for mode in ("before", "after"):
                la, lb = res[(a, mode)]["labels"], res[(b, mode)]["labels"]
                k, ious = match(la, lb)
                lines.append(f"| {a} | {b} | {mode} | {k}/{int(la.max())} | {int(lb.max())} | {np.median(ious) if ious else float('nan'):.3f} |")
    lines += ["", "Merge settings (refinement on; one setting changed from the defaults at a time): particles / fragments / "
              "seed merges + intensity merges; matched to the reference run with the same settings (IoU >= 0.5); edge ratio:", "",
              "| setting | " + " | ".join(f"{px} um" for px in pixel_sizes) + " |", "| --- |" + " --- |" * len(pixel_sizes)]
    for name in ["after"] + [v[0] for v in VARIANTS]:
        cells = []
        for px in pixel_sizes:
            r, lab_ref = res[(px, name)], res[(ref, name)]["labels"]
            n, k = int(r["labels"].max()), match(r["labels"], lab_ref)[0]
            cells.append(f"{n} / {len(r['fragments'])} / {r['info'].get('merged_seeds', 0)} + {r['info'].get('merged', 0)}; {k}/{n}; "
                         f"edge {edge_measure(image, r['labels'])['ratio']:.2f}")
        lines.append(f"| {'defaults' if name == 'after' else name} | " + " | ".join(cells) + " |")
    lines += ["", "Fragment ids (after): " + "; ".join(f"{px}: {res[(px, 'after')]['fragments']}" for px in pixel_sizes), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import tifffile

    from nmc_assets.segmentation.model import DEFAULT_MODEL_NAME, shipped_model_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=str(REPO.parent / "shared" / "data" / "example_xy_left.tif"))
    ap.add_argument("--model", default=str(shipped_model_dir(DEFAULT_MODEL_NAME)))
    ap.add_argument("--pixel-sizes", type=float, nargs="+", default=[0.06, 0.07, 0.08])
    ap.add_argument("--reference", type=float, default=0.07)
    ap.add_argument("--out", default=str(RESULTS / "real_slice.md"))
    a = ap.parse_args(argv)
    if a.reference not in a.pixel_sizes:
        ap.error("--reference must be one of --pixel-sizes")
    image = tifffile.imread(a.image)
    res = run(image, a.model, a.pixel_sizes)
    try:
        model = str(Path(a.model).resolve().relative_to(REPO))
    except ValueError:
        model = a.model
    text = report(res, a.pixel_sizes, a.reference, Path(a.image).name, model, image)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
