"""Full-resolution labels block by block (segmentation/fullres.py): the same bytes for any block shape,
thread count or Dask cluster, particles across block borders keep one id, the memory budget, progress
messages and a scan too thin for the halo."""

import re

import numpy as np
import pytest
from scipy import ndimage as ndi

from nmc_assets.blockwise import BlockRunner, MemoryBudgetError, Progress, gib
from nmc_assets.segmentation.fullres import block_bytes, write_full_resolution
from nmc_assets.segmentation.refine import Refinement, keep_table, lost_labels, particle_matrix_threshold, refine_labels
from nmc_assets.segmentation.scaling import bin_labels_mode, upsample_region
from nmc_assets.storage import open_zarr, read_zarr, write_zarr

SHAPE = (48, 64, 96)
FACTOR = 2
CHUNKS = (8, 16, 16)
BLOCK = (16, 32, 32)  # borders at z = 16, 32; y = 32; x = 32, 64
#: balls (centre, radius) crossing 1, 2 and 3 block borders of BLOCK
CROSSING = {1: ((16, 10, 10), 6.5), 2: ((32, 32, 48), 6.5), 3: ((16, 32, 64), 7.5)}


def _whole(shape=SHAPE):
    return tuple(slice(0, s) for s in shape)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """(tomogram path, binned labels, refinement, keep table, full-resolution truth): touching balls,
    three of them across block borders, and a blurred noisy uint8 image; binned labels 2x coarser."""
    rng = np.random.default_rng(7)
    zz, yy, xx = np.indices(SHAPE)
    truth = np.zeros(SHAPE, np.uint32)
    balls = list(CROSSING.values()) + [(tuple(rng.uniform(0, 1, 3) * SHAPE), rng.uniform(4, 9)) for _ in range(14)]
    for i, (c, r) in enumerate(balls, start=1):
        truth[((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r) & (truth == 0)] = i
    image = np.clip(ndi.gaussian_filter(np.where(truth > 0, 190.0, 70.0), 1.0) + rng.normal(0, 8, SHAPE), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("scan") / "s.tomogram.zarr"
    write_zarr(path, image, chunks=(16, 32, 32))
    binned = bin_labels_mode(truth, FACTOR).astype(np.uint32)
    up = upsample_region(binned, FACTOR, _whole())
    settings = Refinement(band=2, sigma=1.0, threshold=particle_matrix_threshold(up, image, 1.0))
    keep = keep_table(lost_labels(binned, FACTOR, SHAPE, settings.band), int(binned.max()))
    return path, binned, settings, keep, truth


def _labels(scan, out, **kw):
    path, binned, settings, keep, _ = scan
    kw.setdefault("chunks", CHUNKS)
    info = write_full_resolution(binned, FACTOR, SHAPE, out, {"scan_id": "s"}, intensity=open_zarr(path), refinement=settings,
                                 keep=keep, source_name=str(path), scan="s", **kw)
    return read_zarr(out), info


@pytest.fixture(scope="module")
def reference(scan, tmp_path_factory):
    """One block holding the whole scan, in this process."""
    return _labels(scan, tmp_path_factory.mktemp("ref") / "labels.zarr", block_shape=SHAPE)[0]


def test_reference_is_the_in_memory_refinement_and_moves_boundaries(scan, reference):
    path, binned, settings, _, truth = scan
    up = upsample_region(binned, FACTOR, _whole())
    whole = refine_labels(up, read_zarr(path), settings.threshold, band=settings.band, sigma=settings.sigma)
    assert np.array_equal(reference, whole)
    assert np.count_nonzero(reference != up) > 1000
    gain = np.count_nonzero((reference > 0) == (truth > 0)) - np.count_nonzero((up > 0) == (truth > 0))
    assert gain > 0  # the refinement brings the foreground closer to the truth


@pytest.mark.parametrize("block, workers", [(BLOCK, None), ((8, 16, 16), 1), (BLOCK, 2), ((24, 48, 16), 2)])
def test_identical_for_any_block_shape_and_thread_count(scan, reference, tmp_path, block, workers):
    if workers is None:
        labels, info = _labels(scan, tmp_path / "l.zarr", block_shape=block)
    else:
        with BlockRunner(workers=workers) as runner:
            labels, info = _labels(scan, tmp_path / "l.zarr", block_shape=block, runner=runner)
    assert info["blocks"] == np.prod([-(-s // b) for s, b in zip(SHAPE, block)]) > 1
    assert labels.dtype == np.uint32 and np.array_equal(labels, reference)


def test_identical_on_a_dask_cluster_of_two_processes(scan, reference, tmp_path, dask_cluster):
    with BlockRunner(dask_cluster.scheduler_address) as runner:
        labels, info = _labels(scan, tmp_path / "l.zarr", block_shape=(8, 32, 16), runner=runner)
    assert info["blocks"] == 6 * 2 * 6
    assert np.array_equal(labels, reference)
    assert dask_cluster.scheduler_address.startswith("tcp://") and len(dask_cluster.workers) == 2


@pytest.mark.parametrize("borders", [1, 2, 3])
def test_particle_across_block_borders_keeps_one_label(scan, tmp_path, borders):
    labels, _ = _labels(scan, tmp_path / "l.zarr", block_shape=BLOCK)
    truth = scan[4]
    ball = truth == borders  # the crossing balls are labels 1, 2, 3 of the truth
    ids, counts = np.unique(labels[ball], return_counts=True)
    lab = ids[np.argmax(counts)]
    assert lab > 0 and counts.max() > 0.8 * ball.sum()
    particle = labels == lab
    assert ndi.label(particle)[1] == 1  # one piece, one id
    touched = {tuple(i // b for i, b in zip(idx, BLOCK)) for idx in np.argwhere(particle)}
    assert len(touched) == 2**borders
    assert np.count_nonzero(particle & ball) / np.count_nonzero(particle | ball) > 0.8


def test_memory_budget_caps_blocks_in_flight_and_fails_when_one_block_does_not_fit(scan, reference, tmp_path):
    per_block = block_bytes(BLOCK, scan[2].halo, True)
    with BlockRunner(workers=2) as runner:
        labels, info = _labels(scan, tmp_path / "l.zarr", block_shape=BLOCK, runner=runner, memory_budget=per_block + 2**20)
        assert info["blocks_in_flight"] == 1 and np.array_equal(labels, reference)
        with pytest.raises(MemoryBudgetError) as err:
            _labels(scan, tmp_path / "m.zarr", block_shape=BLOCK, runner=runner, memory_budget=per_block // 2)
    message = str(err.value)
    assert "scan 's'" in message and "step fused_labels" in message
    assert gib(per_block // 2) in message and gib(per_block) in message
    assert not (tmp_path / "m.zarr").exists()


def test_progress_reports_blocks_done_elapsed_and_remaining(scan, tmp_path):
    lines = []
    progress = Progress("fused_labels s: full resolution", 0, lines.append, interval_s=0)
    _labels(scan, tmp_path / "l.zarr", block_shape=BLOCK, progress=progress)
    n = 3 * 2 * 3
    assert len(lines) == n
    first = re.fullmatch(r"fused_labels s: full resolution: 1/18 blocks, (\d+) s elapsed, about (\d+) s left", lines[0])
    assert first is not None and n == 18
    assert lines[-1].startswith("fused_labels s: full resolution: 18/18 blocks,") and lines[-1].endswith("about 0 s left")


def test_scan_thinner_than_the_halo_fails_naming_the_file(scan, tmp_path):
    path, binned, settings, keep, _ = scan
    thin = tmp_path / "thin.tomogram.zarr"
    write_zarr(thin, read_zarr(path)[: settings.halo], chunks=(8, 32, 32))
    with pytest.raises(ValueError, match=re.escape(f"{thin}: axis z={settings.halo} voxels is not longer than the {settings.halo}-voxel halo")):
        write_full_resolution(binned[: settings.halo // FACTOR], FACTOR, (settings.halo, *SHAPE[1:]), tmp_path / "l.zarr", {},
                              intensity=open_zarr(thin), refinement=settings, keep=keep, source_name=str(thin))
    assert not (tmp_path / "l.zarr").exists()


@pytest.mark.parametrize("factor, band", [(2, 1), (2, 3), (3, 2), (3, 5), (6, 6)])
def test_lost_labels_equal_the_full_resolution_erosion(factor, band):
    rng = np.random.default_rng(factor * 10 + band)
    shape = (9, 14, 17)
    binned = np.zeros(shape, np.uint32)
    for i in range(1, 40):  # boxes of 1-4 binned voxels, some at the border, overwriting each other
        c = rng.integers(0, shape)
        s = rng.integers(1, 5, 3)
        binned[c[0] : c[0] + s[0], c[1] : c[1] + s[1], c[2] : c[2] + s[2]] = i
    full_shape = tuple(s * factor - 1 for s in shape)  # the last binned voxel is partial
    up = upsample_region(binned, factor, _whole(full_shape))
    core = ndi.binary_erosion(up > 0, iterations=band, border_value=1)
    expected = np.setdiff1d(np.unique(up[up > 0]), np.unique(up[core]))
    assert np.array_equal(lost_labels(binned, factor, full_shape, band), expected)
    assert 0 < expected.size < len(np.unique(up[up > 0]))  # some lost, some not
