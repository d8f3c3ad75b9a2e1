"""Fault tolerance (issue 7.4): killed writers, a burst of 50 scans, catalog reads during rebuilds, retries."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nmc_assets.defs.resources import BlocksResource, DataRootResource
from nmc_assets.paths import DataLayout
from nmc_assets.storage import atomic_write_parquet, read_zarr, write_zarr

from .conftest import TINY_SHAPE, write_tiny_scan

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------
# 1. a writer killed mid-write leaves no partial output visible; a re-run succeeds


def _start_writer(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def _kill_when(proc: subprocess.Popen, partial_written, timeout: float = 60.0) -> None:
    """SIGKILL ``proc`` as soon as ``partial_written()`` is true (polled every ms)."""
    deadline = time.monotonic() + timeout
    while not partial_written():
        if proc.poll() is not None:
            raise AssertionError(f"writer ended before it could be killed: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("writer never started writing")
        time.sleep(0.001)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def _tmp_siblings(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.tmp-*"))


ZARR_WRITER = """
    import sys
    import numpy as np
    from nmc_assets.storage import write_zarr
    volume = np.random.default_rng(1).random((128, 256, 256), dtype=np.float32)
    write_zarr(sys.argv[1], volume, chunks=(8, 32, 32))   # 1024 chunk files
    print("DONE", flush=True)
"""


def test_killed_zarr_write_keeps_the_old_tomogram_and_a_rerun_succeeds(tmp_path):
    layout = DataLayout(tmp_path)
    target = layout.tomogram("s1")
    old = np.arange(np.prod(TINY_SHAPE), dtype=np.float32).reshape(TINY_SHAPE)
    write_zarr(target, old)

    proc = _start_writer(ZARR_WRITER, str(target))

    def some_chunks_written():
        return any(files for tmp in _tmp_siblings(target) for _, _, files in os.walk(tmp / "c"))

    _kill_when(proc, some_chunks_written)
    (leftover,) = _tmp_siblings(target)
    n_chunks = sum(len(files) for _, _, files in os.walk(leftover / "c"))
    assert 0 < n_chunks < 1024, "the writer was not killed mid-write"

    # the visible tomogram is still the old, complete one; nothing else looks like a tomogram
    np.testing.assert_array_equal(read_zarr(target), old)
    assert [p.name for p in target.parent.glob("*.zarr")] == ["s1.zarr"]

    # the re-run of the ingest step replaces it completely
    incoming = layout.incoming
    write_tiny_scan(incoming, "s1", seed=5)
    from nmc_assets.defs.beamline import raw_tomogram

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("scan", ["s1"])
    result = dg.materialize([raw_tomogram], partition_key="s1", instance=instance,
                            resources={"data_root": DataRootResource(data_dir=str(tmp_path)), "blocks": BlocksResource(workers=2)})
    assert result.success
    import tifffile

    np.testing.assert_array_equal(read_zarr(target), tifffile.imread(incoming / "s1.tif").astype(np.float32))


PARQUET_WRITER = """
    import sys
    import numpy as np
    import pyarrow as pa
    from nmc_assets.storage import atomic_write_parquet
    n = 3_000_000
    rng = np.random.default_rng(2)
    table = pa.table({"particle_id": np.arange(n), "volume_um3": rng.random(n), "damage": rng.random(n)})
    atomic_write_parquet(sys.argv[1], table, row_group_size=10_000)
    print("DONE", flush=True)
