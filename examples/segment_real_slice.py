"""Segment the real NMC811 slice (ESRF ID16A, Li et al. 2022) with the shipped 2D StarDist model at
three assumed pixel sizes, side by side.

    .venv/bin/python examples/segment_real_slice.py \
        [--image ../shared/data/example_xy_left.tif] [--pixel-sizes 0.06 0.07 0.08] \
        [--model data/models/stardist/nmc_default] [--out docs/real_slice_overlay.png]

The pixel size is not recorded in the file (the study names its models for 70 nm and 100 nm data), so
the slice is segmented at each assumed size (``segment_image_2d`` defaults: boundaries refined to the
intensity edge at full resolution, pieces of one particle merged). Writes the overlay PNG (one panel per
assumption, particle boundaries in yellow on the image, the count in each title; the default output is
the README's figure), ``data/examples/real_slice_<size>.labels.tif`` (uint32 labels, not committed), and
prints the counts and sizes. The consistency between the assumptions is measured by
``benchmarks/bench_real_slice.py``.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def overlay_panels(image, results: list[tuple[float, "object"]], title: str = ""):
    """PNG bytes (palette, small): one panel per (pixel size, labels), boundaries on the image."""
    import numpy as np
    from PIL import Image
    from scipy import ndimage as ndi

    from nmc_assets.previews import pyplot

    plt = pyplot()
    h, w = image.shape
    fig, axes = plt.subplots(len(results), 1, figsize=(9, len(results) * 9 * h / w + 0.5 * len(results)))
    axes = np.atleast_1d(axes)
    lo, hi = np.percentile(image, [0.5, 99.5])
    for ax, (px, labels) in zip(axes, results):
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        for i, sl in enumerate(ndi.find_objects(labels), start=1):
            if sl is None:
                continue
            box = tuple(slice(max(0, s.start - 1), min(n, s.stop + 1)) for s, n in zip(sl, labels.shape))
            yy, xx = np.mgrid[box]
            ax.contour(xx, yy, labels[box] == i, levels=[0.5], colors="yellow", linewidths=0.9)
        areas = np.bincount(labels.ravel())[1:] * px**2
        eq_d = 2 * np.sqrt(areas[areas > 0] / np.pi)
        ax.set_title(f"assumed {px} um/px: {int(labels.max())} particles (median equivalent diameter {np.median(eq_d):.1f} um)", fontsize=10)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(colors=64)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import tifffile

    from nmc_assets.segmentation.model import DEFAULT_MODEL_NAME, shipped_model_dir
    from nmc_assets.segmentation.pipeline import segment_image_2d

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=str(REPO.parent / "shared" / "data" / "example_xy_left.tif"))
    ap.add_argument("--pixel-sizes", type=float, nargs="+", default=[0.06, 0.07, 0.08])
    ap.add_argument("--model", default=str(shipped_model_dir(DEFAULT_MODEL_NAME)))
    ap.add_argument("--out", default=str(REPO / "docs" / "real_slice_overlay.png"))
    ap.add_argument("--labels-dir", default=str(REPO / "data" / "examples"))
    ap.add_argument("--min-area-um2", type=float, default=3.0)
    a = ap.parse_args(argv)

    image_path = Path(a.image)
    if not image_path.exists():
        print(f"error: image {image_path} not found", file=sys.stderr)
        return 2
    image = tifffile.imread(image_path)
    if image.ndim != 2:
        print(f"error: {image_path}: expected a 2D slice, got shape {image.shape}", file=sys.stderr)
        return 2
    labels_dir = Path(a.labels_dir)
    labels_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for px in a.pixel_sizes:
        labels, info = segment_image_2d(a.model, image, px, min_area_um2=a.min_area_um2)
        results.append((px, labels))
        tifffile.imwrite(labels_dir / f"real_slice_{px}.labels.tif", labels, compression="zlib")
        areas = np.bincount(labels.ravel())[1:] * px**2
        eq_d = 2 * np.sqrt(areas[areas > 0] / np.pi)
        print(f"{image_path.name} at {px} um/px: {info['n_objects']} particles (equivalent diameter {np.median(eq_d):.1f} um median, "
              f"{eq_d.min():.1f}-{eq_d.max():.1f} um); {info['merged_seeds']} shallow seeds and {info['merged']} pieces merged; "
              f"model {Path(a.model).name}; prediction {info['predict_seconds']} s on a {info['working_shape']} working image")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(overlay_panels(image, results, f"{image_path.name} (ID16A-NI, ESRF; Li et al., Science 2022, GPL-3.0), "
                                                   f"StarDist model {Path(a.model).name}"))
    print(f"overlay: {out} ({out.stat().st_size / 1e6:.2f} MB)")
    print(f"labels:  {labels_dir}/real_slice_<size>.labels.tif")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
