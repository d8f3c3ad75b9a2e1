"""Binning for the view maps reads whole chunk slabs (each chunk once), in parallel segments, and gives
the same float32 bytes as binning ``factor`` planes at a time."""

import numpy as np
import pytest

from nmc_assets.blockwise import BlockRunner, Progress
from nmc_assets.segmentation.scaling import bin_mean, bin_segments, bin_volume_slabwise
from nmc_assets.storage import open_zarr, write_zarr


def _plane_by_plane(volume, factor, normalize=None):
    """The former binning: ``factor`` planes at a time, normalised in float32, the last run replicated."""
    planes = []
    for z0 in range(0, volume.shape[0], factor):
        slab = np.asarray(volume[z0 : z0 + factor], dtype=np.float32)
        if normalize is not None:
            slab = (slab - normalize[0]) / max(normalize[1] - normalize[0], 1e-12)
        if slab.shape[0] < factor:
            slab = np.concatenate([slab, np.repeat(slab[-1:], factor - slab.shape[0], 0)])
        planes.append(bin_mean(slab, factor)[0])
    return np.stack(planes)


@pytest.fixture(scope="module")
def volume():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (101, 26, 31), dtype=np.uint8)


def test_segments_start_on_chunk_and_bin_boundaries():
    assert bin_segments((492, 10, 10), 6, 64) == [slice(0, 192), slice(192, 384), slice(384, 492)]
    assert bin_segments((100, 10, 10), 3, 8) == [slice(0, 72), slice(72, 100)]
    assert bin_segments((40, 10, 10), 5, 64) == [slice(0, 40)]


@pytest.mark.parametrize("factor, chunk, normalize", [(3, 8, None), (3, 8, (20.0, 230.0)), (6, 16, (0.0, 255.0)), (4, 101, None)])
def test_chunk_slabs_give_the_same_bytes_as_plane_runs(tmp_path, volume, factor, chunk, normalize):
    expected = _plane_by_plane(volume, factor, normalize)
    path = tmp_path / "v.zarr"
    write_zarr(path, volume, chunks=(chunk, 16, 16))
    in_memory = bin_volume_slabwise(volume, factor, normalize)
    lines = []
    stored = bin_volume_slabwise(open_zarr(path), factor, normalize, progress=Progress("binning", 0, lines.append, interval_s=0, unit="segments"))
    assert in_memory.dtype == stored.dtype == np.float32 and in_memory.shape == (-(-101 // factor), -(-26 // factor), -(-31 // factor))
    assert np.array_equal(in_memory, expected) and np.array_equal(stored, expected)
    n = len(bin_segments(volume.shape, factor, chunk))
    assert len(lines) == n and lines[-1].startswith(f"binning: {n}/{n} segments,")


def test_parallel_segments_on_threads_and_processes(tmp_path, volume, dask_cluster):
    path = tmp_path / "v.zarr"
    write_zarr(path, volume, chunks=(8, 16, 16))
    expected = _plane_by_plane(volume, 3, (10.0, 250.0))
    with BlockRunner(workers=2) as runner:
        assert np.array_equal(bin_volume_slabwise(open_zarr(path), 3, (10.0, 250.0), runner=runner), expected)
    with BlockRunner(dask_cluster.scheduler_address) as runner:
        assert np.array_equal(bin_volume_slabwise(str(path), 3, (10.0, 250.0), runner=runner), expected)
