"""Readers during a rewrite see the old or the new output, whole: never a missing path, never zeros."""

import os
import threading
import time

import numpy as np
import pytest

from nmc_assets import storage


def _hammer(target, write, n_writes: int, read, n_readers: int = 3):
    """Rewrite ``target`` ``n_writes`` times while readers loop; returns (reads, failures)."""
    stop = threading.Event()
    reads, failures = [0], []

    def reader():
        while not stop.is_set():
            try:
                failures.extend(read())
                reads[0] += 1
            except Exception as exc:  # noqa: BLE001 - every reader error is a failure of the guarantee
                failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=reader) for _ in range(n_readers)]
    for t in threads:
        t.start()
    try:
        for k in range(1, n_writes + 1):
            write(k)
    finally:
        stop.set()
        for t in threads:
            t.join()
    return reads[0], failures


def test_zarr_rewrite_never_shows_missing_or_zero_filled_arrays(tmp_path):
    target = tmp_path / "tomograms" / "s1.zarr"
    shape = (8, 32, 32)
    storage.write_zarr(target, np.full(shape, 1, np.uint16), chunks=(2, 8, 8))

    def read():
        values = np.unique(storage.read_zarr(target))
        return [] if len(values) == 1 and values[0] >= 1 else [f"mixed or zero-filled read: {values[:5]}"]

    reads, failures = _hammer(target, lambda k: storage.write_zarr(target, np.full(shape, k, np.uint16),
                                                                   chunks=(2, 8, 8)), 40, read)
    assert reads > 20
    assert failures == []
    assert int(storage.read_zarr(target)[0, 0, 0]) == 40


def test_directory_swap_never_leaves_the_path_missing(tmp_path):
    target = tmp_path / "models" / "m1"

    def write(k):
        with storage.atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "weights.bin").write_bytes(bytes([k]) * 1000)

    write(0)

    def read():
        return [] if len((target / "weights.bin").read_bytes()) == 1000 else ["short read"]

    reads, failures = _hammer(target, write, 60, read)
    assert reads > 20 and failures == []
    assert target.is_dir() and not target.is_symlink()  # plain folders stay plain folders
    assert (target / "weights.bin").read_bytes()[:1] == bytes([60])
    assert [p.name for p in target.parent.iterdir()] == ["m1"]  # the old folders are gone


def test_plain_zarr_folder_from_before_versioning_is_swapped_in_one_step(tmp_path):
    import zarr

    target = tmp_path / "old.zarr"
    z = zarr.create_array(store=str(target), shape=(4, 4), dtype="u1", chunks=(2, 2), zarr_format=3)
    z[...] = 7
    assert target.is_dir() and not target.is_symlink()
    storage.write_zarr(target, np.full((4, 4), 9, np.uint8))
    assert target.is_symlink() and int(storage.read_zarr(target)[0, 0]) == 9
    old = [p for p in tmp_path.iterdir() if ".v-" in p.name and p != storage.resolve_version(target)]
    assert len(old) == 1 and (old[0] / "zarr.json").exists()  # the old folder, kept for the grace period


def test_superseded_versions_are_deleted_after_the_grace_period(tmp_path, monkeypatch):
    target = tmp_path / "a.zarr"
    storage.write_zarr(target, np.zeros((2, 2, 2), np.uint8))
    first = storage.resolve_version(target)
    storage.write_zarr(target, np.ones((2, 2, 2), np.uint8))
    assert first.exists()  # still readable by whoever pinned it
    past = time.time() - storage.VERSION_GRACE_S - 1
    os.utime(first, (past, past))
    storage.write_zarr(target, np.full((2, 2, 2), 2, np.uint8))
    assert not first.exists()
    assert int(storage.read_zarr(target).max()) == 2
    versions = [p for p in tmp_path.iterdir() if ".v-" in p.name]
    assert len(versions) == 2  # the live one and the one just superseded


def test_killed_writers_temporaries_are_swept_by_the_next_write(tmp_path):
    target = tmp_path / "f.parquet"
    stale = tmp_path / ".f.parquet.tmp-0123abcd"
    stale.write_bytes(b"half")
    other = tmp_path / ".g.parquet.tmp-0123abcd"  # another output's temporary: not this writer's business
    other.write_bytes(b"half")
    past = time.time() - storage.STALE_TMP_S - 1
    for p in (stale, other):
        os.utime(p, (past, past))
    storage.atomic_write_bytes(target, b"x")
    assert not stale.exists() and other.exists()


def test_stale_sweep_keeps_live_versions(tmp_path):
    target = tmp_path / "w" / "a.zarr"
    storage.write_zarr(target, np.zeros((2, 2, 2), np.uint8))
    storage.write_zarr(target, np.ones((2, 2, 2), np.uint8))
    live = storage.resolve_version(target)
    removed = storage.remove_stale_temporaries(tmp_path, min_age_s=0)
    assert live not in removed and len(removed) == 1
    assert int(storage.read_zarr(target).max()) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("a"), (b / "x").write_text("b")
    storage._exchange(a, b)
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"
