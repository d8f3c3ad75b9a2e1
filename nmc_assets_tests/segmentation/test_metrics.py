import numpy as np
import pytest

from nmc_assets.segmentation.metrics import accuracy_summary, border_ids, interior_matching, match_instances


def test_perfect_and_permuted_labels():
    t = np.zeros((20, 20), np.uint16)
    t[2:8, 2:8] = 1
    t[10:18, 10:18] = 2
    p = np.where(t == 1, 5, np.where(t == 2, 9, 0))
    s = accuracy_summary(t, p)
    assert s["ap50"] == 1.0 and s["ap75"] == 1.0 and s["mean_matched_iou"] == 1.0


def test_counts_fp_fn_and_iou_threshold():
    t = np.zeros((30, 30), np.uint16)
    t[0:10, 0:10] = 1  # 100 px
    t[20:30, 20:30] = 2  # missed
    p = np.zeros_like(t)
    p[0:10, 0:7] = 1  # IoU 0.7 with truth 1
    p[12:15, 0:3] = 2  # false positive
    m = match_instances(t, p, (0.5, 0.75))
    assert (m[0.5]["tp"], m[0.5]["fp"], m[0.5]["fn"]) == (1, 1, 1)
    assert m[0.5]["ap"] == pytest.approx(1 / 3)
    assert m[0.5]["mean_matched_iou"] == pytest.approx(0.7)
    assert m[0.75]["tp"] == 0 and m[0.75]["ap"] == 0.0


def test_merged_prediction_is_one_tp_at_most():
    t = np.zeros((10, 20), np.uint16)
    t[:, :10] = 1
    t[:, 10:] = 2
    p = (t > 0).astype(np.uint16)  # one blob over two objects: IoU 0.5 each, not > 0.5
    m = match_instances(t, p)[0.5]
    assert m["tp"] == 0 and m["fp"] == 1 and m["fn"] == 2


def test_matches_stardist_matching():
    stardist_matching = pytest.importorskip("stardist.matching")
    rng = np.random.default_rng(0)
    t = np.zeros((64, 64), np.uint16)
    p = np.zeros_like(t)
    for i in range(1, 12):
        y, x = rng.integers(5, 59, 2)
        t[y - 4 : y + 4, x - 4 : x + 4] = i
        dy, dx = rng.integers(-2, 3, 2)
        p[y - 4 + dy : y + 4 + dy, x - 4 + dx : x + 4 + dx] = i + 20
    ours = match_instances(t, p, (0.5,))[0.5]
    theirs = stardist_matching.matching(t, p, thresh=0.5)
    assert ours["tp"] == theirs.tp and ours["fp"] == theirs.fp and ours["fn"] == theirs.fn
    assert ours["ap"] == pytest.approx(theirs.accuracy)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shapes differ"):
        accuracy_summary(np.zeros((3, 3)), np.zeros((3, 4)))


def test_border_ids_lists_objects_on_any_face():
    t = np.zeros((6, 8, 8), np.uint16)
    t[0, 3:5, 3:5] = 1  # z = 0 face
    t[2:4, 2:4, 7] = 2  # last x face
    t[2:4, 3:5, 3:5] = 3  # interior
    t[5, 0, 0] = 4  # corner
    assert border_ids(t).tolist() == [1, 2, 4]
    assert border_ids(np.zeros((3, 3), np.uint8)).size == 0
    empty = np.zeros((0, 3, 3), np.uint8)  # an empty volume has no border objects and scores as no objects
    assert border_ids(empty).size == 0 and accuracy_summary(empty, empty)["interior_ap50"] == 1.0


def test_interior_matching_leaves_out_border_cut_objects():
    t = np.zeros((40, 40), np.uint16)
    t[5:15, 5:15] = 1  # interior, found
    t[20:30, 5:15] = 2  # interior, missed
    t[0:4, 20:30] = 3  # a sliver cut by the border, missed
    t[20:30, 30:40] = 4  # cut by the border, found
    p = np.zeros_like(t)
    p[5:15, 5:14] = 7  # IoU 0.9 with 1
    p[20:30, 31:40] = 8  # IoU 0.9 with 4 (touches the border)
    p[33:37, 20:24] = 9  # false, interior
    p[36:40, 30:34] = 5  # false, on the border: not counted
    c = interior_matching(t, p)
    assert (c["tp"], c["fp"], c["fn"]) == (1, 1, 1)
    assert c["ap"] == pytest.approx(1 / 3) and c["mean_matched_iou"] == pytest.approx(0.9)
    assert (c["n_true"], c["n_pred"]) == (2, 2)
    s = accuracy_summary(t, p)
    assert (s["tp50"], s["fp50"], s["fn50"]) == (2, 2, 2)
    assert s["interior_ap50"] == pytest.approx(1 / 3) and s["interior_n_true"] == 2
    assert (s["interior_tp50"], s["interior_fp50"], s["interior_fn50"]) == (1, 1, 1)


def test_interior_matching_on_objects_off_the_border_equals_the_whole_matching():
    rng = np.random.default_rng(3)
    t = np.zeros((48, 48, 48), np.uint16)
    p = np.zeros_like(t)
    for i in range(1, 9):
        z, y, x = rng.integers(8, 36, 3)
        t[z : z + 6, y : y + 6, x : x + 6] = i
        p[z : z + 6, y : y + 5, x : x + 6] = i + 10
    whole, inner = match_instances(t, p, (0.5,))[0.5], interior_matching(t, p)
    assert inner == whole
