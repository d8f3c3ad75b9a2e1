"""Blockwise features from Zarr equal the in-memory table exactly, whatever the blocks, mosaics and workers."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from nmc_assets.blockwise import BlockRunner, MemoryBudgetError
from nmc_assets.features import FeatureSettings, compute_particle_features, estimate_solid_threshold
from nmc_assets.features import measure, threshold
from nmc_assets.features.blockwise import compute_particle_features_zarr, io_block_shape
from nmc_assets.storage import write_zarr
from nmc_assets_tests.features.constructed import ellipsoid_mask, phase_image

VOXEL = 0.5  # um
SHAPE = (32, 48, 48)
BLOCK = (16, 16, 16)
#: label -> block borders of the (16, 16, 16) grid its particle crosses (3 and 6 also hold a void / crack)
BORDERS_CUT = {1: 1, 2: 2, 3: 3, 4: 1, 5: 0, 6: 2, 7: 0}


def cut_scene() -> tuple[np.ndarray, np.ndarray]:
    """(labels uint32, intensity float32) of SHAPE: particles cut by 1, 2 and 3 borders of the BLOCK grid,
    two touching (4, 5: contact), two cut by the volume edge (6, 7), a void in 3 and a crack in 6."""
    labels = np.zeros(SHAPE, np.uint32)
    for label, centre, axes, angles in [
        (1, (15.5, 40, 40), (5, 4, 3.5), (20, 10, 5)),
        (2, (15.5, 15.5, 40), (5, 4, 3.5), (-30, 15, 40)),
        (3, (15.5, 15.5, 15.5), (7, 5.5, 5), (60, -20, 10)),
        (4, (7, 40, 14), (5, 4, 3.5), (0, 0, 0)),
        (5, (7, 40, 23.5), (5, 4, 3.5), (10, 0, 0)),
        (6, (29, 30, 33), (6, 4, 4), (30, 20, 0)),
        (7, (1, 1, 1), (2.5, 2, 2), (0, 0, 0)),
    ]:
        labels[ellipsoid_mask(SHAPE, centre, axes, *angles)] = label
    solid = labels > 0
    solid[13:18, 13:18, 13:18] = False  # a void inside 3, at the corner of eight blocks
    solid[26:30, 29:32, 30:36] = False  # a crack through 6, across two borders
    return labels, phase_image(solid, blur=0.8, noise=0.04, seed=3)


@pytest.fixture(scope="module")
def scene():
    return cut_scene()


@pytest.fixture(scope="module")
def stores(scene, tmp_path_factory):
    labels, img = scene
    root = tmp_path_factory.mktemp("blockwise")
    img8 = np.clip(img * 200, 0, 255).astype(np.uint8)  # the stored dtype of real scans
    paths = {
        "labels": write_zarr(root / "labels.zarr", labels, chunks=(8, 16, 16)),
        "float32": write_zarr(root / "img.zarr", img, chunks=(16, 16, 16)),
        "uint8": write_zarr(root / "img8.zarr", img8, chunks=(16, 24, 16)),
    }
    return paths, {"float32": img, "uint8": img8}


@pytest.fixture(scope="module")
def local_runner():
    with BlockRunner(workers=2) as runner:
        yield runner


def in_memory(labels, img, **kw):
    return compute_particle_features(labels, img, VOXEL, scan_id="cut", cycles=10, **kw)


def blockwise(paths, image="float32", **kw):
    return compute_particle_features_zarr(paths["labels"], paths[image], VOXEL, scan_id="cut", cycles=10, **kw)


def test_scene_cuts_particles_by_one_two_and_three_block_borders(scene):
    labels = scene[0]
    for label, n_borders in BORDERS_CUT.items():
        where = np.nonzero(labels == label)
        first_block = [int(w.min()) // b for w, b in zip(where, BLOCK)]
        last_block = [int(w.max()) // b for w, b in zip(where, BLOCK)]
        assert sum(f != last for f, last in zip(first_block, last_block)) == n_borders, label


@pytest.mark.parametrize("block_shape", [BLOCK, (8, 16, 32), (11, 13, 17), SHAPE])
@pytest.mark.parametrize("gap,window_um", [(0, 0.0), (0, 1.5), (2, 0.6)])  # 1.5 um: a 3-voxel window and margin
def test_blockwise_table_equals_in_memory(scene, stores, local_runner, block_shape, gap, window_um):
    (labels, img), (paths, _) = scene, stores
    settings = FeatureSettings(contact_gap_vox=gap, contact_window_um=window_um)
    want = in_memory(labels, img, settings=settings)
    got = blockwise(paths, settings=settings, runner=local_runner, block_shape=block_shape)
    pd.testing.assert_frame_equal(got.table, want, check_exact=True)
    assert got.solid_threshold == estimate_solid_threshold(labels, img)
    # the scene measures what it is meant to: every particle, contact, a crack, border particles
    rows = got.table.set_index("particle_id")
    assert rows.index.tolist() == sorted(BORDERS_CUT)
    assert rows.loc[[4, 5], "contact"].gt(0).all() and rows.loc[[1, 2, 3], "contact"].eq(0).all()
    assert rows.loc[[3, 6], "surface_inner_um2"].gt(0).all() and rows.loc[[3, 6], "damage"].gt(0).all()
    assert rows["touches_border"].tolist() == [False, False, False, False, False, True, True]


@pytest.mark.parametrize("chunk_voxels", [1, 6000])
def test_blockwise_equals_in_memory_with_other_mosaics(scene, stores, local_runner, monkeypatch, chunk_voxels):
    """One particle per mosaic, or a few: the blockwise path packs the same mosaics as the in-memory one
    (border particles depend on their mosaic), so the tables stay equal."""
    monkeypatch.setattr(measure, "CHUNK_VOXELS", chunk_voxels)
    (labels, img), (paths, images) = scene, stores
    got = blockwise(paths, "uint8", runner=local_runner, block_shape=BLOCK)
    assert got.mosaics == (len(BORDERS_CUT) if chunk_voxels == 1 else 3)
    pd.testing.assert_frame_equal(got.table, in_memory(labels, images["uint8"]), check_exact=True)


def test_blockwise_on_a_dask_cluster_equals_in_memory(scene, stores, dask_cluster_address, monkeypatch):
    monkeypatch.setattr(measure, "CHUNK_VOXELS", 6000)
    (labels, img), (paths, images) = scene, stores
    with BlockRunner(dask_cluster_address) as runner:
        for image, block_shape in [("float32", BLOCK), ("uint8", (11, 13, 17))]:
            got = blockwise(paths, image, runner=runner, block_shape=block_shape)
            pd.testing.assert_frame_equal(got.table, in_memory(labels, images[image]), check_exact=True)


@pytest.fixture(scope="module")
def virtual_scan_stores(tmp_path_factory):
    """A small virtual beamline scan (uint8 tomogram, as real scans are stored): arrays and Zarr stores."""
    simulate = pytest.importorskip("nmc_assets.beamline.simulate", reason="virtual beamline not available")
    scan = simulate.simulate_scan(simulate.ScanConfig(shape=(40, 96, 112), voxel_size_um=0.4, cycles=50, seed=5))
    root = tmp_path_factory.mktemp("virtual")
    labels = scan.labels.astype(np.uint32)
    paths = {"labels": write_zarr(root / "labels.zarr", labels, chunks=(16, 32, 32)),
             "uint8": write_zarr(root / "tomogram.zarr", scan.image, chunks=(16, 32, 64))}
    return (labels, scan.image), paths


def test_virtual_scan_blockwise_on_a_dask_cluster_equals_in_memory(virtual_scan_stores, dask_cluster_address,
                                                                   monkeypatch):
    (labels, img), paths = virtual_scan_stores
    with BlockRunner(dask_cluster_address) as runner:
        for block_shape, chunk_voxels in [((16, 32, 64), measure.CHUNK_VOXELS), ((24, 40, 40), 50_000)]:
            monkeypatch.setattr(measure, "CHUNK_VOXELS", chunk_voxels)
            want = compute_particle_features(labels, img, 0.4, scan_id="virtual", cycles=50)
            got = compute_particle_features_zarr(paths["labels"], paths["uint8"], 0.4, scan_id="virtual", cycles=50,
                                                 runner=runner, block_shape=block_shape)
            assert got.mosaics == 1 if chunk_voxels == 4_000_000 else got.mosaics >= 4
            pd.testing.assert_frame_equal(got.table, want, check_exact=True)
    # interior and border particles, in contact and not
    assert len(want) >= 50 and 0 < want["touches_border"].sum() < len(want) and want["contact"].gt(0).any()


def test_threshold_subsample_from_blocks_equals_the_whole_volume_one(scene, stores, local_runner, monkeypatch):
    """With a stride > 1 (few samples allowed) the blocks' shares of the flat-stride subsample give the
    threshold of the whole volume exactly."""
    monkeypatch.setattr(threshold, "MAX_SAMPLES", 997)
    (labels, img), (paths, _) = scene, stores
    assert threshold.sample_step(labels.size) == 73
    got = blockwise(paths, runner=local_runner, block_shape=(11, 13, 17))
    assert got.solid_threshold == estimate_solid_threshold(labels, img)
    pd.testing.assert_frame_equal(got.table, in_memory(labels, img), check_exact=True)


def test_given_threshold_and_window_are_used(scene, stores, local_runner):
    (labels, img), (paths, _) = scene, stores
    got = blockwise(paths, runner=local_runner, block_shape=BLOCK, solid_threshold=0.7, local_window_um=6.0)
    assert got.solid_threshold == 0.7
    want = in_memory(labels, img, solid_threshold=0.7, local_window_um=6.0)
    pd.testing.assert_frame_equal(got.table, want, check_exact=True)
    assert not np.allclose(want["p_density"], in_memory(labels, img)["p_density"])


def test_progress_reports_every_pass(stores, local_runner):
    messages: list[str] = []
    blockwise(stores[0], runner=local_runner, block_shape=BLOCK, progress=messages.append)
    assert messages[0].startswith("particle_features cut: 32x48x48 voxels in 18 blocks of 16x16x16 on local Dask")
    for what, total, unit in [("bounding boxes", 18, "blocks"), ("crop parts", 18, "blocks"),
                              ("mosaics", 1, "mosaics"), ("packing density", 18, "blocks")]:
        assert any(re.match(rf"particle_features cut: {what}: {total}/{total} {unit}, \d+ s elapsed", m)
                   for m in messages), (what, messages)


def test_memory_budget_too_small_fails_fast_naming_scan_step_and_bytes(stores, local_runner):
    paths = stores[0]
    with pytest.raises(MemoryBudgetError, match=r"scan 'cut', step particle_features \(bounding boxes\): needs "
                                                r"about \d+\.\d\d GiB .* but the memory budget is 0\.00 GiB"):
        blockwise(paths, runner=local_runner, memory_budget="100kB")
    assert not list(paths["labels"].parent.glob(".labels.zarr.features.tmp-*")), "scratch folder left behind"


class RecordingRunner(BlockRunner):
    """A local runner that records the ``max_in_flight`` of each pass."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.in_flight: list[int] = []

    def map(self, func, items, *, progress=None, max_in_flight=None, **kwargs):
        self.in_flight.append(max_in_flight)
        return super().map(func, items, progress=progress, max_in_flight=max_in_flight, **kwargs)


