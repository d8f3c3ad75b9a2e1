"""Segment the real NMC811 slice (ESRF ID16A, Li et al. 2022) with the shipped 2D StarDist model.

    .venv/bin/python examples/segment_real_slice.py \
        [--image ../shared/data/example_xy_left.tif] [--pixel-size-um 0.07] \
        [--model data/models/stardist/nmc_default] [--out data/examples/real_slice_overlay.png]

Writes the overlay PNG (labels in colour, outlines in yellow; not committed, data/ is ignored) and
``<out>.labels.tif`` (uint32 labels), and prints how many particles it found. The pixel size is not
recorded in the file; 0.07 um (70 nm, the study's 'LIB100_70nm' data) puts its particles at 5-12 um.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import tifffile

    from nmc_assets.previews import overlay_labels, png_bytes
    from nmc_assets.segmentation.model import DEFAULT_MODEL_NAME, shipped_model_dir
    from nmc_assets.segmentation.pipeline import segment_image_2d

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=str(REPO.parent / "shared" / "data" / "example_xy_left.tif"))
    ap.add_argument("--pixel-size-um", type=float, default=0.07)
    ap.add_argument("--model", default=str(shipped_model_dir(DEFAULT_MODEL_NAME)))
    ap.add_argument("--out", default=str(REPO / "data" / "examples" / "real_slice_overlay.png"))
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
    labels, info = segment_image_2d(a.model, image, a.pixel_size_um, min_area_um2=a.min_area_um2)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png_bytes(overlay_labels(image, labels)))
    tifffile.imwrite(out.with_suffix(".labels.tif"), labels, compression="zlib")
    areas = np.bincount(labels.ravel())[1:] * a.pixel_size_um**2
    eq_d = 2 * np.sqrt(areas / np.pi)
    print(f"{image_path.name}: {info['n_objects']} particles (equivalent diameter {np.median(eq_d):.1f} um median, "
          f"{eq_d.min():.1f}-{eq_d.max():.1f} um) at {a.pixel_size_um} um/px; model {Path(a.model).name}; "
          f"prediction {info['predict_seconds']} s on a {info['working_shape']} working image")
    print(f"overlay: {out}")
    print(f"labels:  {out.with_suffix('.labels.tif')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
