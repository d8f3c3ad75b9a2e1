"""Label-free segmentation confidence: scores on constructed volumes, block-shape independence, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nmc_assets.segmentation.confidence import (
    MissingViewMaps,
    block_sums,
    confidence_columns,
    merge_sums,
    scores_from_sums,
    shape_score,
    view_scores,
)
from nmc_assets.storage import write_zarr
from nmc_assets_tests.segmentation.constructed import ball_labels, ideal_maps, packed_balls, write_view_maps

VOXEL = 0.2
VIEWS = ("xy", "xz", "yz")


def _ball_scene(tmp_path, probs=None, labels=None, name="s"):
    """A ball of radius 10 voxels in 40^3 (bin factor 1) with StarDist-like maps of the true ball."""
    truth = ball_labels((40, 40, 40), [(20, 20, 20)], [10])
    prob, dist = ideal_maps(truth)
    labels = truth if labels is None else labels
    probs = probs or {v: prob for v in VIEWS}
    lp = write_zarr(tmp_path / f"{name}.labels.zarr", labels)
    vp = write_view_maps(tmp_path / f"{name}.views.zarr", probs, dist, bin_factor=1, full_shape=labels.shape, voxel_size_um=VOXEL)
    return lp, vp, labels


def _table(labels, sphericity):
    ids = np.unique(labels[labels > 0])
    vol = np.array([(labels == i).sum() for i in ids]) * VOXEL**3
    return pd.DataFrame({"particle_id": ids, "sphericity": sphericity, "volume_um3": vol, "touches_border": False})


def test_clean_ball_scores_high(tmp_path):
    lp, vp, labels = _ball_scene(tmp_path)
    s = view_scores(lp, vp, VOXEL).loc[1]
    assert s["conf_view_agreement"] == 1.0  # identical views
    inside = ideal_maps(labels)[0][labels > 0].mean()
    assert s["conf_boundary_margin"] == pytest.approx(inside, abs=2e-3)  # nothing outside
    assert s["conf_size_agreement"] > 0.9  # r_eq = 10 voxels, largest EDT ~10 voxels
    conf = confidence_columns(_table(labels, 0.97), view_scores(lp, vp, VOXEL))
    assert conf.loc[0, "conf_shape"] > 0.95 and conf.loc[0, "segmentation_confidence"] > 0.9
    assert ((conf >= 0) & (conf <= 1)).all().all()


def test_fragment_of_a_split_particle_scores_low(tmp_path):
    """A piece of the ball labelled (a crack split): the cut is no probability drop, the fragment is
    smaller than the particle the network sees, and it is not round. A half scores below the whole
    ball; a cap (a third of the ball) is flagged (< 0.5)."""
    truth = ball_labels((40, 40, 40), [(20, 20, 20)], [10])
    x = np.arange(40)[None, None, :]
    lp, vp, _ = _ball_scene(tmp_path, name="whole")
    whole = view_scores(lp, vp, VOXEL).loc[1]
    c_whole = confidence_columns(_table(truth, 0.97), view_scores(lp, vp, VOXEL))["segmentation_confidence"][0]
    conf = {}
    for name, cut, sphericity in (("half", 20, 0.59), ("cap", 15, 0.5)):
        piece = np.where(x < cut, truth, 0).astype(np.uint32)
        lp2, vp2, _ = _ball_scene(tmp_path, labels=piece, name=name)
        frag = view_scores(lp2, vp2, VOXEL).loc[1]
        assert frag["conf_boundary_margin"] < 0.7 * whole["conf_boundary_margin"]
        assert frag["conf_size_agreement"] < 0.87 < 0.9 < whole["conf_size_agreement"]
        conf[name] = confidence_columns(_table(piece, sphericity), view_scores(lp2, vp2, VOXEL))["segmentation_confidence"][0]
    assert conf["cap"] < 0.5 < conf["half"] < c_whole
    assert c_whole > 0.99


def test_blob_in_noise_and_disagreeing_views_score_low(tmp_path):
    truth = ball_labels((40, 40, 40), [(20, 20, 20)], [10])
    noise = np.random.default_rng(0).uniform(0.1, 0.3, truth.shape).astype(np.float32)
    lp, vp, _ = _ball_scene(tmp_path, probs={v: noise for v in VIEWS}, name="noise")
    blob = confidence_columns(_table(truth, 0.97), view_scores(lp, vp, VOXEL)).loc[0]
    assert blob["conf_boundary_margin"] < 0.02 and blob["segmentation_confidence"] < 0.2
    prob = ideal_maps(truth)[0]
    lp, vp, _ = _ball_scene(tmp_path, probs={"xy": prob, "xz": np.zeros_like(prob), "yz": 0.5 * prob}, name="disagree")
    s = view_scores(lp, vp, VOXEL).loc[1]
    assert s["conf_view_agreement"] == pytest.approx(1 - prob[truth > 0].mean(), abs=2e-3)  # max - min = prob


def _packed_scene(tmp_path):
    """Packed balls at full resolution with bin factor 2 view maps (noisy, views differ)."""
    labels = packed_balls((30, 44, 52), 12, r_range=(4, 7), seed=3).astype(np.uint32)
    rng = np.random.default_rng(1)
    binned = tuple(-(-s // 2) for s in labels.shape)
    probs = {v: rng.uniform(0, 1, binned).astype(np.float32) for v in VIEWS}
    dist = rng.uniform(0, 8, binned).astype(np.float32)
    lp = write_zarr(tmp_path / "packed.labels.zarr", labels, chunks=(8, 44, 52))
    vp = write_view_maps(tmp_path / "packed.views.zarr", probs, dist, bin_factor=2, full_shape=labels.shape, voxel_size_um=VOXEL)
    return lp, vp, labels, probs, dist


def test_block_shape_does_not_change_the_scores(tmp_path):
    lp, vp, labels, _, _ = _packed_scene(tmp_path)
    whole = view_scores(lp, vp, VOXEL, block_shape=labels.shape)
    assert whole.index.tolist() == np.unique(labels[labels > 0]).tolist()
    for block in ((1, 44, 52), (3, 10, 7), (7, 20, 52), (30, 3, 5)):
        pd.testing.assert_frame_equal(view_scores(lp, vp, VOXEL, block_shape=block), whole, check_exact=True)
    pd.testing.assert_frame_equal(view_scores(np.asarray(labels), vp, VOXEL, block_shape=(5, 9, 11)), whole, check_exact=True)
    pd.testing.assert_frame_equal(view_scores(lp, vp, VOXEL), whole, check_exact=True)  # the default blocks


def test_dask_runner_gives_the_same_scores(tmp_path):
    from nmc_assets.blockwise import BlockRunner

    lp, vp, labels, _, _ = _packed_scene(tmp_path)
    with BlockRunner(workers=2) as runner:
        got = view_scores(lp, vp, VOXEL, block_shape=(8, 20, 30), runner=runner, memory_budget=2**30)
    pd.testing.assert_frame_equal(got, view_scores(lp, vp, VOXEL), check_exact=True)


def test_sums_equal_a_direct_computation(tmp_path):
    """The blockwise sums against the definitions, computed on the whole upsampled volume."""
    lp, vp, labels, probs, dist = _packed_scene(tmp_path)
    up = [np.repeat(np.repeat(np.repeat(np.float16(probs[v]).astype(np.float32), 2, 0), 2, 1), 2, 2)[:30, :44, :52] for v in VIEWS]
    q = [np.rint(u * 4096).astype(np.float64) for u in up]
    fused = sum(q) / (3 * 4096)
    spread = (np.max(q, 0) - np.min(q, 0)) / 4096
    got = view_scores(lp, vp, VOXEL, block_shape=(4, 16, 16))
    shell = 2  # 0.4 um / 0.2 um
    for i in got.index[:4]:
        m = labels == i
        out = []
        for ax in range(3):
            n = labels.shape[ax]
            a, b = [slice(None)] * 3, [slice(None)] * 3
            for lo_v, lo_w in ((0, shell), (shell, 0)):
                a[ax], b[ax] = slice(lo_v, n - shell + lo_v), slice(lo_w, n - shell + lo_w)
                pair = m[tuple(a)] & ~m[tuple(b)]
                out.append(fused[tuple(b)][pair])
        margin = fused[m].mean() - np.concatenate(out).mean()
        assert got.loc[i, "conf_boundary_margin"] == pytest.approx(max(0.0, margin), abs=1e-12)
        assert got.loc[i, "conf_view_agreement"] == pytest.approx(1 - spread[m].mean(), abs=1e-12)
        assert got.loc[i, "n_voxels"] == m.sum()


def test_merge_of_blocks_is_order_independent():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 5, (12, 10, 10)).astype(np.uint32)
    probs = [rng.uniform(0, 1, labels.shape).astype(np.float32) for _ in VIEWS]
    dist = rng.uniform(0, 5, labels.shape).astype(np.float32)
    parts = [block_sums(labels[max(0, z - 1) : z + 5], [p[max(0, z - 1) : z + 5] for p in probs], dist[max(0, z - 1) : z + 5],
                        slice(z - max(0, z - 1), z - max(0, z - 1) + 4), 1) for z in (0, 4, 8)]
    a, b = merge_sums(parts), merge_sums(parts[::-1])
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    whole = block_sums(labels, probs, dist, slice(0, 12), 1)
    for key in whole:
        np.testing.assert_array_equal(a[key], whole[key])
    scores = scores_from_sums(a, VOXEL, VOXEL)
    assert scores.index.tolist() == [1, 2, 3, 4]


def test_shape_score():
    got = shape_score([0.97, 0.59, 0.3, 0.3, np.nan], [100.0, 100.0, 100.0, 100.0, 100.0], [False, False, False, True, False])
    np.testing.assert_allclose(got[[0, 2, 3, 4]], [1 - math.exp(-100 / 1.8), 0, 1 - math.exp(-100 / 1.8), 0])
    assert got[1] == pytest.approx(0.09 / 0.4 * (1 - math.exp(-100 / 1.8)))
    assert shape_score([0.97], [0.2])[0] < 0.11  # far below the smallest physical particle


def test_missing_and_stale_view_maps_are_named(tmp_path):
    lp, vp, labels = _ball_scene(tmp_path)
    with pytest.raises(MissingViewMaps, match="materialize view_probabilities"):
        view_scores(lp, tmp_path / "nothing.zarr", VOXEL)
    write_view_maps(tmp_path / "stale.zarr", {v: np.zeros((20, 20, 20)) for v in VIEWS}, np.zeros((20, 20, 20)),
                    bin_factor=2, full_shape=(40, 40, 42), voxel_size_um=VOXEL)
    with pytest.raises(ValueError, match="stale view maps"):
        view_scores(lp, tmp_path / "stale.zarr", VOXEL)
    write_view_maps(tmp_path / "two.zarr", {v: np.zeros((40, 40, 40)) for v in ("xy", "xz")}, np.zeros((40, 40, 40)),
                    bin_factor=1, full_shape=(40, 40, 40), voxel_size_um=VOXEL)
    with pytest.raises(MissingViewMaps, match="prob_yz"):
        view_scores(lp, tmp_path / "two.zarr", VOXEL)


def test_confidence_columns_without_scores_and_with_foreign_labels(tmp_path):
    lp, vp, labels = _ball_scene(tmp_path)
    table = _table(labels, 0.97)
    empty = confidence_columns(table, None)
    assert empty.isna().all().all() and len(empty) == 1
    with pytest.raises(ValueError, match="not the table's"):
        confidence_columns(pd.concat([table, table.assign(particle_id=7)], ignore_index=True), view_scores(lp, vp, VOXEL))
