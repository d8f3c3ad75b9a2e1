"""The training-patch augmentation (``model.augmenter``): shapes, label consistency, determinism, knobs."""

from dataclasses import fields, replace

import numpy as np
import pytest

from nmc_assets.segmentation.model import TrainConfig, augmenter, zoom_pair

#: every augmentation knob off
OFF = TrainConfig(aug_flip=False, aug_scale=0, aug_shift=0, aug_noise=0, aug_gamma=0, aug_contrast=0,
                  aug_smooth_noise=0, aug_blur=0, aug_zoom=0)
KNOBS = {"aug_flip": True, "aug_scale": 0.3, "aug_shift": 0.15, "aug_noise": 0.05, "aug_gamma": 0.5,
         "aug_contrast": 0.3, "aug_smooth_noise": 0.06, "aug_blur": 1.0, "aug_zoom": 0.25}


def disks(n: int = 96):
    yy, xx = np.mgrid[:n, :n]
    lbl = np.zeros((n, n), np.uint16)
    lbl[(yy - 48) ** 2 + (xx - 48) ** 2 < 12 ** 2] = 1
    lbl[(yy - 12) ** 2 + (xx - 80) ** 2 < 7 ** 2] = 2
    img = np.where(lbl > 0, 0.9, 0.2).astype(np.float32) + np.float32(0.01) * (xx / n).astype(np.float32)
    return img, lbl


def test_every_knob_is_a_train_config_setting():
    names = {f.name for f in fields(TrainConfig)}
    assert set(KNOBS) <= names and "aug_min_fragment_px" in names


def test_all_knobs_off_is_the_identity():
    img, lbl = disks()
    x, y = augmenter(0, OFF)(img, lbl)
    np.testing.assert_array_equal(x, img)
    np.testing.assert_array_equal(y, lbl)


@pytest.mark.parametrize("knob", sorted(KNOBS))
def test_each_knob_alone_changes_the_patch_and_keeps_shapes(knob):
    img, lbl = disks()
    aug = augmenter(1, replace(OFF, **{knob: KNOBS[knob]}))
    changed = False
    for _ in range(4):
        x, y = aug(img, lbl)
        assert x.shape == img.shape and x.dtype == np.float32 and y.shape == lbl.shape and y.dtype == lbl.dtype
        changed |= not (np.array_equal(x, img) and np.array_equal(y, lbl))
        if knob not in ("aug_flip", "aug_zoom"):  # geometry untouched: labels identical
            np.testing.assert_array_equal(y, lbl)
    assert changed


def test_same_seed_same_patches():
    img, lbl = disks()
    a, b, c = augmenter(5), augmenter(5), augmenter(6)
    out_a = [a(img, lbl) for _ in range(3)]
    out_b = [b(img, lbl) for _ in range(3)]
    for (xa, ya), (xb, yb) in zip(out_a, out_b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(c(img, lbl)[0], out_a[0][0])


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_zoom_scales_label_area_and_keeps_labels_on_the_image(factor):
    img, lbl = disks()
    only = np.where(lbl == 1, lbl, 0).astype(np.uint16)  # the central disk, far from the border
    x, y = zoom_pair(np.where(only > 0, 0.9, 0.2).astype(np.float32), only, factor, np.random.default_rng(0), 6)
    assert x.shape == only.shape and y.max() == 1
    assert (y > 0).sum() / (only > 0).sum() == pytest.approx(factor ** 2, rel=0.08)
    assert (x[y > 0] > 0.55).mean() > 0.9 and (x[y == 0] < 0.55).mean() > 0.99  # labels sit on the bright disk


def test_zoom_splits_and_drops_fragments():
    img, lbl = disks()
    x, y = zoom_pair(img, lbl, 0.8, np.random.default_rng(2), 6)
    ids, sizes = np.unique(y[y > 0], return_counts=True)
    assert sizes.min() >= 6 and np.array_equal(ids, np.arange(1, len(ids) + 1))
    assert len(ids) >= 2
    np.testing.assert_array_equal(zoom_pair(img, lbl, 1.0, np.random.default_rng(0))[1], lbl)
