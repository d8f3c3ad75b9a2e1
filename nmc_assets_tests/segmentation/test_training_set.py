import json

import numpy as np
import pytest
import tifffile

from nmc_assets.segmentation.scaling import bin_factor_for, bin_labels_mode, bin_mean, bin_volume_slabwise, upsample_labels_slabs
from nmc_assets.segmentation.training_set import (
    load_annotations,
    load_training_set,
    relabel_slice,
    save_training_set,
    scan_slices,
    split_scans,
    volume_slices,
)

from .constructed import ball_labels


def test_bin_factor_and_binning():
    assert bin_factor_for(0.07) == 6 and bin_factor_for(0.1) == 4 and bin_factor_for(0.2) == 2 and bin_factor_for(0.5) == 1
    assert bin_factor_for(0.07, 0.25) == 4
    with pytest.raises(ValueError):
        bin_factor_for(0)
    v = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    b = bin_mean(v, 2)
    assert b.shape == (3, 3, 4)
    assert b[0, 0, 0] == pytest.approx(v[:2, :2, :2].mean())
    assert np.allclose(bin_volume_slabwise(v, 2), b)
    assert np.allclose(bin_volume_slabwise(v, 2, normalize=(0.0, 2.0)), b / 2)


def test_label_down_and_upsampling_round_trip():
    lab = ball_labels((20, 24, 28), [(10, 12, 14)], [7])
    small = bin_labels_mode(lab, 2)
    assert small.shape == (10, 12, 14) and set(np.unique(small)) == {0, 1}
    full = np.concatenate([blk for _, blk in upsample_labels_slabs(small, 2, lab.shape, slab=6)])
    assert full.shape == lab.shape
    inter = ((full == 1) & (lab == 1)).sum()
    assert inter / ((full == 1) | (lab == 1)).sum() > 0.8


def test_relabel_slice_splits_disconnected_pieces_keeps_touching():
    s = np.zeros((10, 10), np.uint16)
    s[0:3, 0:3] = 5
    s[6:9, 6:9] = 5  # same id, disconnected
    s[0:3, 3:6] = 7  # touches id 5
    out = relabel_slice(s)
    assert out.max() == 3


def test_volume_slices_three_views_and_padding():
    lab = ball_labels((16, 20, 24), [(8, 10, 12)], [6])
    img = (lab > 0).astype(np.float32)
    sets = volume_slices(img, lab, "s", slice_step=1, min_size=32)
    assert [s.view for s in sets] == ["xy", "xz", "yz"]
    # only slices that cut the ball are kept
    assert len(sets[0]) == 13 and all(i.shape == (32, 32) for i in sets[0].images)
    for s in sets:
        for im, lb in zip(s.images, s.labels):
            assert im.shape == lb.shape and lb.max() == 1


def test_scan_slices_bins_to_working_pixel():
    lab = ball_labels((32, 40, 40), [(16, 20, 20)], [10])
    img = np.where(lab > 0, 200, 50).astype(np.float32)
    sets = scan_slices(img, lab, voxel_size_um=0.125, source="s", working_pixel_um=0.25, slice_step=1)
    assert sets[0].images[0].shape == (20, 20) and len(sets[0]) <= 16
    assert 0.9 < max(i.max() for i in sets[0].images) < 1.1  # normalised


def test_split_scans_holds_out_whole_scans():
    train, val = split_scans(["a", "b", "c", "d"], 0.25, seed=1)
    assert len(val) == 1 and not set(train) & set(val) and sorted(train + val) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="at least two"):
        split_scans(["a"])


def test_annotations_and_save_load_round_trip(tmp_path):
    ann = tmp_path / "ann"
    ann.mkdir()
    lab = np.zeros((40, 40), np.uint16)
    lab[5:15, 5:15] = 1
    lab[20:35, 20:35] = 2
    tifffile.imwrite(ann / "cut1.tif", (lab > 0).astype(np.uint8) * 200)
    tifffile.imwrite(ann / "cut1.labels.tif", lab)
    (ann / "cut1.json").write_text(json.dumps({"pixel_size_um": 0.125}))
    a = load_annotations(ann, working_pixel_um=0.25)
    assert len(a) == 1 and a.images[0].shape == (20, 20) and a.labels[0].max() == 2
    tifffile.imwrite(ann / "orphan.labels.tif", lab)
    with pytest.raises(FileNotFoundError, match="orphan"):
        load_annotations(ann)
    (ann / "orphan.labels.tif").unlink()

    vol = ball_labels((16, 20, 24), [(8, 10, 12)], [6])
    train = volume_slices(vol.astype(np.float32), vol, "s1") + [a]
    val = volume_slices(vol.astype(np.float32), vol, "s2")
    save_training_set(tmp_path / "ts", train, val, {"train_scans": ["s1"], "val_scans": ["s2"], "working_pixel_um": 0.25})
    index, data = load_training_set(tmp_path / "ts")
    assert index["val_scans"] == ["s2"]
    assert len(data["train"][0]) == sum(len(s) for s in train) and len(data["val"][0]) == sum(len(s) for s in val)
    assert all(i.dtype == np.float32 for i in data["train"][0])
    with pytest.raises(FileNotFoundError, match="index.json"):
        load_training_set(tmp_path)
