"""The low-confidence share and the gallery of the least confident particles."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from nmc_assets.segmentation.confidence_check import gallery_caption, gallery_png, least_confident, low_confidence_summary, particle_tile
from nmc_assets_tests.segmentation.constructed import ball_labels


def _table(conf):
    n = len(conf)
    return pd.DataFrame({"particle_id": np.arange(1, n + 1), "segmentation_confidence": conf,
                         **{c: np.full(n, 0.5) for c in ("conf_view_agreement", "conf_boundary_margin",
                                                         "conf_size_agreement", "conf_shape")}})


def test_share_below_the_threshold_decides():
    t = _table([0.9, 0.2, 0.8, 0.4, np.nan])
    r = low_confidence_summary(t, threshold=0.5, max_share=0.5)
    assert r == {"passed": True, "computed": True, "particles": 5, "scored": 4, "low": 2, "low_share": 0.5,
                 "median": pytest.approx(0.6)}
    assert not low_confidence_summary(t, threshold=0.5, max_share=0.49)["passed"]
    assert low_confidence_summary(t, threshold=0.1, max_share=0.0)["passed"]


def test_no_confidence_is_not_computed_and_bad_settings_fail():
    r = low_confidence_summary(_table([np.nan, np.nan]), 0.5, 0.1)
    assert r["passed"] and not r["computed"] and r["scored"] == 0
    assert low_confidence_summary(_table([]), 0.5, 0.1)["computed"]  # no particles: nothing to flag
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        low_confidence_summary(_table([0.5]), 1.5, 0.1)


def test_least_confident_order():
    t = _table([0.9, 0.2, np.nan, 0.2, 0.7])
    assert least_confident(t, 3)["particle_id"].tolist() == [2, 4, 5]


def test_gallery_tiles_outline_the_particle():
    from PIL import Image

    labels = ball_labels((30, 40, 60), [(15, 20, 15), (15, 20, 42)], [8, 8])
    tomo = np.where(labels > 0, 1.0, 0.2).astype(np.float32)
    v = 0.5
    rows = pd.DataFrame({"particle_id": [1, 2], "z_um": [7.5, 7.5], "y_um": [10.0, 10.0], "x_um": [7.5, 21.0],
                         "volume_um3": [4 / 3 * np.pi * 4**3] * 2, "segmentation_confidence": [0.1, 0.3],
                         **{c: [0.5, 0.5] for c in ("conf_view_agreement", "conf_boundary_margin", "conf_size_agreement", "conf_shape")}})
    tile = particle_tile(tomo, labels, rows.iloc[0], v, side=64)
    assert tile.shape == (64, 64, 3) and tile.dtype == np.uint8
    assert ((tile == (255, 0, 0)).all(-1)).sum() > 20  # the outline in red
    png = gallery_png(tomo, labels, rows, v, side=64)
    assert Image.open(io.BytesIO(png)).size == (2 * 64 + 4, 64)
    assert gallery_png(tomo, labels, rows.iloc[:0], v) is None
    assert gallery_caption(rows).count("(0.") == 2