def test_memory_budget_caps_the_blocks_in_flight(scene, stores, monkeypatch):
    """A budget that holds one task of the most demanding pass (plus its fixed bytes) runs that pass one
    task at a time, the others as wide as they fit, and the table stays exact."""
    from nmc_assets.features import blockwise as fb

    needs: dict[str, int] = {}  # pass -> bytes for one task
    real = fb.workers_within_budget

    def recording(**kw):
        needs[kw["step"]] = kw["fixed"] + kw["per_worker"]
        return real(**kw)

    monkeypatch.setattr(fb, "workers_within_budget", recording)
    (labels, img), (paths, _) = scene, stores
    with RecordingRunner(workers=2) as runner:
        blockwise(paths, runner=runner, block_shape=BLOCK)
        assert runner.in_flight == [4, 4, 4, 4]  # every pass fits: twice the 2 threads (half of them queued)
        runner.in_flight.clear()
        got = blockwise(paths, runner=runner, block_shape=BLOCK, memory_budget=max(needs.values()) + 1)
    passes = ["bounding boxes", "crop parts", "mosaics", "packing density"]
    assert list(needs) == [f"particle_features ({p})" for p in passes]
    assert runner.in_flight[int(np.argmax(list(needs.values())))] == 1 and max(runner.in_flight) == 4
    pd.testing.assert_frame_equal(got.table, in_memory(labels, img), check_exact=True)


