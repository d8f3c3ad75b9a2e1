"""The blockwise engine: grids, parallel runs on Dask (local and a cluster), progress, memory budget."""

from __future__ import annotations

import numpy as np
import pytest

from nmc_assets import blockwise
from nmc_assets.blockwise import BlockRunner, MemoryBudgetError, Progress, block_grid


def _block_sum(block, path):
    """A block function as the steps write them: reads its outer region from a store, returns a small result."""
    from nmc_assets.storage import open_zarr

    data = np.asarray(open_zarr(path)[block.outer])
    return block.index, int(data[block.core_in_outer].sum()), int(data.sum())


def _fails_on_third(block):
    if block.index == (2,):
        raise ValueError("block 2 is bad")
    return block.index


def test_grid_tiles_the_volume_once_and_halos_are_clipped():
    blocks = block_grid((10, 7, 5), (4, 4, 4), halo=1)
    assert len(blocks) == 3 * 2 * 2
    covered = np.zeros((10, 7, 5), int)
    for b in blocks:
        covered[b.core] += 1
        for c, o, n in zip(b.core, b.outer, (10, 7, 5)):
            assert o.start == max(0, c.start - 1) and o.stop == min(n, c.stop + 1)
    assert (covered == 1).all()
    last = blocks[-1]
    assert last.shape == (2, 3, 1) and last.core_in_outer == (slice(1, 3), slice(1, 4), slice(1, 2))
    with pytest.raises(ValueError, match="does not fit"):
        block_grid((4, 4), (2, 2, 2))


def test_results_come_back_in_block_order_whatever_the_workers(tmp_path, dask_cluster_address):
    from nmc_assets.storage import write_zarr

    volume = np.arange(9 * 10 * 11, dtype=np.int64).reshape(9, 10, 11)
    path = write_zarr(tmp_path / "v.zarr", volume, chunks=(4, 4, 4))
    blocks = block_grid(volume.shape, (4, 4, 4), halo=2)
    expected = [(b.index, int(volume[b.core].sum()), int(volume[b.outer].sum())) for b in blocks]
    for runner in (BlockRunner(workers=1), BlockRunner(workers=2), BlockRunner(dask_cluster_address)):
        with runner:
            assert runner.map(_block_sum, blocks, path=path, max_in_flight=3) == expected
    assert sum(r[1] for r in expected) == int(volume.sum())


def test_a_failing_block_raises_its_error():
    with BlockRunner(workers=2) as runner:
        with pytest.raises(ValueError, match="block 2 is bad"):
            runner.map(_fails_on_third, block_grid((8,), (2,)))
        assert runner.map(_fails_on_third, []) == []


def test_progress_reports_at_most_every_interval_and_always_at_the_end(monkeypatch):
    import types

    clock = iter([0.0, 1.0, 6.0, 7.0, 8.0])  # start, then one reading per finished block
    monkeypatch.setattr(blockwise, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))
    messages = []
    progress = Progress("fused_labels s1", 4, messages.append, interval_s=5.0)
    for _ in range(4):
        progress.advance()
    assert messages == ["fused_labels s1: 2/4 blocks, 6 s elapsed, about 6 s left",
                        "fused_labels s1: 4/4 blocks, 8 s elapsed, about 0 s left"]


def test_progress_from_a_run_reaches_every_block():
    messages = []
    with BlockRunner(workers=2) as runner:
        runner.map(_fails_on_third, block_grid((2,), (1,)), progress=Progress("t", 2, messages.append, 0.0))
    assert messages[-1].startswith("t: 2/2 blocks")


def test_memory_budget_limits_parallelism_and_fails_fast_when_one_block_does_not_fit():
    gib = 2**30
    assert blockwise.workers_within_budget(scan="s1", step="fused_labels", budget=6 * gib, fixed=gib,
                                           per_worker=2 * gib, workers=16) == 2
    with pytest.raises(MemoryBudgetError) as info:
        blockwise.workers_within_budget(scan="s1", step="fused_labels", budget=6 * gib, fixed=5 * gib,
                                        per_worker=2 * gib, workers=2)
    text = str(info.value)
    assert "scan 's1'" in text and "fused_labels" in text and "7.00 GiB" in text and "6.00 GiB" in text


@pytest.mark.parametrize("text, value", [("8GiB", 8 * 2**30), ("6000MB", 6 * 10**9), ("1.5 G", 1_500_000_000),
                                         ("123", 123), (4096, 4096)])
def test_parse_bytes(text, value):
    assert blockwise.parse_bytes(text) == value


def test_default_budget_reads_the_environment(monkeypatch):
    monkeypatch.setenv(blockwise.MEMORY_BUDGET_ENV, "3GiB")
    assert blockwise.default_memory_budget() == 3 * 2**30
    monkeypatch.delenv(blockwise.MEMORY_BUDGET_ENV)
    assert 0 < blockwise.default_memory_budget() <= blockwise.machine_memory_bytes()
    with pytest.raises(ValueError, match="memory size"):
        blockwise.parse_bytes("lots")


def test_short_axis_is_named():
    with pytest.raises(ValueError, match=r"tomogram t\.zarr: axis z=3 voxels is not longer than the 8-voxel halo"):
        blockwise.check_halo((3, 50, 50), 8, "tomogram t.zarr")
    blockwise.check_halo((9, 50, 50), 8, "ok")


def test_block_workers_from_the_environment_are_checked(monkeypatch):
    from nmc_assets.defs.resources import _env_workers

    monkeypatch.setenv("NMC_BLOCK_WORKERS", "3")
    assert _env_workers() == 3
    monkeypatch.setenv("NMC_BLOCK_WORKERS", "-2")
    with pytest.raises(ValueError, match="NMC_BLOCK_WORKERS must be a whole number"):
        _env_workers()
    monkeypatch.setenv("NMC_BLOCK_WORKERS", "lots")
    with pytest.raises(ValueError, match="'lots'"):
        _env_workers()


def _window_sum(item, offset=0):
    index, window = item
    return index, int(window.sum()) + offset


def test_large_items_travel_outside_the_task_graph(dask_cluster_address):
    """A 12 MB block item (a small scan in one block) reaches the task whole, without Dask's
    large-graph warning, on the local and on a separate-process cluster."""
    import warnings

    big = np.ones((12, 512, 256), np.float64)  # 12 MiB: above SCATTER_BYTES
    small = np.arange(10)
    items = [(0, big), (1, small)]
    for runner in (BlockRunner(workers=2), BlockRunner(dask_cluster_address)):
        with runner, warnings.catch_warnings():
            warnings.simplefilter("error")  # the large-graph warning would fail the map
            assert runner.map(_window_sum, items, offset=1) == [(0, big.size + 1), (1, 46)]
    assert blockwise.SCATTER_BYTES < big.nbytes