"""


def test_killed_parquet_write_leaves_no_file_for_readers_and_a_rerun_succeeds(tmp_path):
    layout = DataLayout(tmp_path)
    target = layout.particle_features("s1")
    target.parent.mkdir(parents=True)
    proc = _start_writer(PARQUET_WRITER, str(target))
    _kill_when(proc, lambda: any(p.stat().st_size > 0 for p in _tmp_siblings(target)))

    assert not target.exists()
    (leftover,) = _tmp_siblings(target)
    with pytest.raises(pa.ArrowInvalid):  # the partial file really is broken, and hidden
        pq.read_table(leftover)
    # the catalog's glob over feature partitions sees nothing
    import glob

    assert glob.glob(layout.particle_features_glob) == []

    table = pa.table({"particle_id": np.arange(5), "damage": np.linspace(0, 0.4, 5)})
    atomic_write_parquet(target, table)
    assert pq.read_table(target).equals(table)
    assert glob.glob(layout.particle_features_glob) == [str(target)]


# ------------------------------------------------------------------------------------------------
# 2. 50 scans dropped at once: each launched exactly once; a corrupt one fails alone


def test_fifty_scans_at_once_each_run_exactly_once_and_a_corrupt_one_fails_alone(tmp_path):
    from nmc_assets.defs.beamline import incoming_scans, raw_tomogram

    layout = DataLayout(tmp_path)
    scan_ids = [f"burst-{i:02d}" for i in range(50)]
    corrupt = "burst-17"
    for i, scan_id in enumerate(scan_ids):
        write_tiny_scan(layout.incoming, scan_id, seed=i, corrupt=scan_id == corrupt)

    instance = dg.DagsterInstance.ephemeral()
    resources = {"data_root": DataRootResource(data_dir=str(tmp_path)), "blocks": BlocksResource(workers=2)}

    def tick(cursor):
        return incoming_scans(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))

    first = tick(None)  # files seen once: not yet known to be complete
    assert not first.run_requests
    second = tick(first.cursor)
    requests = second.run_requests
    assert sorted(r.partition_key for r in requests) == scan_ids  # one request per scan
    assert len({r.run_key for r in requests}) == 50  # unique run keys
    (add,) = second.dynamic_partitions_requests
    assert sorted(add.partition_keys) == scan_ids
    # a tick evaluated again from the same cursor (daemon crashed before storing it) asks for the same
    # run keys, which the daemon launches only once; the next tick asks for nothing
    assert sorted(r.run_key for r in tick(first.cursor).run_requests) == sorted(r.run_key for r in requests)
    assert not tick(second.cursor).run_requests

    instance.add_dynamic_partitions("scan", list(add.partition_keys))
    outcomes = {}
    for request in requests:
        result = dg.materialize([raw_tomogram], partition_key=request.partition_key, instance=instance,
                                resources=resources, tags=request.tags, raise_on_error=False)
        outcomes[request.partition_key] = result
    failed = sorted(k for k, r in outcomes.items() if not r.success)
    assert failed == [corrupt]
    (failure,) = outcomes[corrupt].get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert f"{corrupt}.tif" in message and "NaN" in message.replace("nan", "NaN")

    # exactly one materialization per good scan, none for the corrupt one; outputs complete
    mats = instance.fetch_materializations(raw_tomogram.key, limit=1000).records
    per_scan = {}
    for record in mats:
        per_scan[record.partition_key] = per_scan.get(record.partition_key, 0) + 1
    assert per_scan == {s: 1 for s in scan_ids if s != corrupt}
    stored = sorted(p.name for p in (layout.warehouse / "tomograms").iterdir() if not p.name.startswith("."))
    assert stored == sorted(f"{s}.zarr" for s in scan_ids if s != corrupt)
    hidden = [p.name for p in (layout.warehouse / "tomograms").iterdir() if p.name.startswith(".")]
    assert len(hidden) == 49 and all(".zarr.v-" in n for n in hidden)  # one version each, no temp leftovers
    assert read_zarr(layout.tomogram("burst-03")).shape == TINY_SHAPE


# ------------------------------------------------------------------------------------------------
# 3. the catalog stays readable by a read-only reader while it is rebuilt


READER = """
    import sys, time, json
    import duckdb
    path, stop_file, out = sys.argv[1], sys.argv[2], sys.argv[3]
    import os
    reads, errors, counts = 0, [], set()
    while not os.path.exists(stop_file):
        try:
            con = duckdb.connect(path, read_only=True)
            try:
                n_rows = con.sql("SELECT count(*) FROM particle_features").fetchall()[0][0]
                n_scans = con.sql("SELECT count(*) FROM scans").fetchall()[0][0]
                counts.add((n_rows, n_scans))
            finally:
                con.close()
            reads += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    json.dump({"reads": reads, "errors": errors[:5], "n_errors": len(errors), "counts": sorted(counts)}, open(out, "w"))