@pytest.mark.parametrize("shape,block_shape", [((1, 20, 20), (1, 8, 8)), ((2, 24, 24), (1, 5, 7)),
                                               ((3, 1, 30), (2, 1, 4))])
def test_volumes_thinner_than_a_block_or_crop(tmp_path, local_runner, shape, block_shape):
    """No halo is needed (crops are cut into per-block parts), so even 1-voxel-thin volumes and blocks work."""
    labels = np.zeros(shape, np.uint16)
    labels[..., 2:9] = 1
    labels[..., 12:18] = 2
    img = np.where(labels > 0, 1.0, 0.2).astype(np.float32)
    paths = {"labels": write_zarr(tmp_path / "l.zarr", labels), "float32": write_zarr(tmp_path / "i.zarr", img)}
    got = blockwise(paths, runner=local_runner, block_shape=block_shape)
    pd.testing.assert_frame_equal(got.table, in_memory(labels, img), check_exact=True)
    assert got.table["particle_id"].tolist() == [1, 2]


def test_empty_labels_give_an_empty_table(tmp_path, local_runner):
    paths = {"labels": write_zarr(tmp_path / "l.zarr", np.zeros((8, 8, 8), np.uint32)),
             "float32": write_zarr(tmp_path / "i.zarr", np.ones((8, 8, 8), np.float32))}
    got = blockwise(paths, runner=local_runner)
    assert len(got.table) == 0 and list(got.table.columns) == list(in_memory(np.zeros((8, 8, 8), np.uint32),
                                                                             np.ones((8, 8, 8), np.float32)).columns)
    assert np.isnan(got.solid_threshold)


