"""The blockwise feature tasks: merged boxes, the flat-stride threshold sample, crop parts, window counts."""

from __future__ import annotations

import numpy as np
import pytest

from nmc_assets.blockwise import block_grid
from nmc_assets.features import block_tasks as tasks
from nmc_assets.features.crop_store import PartReader, crop_regions, particle_codes, write_block_parts
from nmc_assets.features.extract import bounding_boxes
from nmc_assets.features.neighbours import window_counts
from nmc_assets.storage import write_zarr


def random_labels(shape, n=12, seed=0) -> np.ndarray:
    """Blocky random labels 0..n (label 0 = background) on ``shape``."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint32)
    for k in range(1, n + 1):
        lo = rng.integers(0, shape)
        hi = np.minimum(lo + rng.integers(1, 8, 3), shape)
        labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = k
    return labels


@pytest.mark.parametrize("shape,block_shape,step", [((7, 9, 11), (3, 4, 5), 1), ((7, 9, 11), (3, 4, 5), 5),
                                                    ((13, 17, 19), (5, 8, 6), 97), ((4, 30, 30), (4, 7, 30), 31)])
def test_stride_sample_of_the_blocks_is_the_whole_volume_one(shape, block_shape, step):
    volume = np.random.default_rng(1).integers(0, 1000, shape)
    want = volume.reshape(-1)[::step]
    got = np.full(want.size, -1)
    for block in block_grid(shape, block_shape):
        where, at = tasks.stride_sample(block, shape, step)
        got[at] = volume[block.core][where]
    np.testing.assert_array_equal(got, want)


def test_scan_block_boxes_merge_to_the_whole_volume_boxes(tmp_path):
    shape = (12, 20, 16)
    labels = random_labels(shape)
    path = str(write_zarr(tmp_path / "l.zarr", labels, chunks=(4, 8, 8)))
    blocks = block_grid(shape, (5, 7, 16))
    parts = [tasks.scan_block(b, labels_path=path, scratch=str(tmp_path)) for b in blocks]
    ids, lo, hi = tasks.merge_boxes(parts)
    want = bounding_boxes(labels, int(labels.max()))
    for a, b in zip((ids, lo, hi), want):
        np.testing.assert_array_equal(a, b)
    # the foreground bits written per block count the same voxels as the labels
    rng = np.random.default_rng(2)
    w_lo = rng.integers(0, shape, (30, 3))
    w_hi = w_lo + rng.integers(0, 9, (30, 3))
    counts = sum(tasks.density_block(tasks.DensityItem(b, np.arange(30), w_lo, w_hi), scratch=str(tmp_path))[1]
                 for b in blocks)
    np.testing.assert_array_equal(counts, window_counts(labels, w_lo, w_hi))
    np.testing.assert_array_equal(counts, [np.count_nonzero(labels[a[0]:b[0], a[1]:b[1], a[2]:b[2]])
                                           for a, b in zip(w_lo, w_hi)])


def test_particle_codes():
    labels = np.array([[[0, 3, 5, 3, 0, 7]]], np.uint32)
    np.testing.assert_array_equal(particle_codes(labels, 3), [[[0, 1, 2, 1, 0, 2]]])
    assert particle_codes(labels, 3).dtype == np.uint8


@pytest.mark.parametrize("image_dtype", [np.uint8, np.uint16, np.float32])
def test_crop_parts_read_back_as_the_region(tmp_path, image_dtype):
    shape = (12, 20, 16)
    labels = random_labels(shape, seed=3)
    image = np.random.default_rng(4).integers(0, 200, shape).astype(image_dtype)
    ids, lo, hi = bounding_boxes(labels, int(labels.max()))
    r_lo, r_hi = crop_regions(np.maximum(lo - 1, 0), np.minimum(hi + 1, shape) - np.maximum(lo - 1, 0), shape)
    blocks = block_grid(shape, (5, 6, 7))
    tables = []
    for number, block in enumerate(blocks):
        b_lo = np.array([s.start for s in block.core])
        b_hi = np.array([s.stop for s in block.core])
        rows = np.flatnonzero(np.all((r_lo < b_hi) & (r_hi > b_lo), axis=1))
        table = write_block_parts(tmp_path, number, b_lo, labels[block.core], image[block.core], ids[rows],
                                  r_lo[rows], r_hi[rows])
        tables.append((rows, table))
    assert not list(tmp_path.glob(".*tmp-*")), "temporary block files left"
    with PartReader(tmp_path, image.dtype) as reader:
        for k, pid in enumerate(ids):
            parts = np.concatenate([t[rows == k] for rows, t in tables])
            codes, img = reader.region(r_lo[k], r_hi[k], parts)
            box = tuple(slice(a, b) for a, b in zip(r_lo[k], r_hi[k]))
            np.testing.assert_array_equal(codes, particle_codes(labels[box], pid))
            np.testing.assert_array_equal(img, image[box].astype(np.float32))
            assert img.dtype == np.float32
        with pytest.raises(ValueError, match="cover"):
            reader.region(r_lo[0], r_hi[0], parts[:0])