"""


def _features_table(scan_id: str, n: int):
    from nmc_assets.features.columns import arrow_schema

    schema = arrow_schema()
    columns = {}
    for f in schema:
        if f.name == "scan_id":
            columns[f.name] = pa.array([scan_id] * n, f.type)
        elif f.name == "particle_id":
            columns[f.name] = pa.array(np.arange(1, n + 1), f.type)
        elif pa.types.is_integer(f.type):
            columns[f.name] = pa.array(np.arange(n), f.type)
        elif pa.types.is_boolean(f.type):
            columns[f.name] = pa.array([False] * n, f.type)
        elif pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            columns[f.name] = pa.array([scan_id] * n, f.type)
        else:
            columns[f.name] = pa.array(np.linspace(0.0, 1.0, n), pa.float64()).cast(f.type)
    return pa.table(columns, schema=schema)


def test_catalog_is_readable_while_it_is_rebuilt(tmp_path):
    import json

    from nmc_assets.features.catalog import build_catalog

    layout = DataLayout(tmp_path)
    for i in range(2):
        atomic_write_parquet(layout.particle_features(f"s{i}"), _features_table(f"s{i}", 10))
    build_catalog(layout)
    stop, out = tmp_path / "stop", tmp_path / "reader.json"
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(READER), str(layout.catalog), str(stop), str(out)],
                              cwd=REPO, start_new_session=True)
    try:
        time.sleep(1.0)  # let the reader start reading
        for i in range(2, 8):  # six rebuilds, each with one more scan
            atomic_write_parquet(layout.particle_features(f"s{i}"), _features_table(f"s{i}", 10))
            build_catalog(layout)
        time.sleep(0.3)
    finally:
        stop.touch()
        reader.wait(timeout=30)
    report = json.loads(out.read_text())
    assert report["n_errors"] == 0, report["errors"]
    assert report["reads"] >= 10
    # every state a reader saw was complete: the scans table of one finished build (2 to 8 scans), and
    # whole Parquet files only (the particle_features view reads the feature files live, 10 rows each,
    # and a scan's file is written before the build that lists it)
    for rows, scans in report["counts"]:
        assert 2 <= scans <= 8 and rows % 10 == 0 and rows >= 10 * scans, report["counts"]
    assert len({scans for _, scans in report["counts"]}) >= 2  # it did see rebuilds happen
    assert [p.name for p in layout.warehouse.iterdir() if p.name.startswith(".")] == []


# ------------------------------------------------------------------------------------------------
# 4. a step retried after a transient failure succeeds without duplicate outputs


def test_retried_step_after_transient_failure_writes_one_output(tmp_path):
    attempts = []

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2, delay=0))
    def flaky_features(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Writes its table; the first attempt dies half-way with a transient I/O error."""
        attempts.append(context.retry_number)
        target = tmp_path / "features" / "features.parquet"
        table = pa.table({"particle_id": np.arange(100), "damage": np.linspace(0, 1, 100)})
        from nmc_assets.storage import atomic_path

        with atomic_path(target) as tmp:
            writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.slice(0, 50))
            if context.retry_number == 0:
                raise OSError("transient: NFS server not responding")
            writer.write_table(table.slice(50))
            writer.close()
        return dg.MaterializeResult(metadata={"dagster/row_count": table.num_rows})

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([flaky_features], instance=instance)
    assert result.success
    assert attempts == [0, 1]
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 1
    files = sorted(p.name for p in (tmp_path / "features").iterdir())
    assert files == ["features.parquet"]  # no partial file from the failed attempt
    table = pq.read_table(tmp_path / "features" / "features.parquet")
    assert table.num_rows == 100 and len(set(table["particle_id"].to_pylist())) == 100
    assert len(instance.fetch_materializations(flaky_features.key, limit=10).records) == 1