def test_invalid_inputs_are_clear_errors(tmp_path, local_runner):
    ok = np.ones((8, 8, 8), np.float32)
    write_zarr(tmp_path / "img.zarr", ok)
    cases = [
        (np.ones((8, 8, 9), np.uint16), "have shape"),
        (np.ones((8, 8, 8), np.float32), "must be integers"),
        (np.full((8, 8, 8), -1, np.int32), "must be non-negative"),
    ]
    for k, (labels, message) in enumerate(cases):
        path = write_zarr(tmp_path / f"l{k}.zarr", labels)
        with pytest.raises(ValueError, match=message):
            compute_particle_features_zarr(path, tmp_path / "img.zarr", VOXEL, scan_id="x", cycles=None,
                                           runner=local_runner)
    assert not list(tmp_path.glob(".*features.tmp-*")), "scratch folder left behind"


def test_io_blocks_align_with_the_stores_chunks():
    real = (492, 1324, 1985)
    assert io_block_shape(real, (64, 256, 256), (128, 128, 128)) == (128, 256, 256)
    assert io_block_shape(real, (128, 128, 128), (128, 128, 128)) == (256, 256, 128)
    assert io_block_shape((20, 30, 40), (128, 128, 128)) == (20, 30, 40)
    assert io_block_shape(real, (100, 128, 128), (128, 128, 128)) == (256, 256, 128)  # lcm 3200: take the largest
