"""Atomic writes: the output appears whole or not at all; Zarr round trips."""

import numpy as np
import pandas as pd
import pytest

from nmc_assets import storage


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with storage.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_replaces_existing(tmp_path):
    target = tmp_path / "a.zarr"
    storage.write_zarr(target, np.zeros((4, 5, 6), np.uint32))
    storage.write_zarr(target, np.ones((4, 5, 6), np.uint32), attrs={"n": np.int64(3)})
    back = storage.read_zarr(target)
    assert back.dtype == np.uint32 and back.shape == (4, 5, 6) and back.sum() == 120
    assert storage.zarr_attrs(target)["n"] == 3
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["a.zarr"]
    # one live version and the superseded one, kept for readers during the grace period
    assert target.is_symlink() and len([p for p in tmp_path.iterdir() if ".v-" in p.name]) == 2


def test_parquet_and_json_are_deterministic(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
    storage.atomic_write_parquet(tmp_path / "x.parquet", df)
    storage.atomic_write_parquet(tmp_path / "y.parquet", df)
    assert (tmp_path / "x.parquet").read_bytes() == (tmp_path / "y.parquet").read_bytes()
    storage.atomic_write_json(tmp_path / "p.json", {"b": np.float32(1.5), "a": np.arange(2)})
    assert (tmp_path / "p.json").read_text() == '{\n  "a": [\n    0,\n    1\n  ],\n  "b": 1.5\n}\n'
    assert storage.sha256_file(tmp_path / "p.json") == storage.sha256_file(tmp_path / "p.json")
    assert len(storage.sha256_file(tmp_path / "p.json")) == 64


def test_default_chunks_are_bounded():
    assert storage.default_chunks((1000, 2000, 3000)) == (128, 128, 128)
    assert storage.default_chunks((5, 7)) == (5, 7)


def test_stale_temporaries_are_swept_but_fresh_ones_and_outputs_kept(tmp_path):
    import os
    import time

    out = tmp_path / "warehouse" / "fused_labels"
    storage.write_zarr(out / "s1.zarr", np.zeros((2, 3, 4), np.uint32))
    stale_dir = out / ".s2.zarr.tmp-0123abcd"
    stale_dir.mkdir()
    (stale_dir / "chunk").write_bytes(b"half")
    stale_file = tmp_path / "warehouse" / ".features.parquet.tmp-89abcdef"
    stale_file.write_bytes(b"half")
    fresh = out / ".s3.zarr.tmp-deadbeef"
    fresh.mkdir()
    old = time.time() - 7200
    for p in (stale_dir, stale_file):
        os.utime(p, (old, old))
    removed = storage.remove_stale_temporaries(tmp_path, min_age_s=3600)
    assert sorted(removed) == sorted([stale_dir, stale_file])
    assert fresh.exists() and (out / "s1.zarr").exists()
    assert storage.read_zarr(out / "s1.zarr").shape == (2, 3, 4)
    assert storage.remove_stale_temporaries(tmp_path / "missing") == []
