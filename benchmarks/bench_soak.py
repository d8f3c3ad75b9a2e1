"""Soak figure (issue 13): a burst of scans through the sensor and the daemon while readers read.

N small virtual scans (K of them bad, each bad one of a different kind) are simulated once into a
staging folder, then moved into ``incoming/`` of a fresh data root at once (one ``rename`` per file).
A local instance runs the product as deployed: ``dagster-daemon run -w workspace.yaml`` against a new
``DAGSTER_HOME`` holding ``deploy/local/dagster.yaml`` (queued runs, at most 4 at a time, ``gpu`` and
``duckdb`` pools of 1), the ``incoming_scans`` sensor switched on (``dagster sensor start``), so the
sensor registers and launches one ``scan_processing_job`` run per stable scan. The StarDist model is
materialized once before the drop (``stardist_model``: adopts the shipped default model).

Readers run all along in their own processes (``--sql-readers`` / ``--zarr-readers``), each in a loop
with ``--read-pause`` seconds between reads:

* Zarr readers open a random scan's tomogram as soon as it exists (``open_zarr``, pinned to one
  version) and check it: shape = the ``shape`` attribute = the source's shape, float32, no all-zero
  chunk, and the bytes equal the source volume as ingest reads it (sha256 computed before the drop);
  and a random scan's fused labels: shape and dtype always; for finished scans also the number of
  distinct labels = the rows of the scan's feature Parquet, and the same bytes on every read.
* SQL readers query the catalog once it exists (``query_catalog_df``, locked read-only): per-scan row
  counts of ``particle_features`` equal the scan's Parquet rows, only good scans have features, the
  ``scans`` table lists each scan once and its ``n_particles`` equals the live row count.

A failed check is a *wrong read*, an exception a *reader error*. The catalog (``particle_catalog``,
not per scan) is refreshed by this benchmark every ``--catalog-every`` seconds with ``dagster asset
materialize`` in a subprocess, and once more after the last scan: the product's own automation
(``follow_catalog_and_analytics``) waits while any scan is running, so during a burst it would not
build the catalog until the end.

At the end (all runs finished, then two more sensor intervals to catch duplicate launches) everything
is checked from the instance: one run and one materialization per asset per good scan, every bad scan
reported once with its reason (sensor log of the tick, or its one failed run naming the file), no
sensor tick failure. Wall time is from the drop to the end of the last scan's run.

    python benchmarks/bench_soak.py                      # 50 scans, 5 bad: ~75 min on the shared 2-core machine
    python benchmarks/bench_soak.py --scans 8 --bad 3 --out /tmp/soak.md   # quick run, ~10 min

Options: ``--shape Z Y X`` (default 40 96 96 at 0.2 um), ``--timeout`` s, ``--data-dir`` (kept),
``--catalog-every`` s, ``--read-pause`` s; ``--reverify DATA_DIR`` re-runs only the checks on a kept
data root. A failed soak keeps its data root (logs of the daemon and the CLI calls in ``logs/``). Run it from the repository root with the package
importable (installed, or ``PYTHONPATH=$PWD``); the subprocesses get the same ``nmc_assets``.
Exit status 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
JOB = "scan_processing_job"
SENSOR = "incoming_scans"
SENSOR_INTERVAL_S = 30
GOOD_PREFIX = "soak_g"

#: The bad kinds in the order ``--bad K`` takes them (each a different failure mode):
#: name -> (where it must be reported, words the report must contain).
BAD_KINDS = {
    "truncated_tiff": ("sensor_rejected", "truncated"),
    "nan_volume": ("failed_run", "non-finite"),
    "damaged_hdf5": ("sensor_rejected", "HDF5"),
    "invalid_sidecar": ("failed_run", "sidecar must be a JSON object"),
    "symlink_outside": ("sensor_skipped", "symbolic link"),
    "image_2d": ("sensor_rejected", "2D image"),
    "non_utf8_name": ("sensor_skipped", "invalid scan id"),
}


class WrongRead(AssertionError):
    """A read that completed but returned data that is not what was written."""


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, default=str))
    os.replace(tmp, path)


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))]


def _volume_digest(volume: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(volume).tobytes()).hexdigest()


# ------------------------------------------------------------------------------------------------
# scans: simulated good ones and the bad kinds
# ------------------------------------------------------------------------------------------------
def _simulate_one(args: tuple) -> str:
    """Simulate one good scan into ``staging`` (runs in a worker process)."""
    import warnings

    warnings.filterwarnings("ignore")
    from nmc_assets.beamline.simulate import ScanConfig, simulate_scan, write_scan

    staging, scan_id, shape, voxel, cycles, seed = args
    write_scan(simulate_scan(ScanConfig(shape=tuple(shape), voxel_size_um=voxel, cycles=cycles, seed=seed)),
               staging, scan_id)
    return scan_id


def make_good_scans(staging: Path, n: int, shape, voxel: float) -> dict[str, dict]:
    """Simulate ``n`` distinct scans; returns ``{scan_id: {"shape", "digest"}}`` of what ingest must store."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from nmc_assets.ingest import load_scan

    cycles = (0, 10, 25, 50, 100)
    jobs = [(str(staging), f"{GOOD_PREFIX}{i:03d}", list(shape), voxel, cycles[i % len(cycles)], 1000 + i)
            for i in range(n)]
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1), mp_context=mp.get_context("spawn")) as pool:
        ids = list(pool.map(_simulate_one, jobs))
    expected = {}
    for scan_id in ids:
        volume, _, _ = load_scan(scan_id, staging)  # exactly what raw_tomogram writes
        expected[scan_id] = {"shape": list(volume.shape), "digest": _volume_digest(volume)}
    return expected


def _damaged_hdf5_bytes(work: Path) -> tuple[bytes, str]:
    """A small HDF5 file with one byte flipped so that h5py raises RuntimeError or KeyError (not OSError)."""
    import h5py

    clean = work / "clean.h5"
    with h5py.File(clean, "w") as f:
        f.create_dataset("exchange/theta", data=np.zeros(3))
        f.create_dataset("other/data", data=np.zeros((3, 4, 5)))
    raw = clean.read_bytes()
    probe = work / "probe.h5"
    for offset in range(0, len(raw)):
        damaged = bytearray(raw)
        damaged[offset] ^= 0xFF
        probe.write_bytes(bytes(damaged))
        try:
            with h5py.File(probe, "r", locking=False) as f:
                if f.get("/exchange/data") is None:
                    f.visititems(lambda name, obj: None)
        except (RuntimeError, KeyError) as exc:
            return bytes(damaged), f"byte {offset} flipped; h5py raises {type(exc).__name__}"
        except Exception:  # noqa: BLE001 - other library errors: keep looking for the harder case
            continue
    raise RuntimeError("no single-byte corruption made h5py raise RuntimeError/KeyError")


def make_bad_scans(staging: Path, outside: Path, kinds: list[str], template: Path) -> dict[str, dict]:
    """Write the bad scans; returns ``{kind: {"name": file name shown in reports, "scan_id", "how"}}``.

    ``template``: a good simulated TIFF (ImageJ stack) the truncated and symlinked cases start from.
    """
    import tifffile

    bad = {}
    for kind in kinds:
        scan_id = f"soak_bad_{kind}"
        if kind == "truncated_tiff":
            data = template.read_bytes()
            (staging / f"{scan_id}.tif").write_bytes(data[: len(data) * 6 // 10])
            bad[kind] = {"name": f"{scan_id}.tif", "scan_id": scan_id, "how": "a good stack cut at 60 % of its bytes"}
        elif kind == "nan_volume":
            vol = np.random.default_rng(7).random((24, 64, 64), dtype=np.float32)
            vol[:] = np.nan
            tifffile.imwrite(staging / f"{scan_id}.tif", vol, imagej=True, metadata={"axes": "ZYX"})
            bad[kind] = {"name": f"{scan_id}.tif", "scan_id": scan_id, "how": "float32 stack, every voxel NaN"}
        elif kind == "damaged_hdf5":
            data, how = _damaged_hdf5_bytes(outside)
            (staging / f"{scan_id}.h5").write_bytes(data)
            bad[kind] = {"name": f"{scan_id}.h5", "scan_id": scan_id, "how": how}
        elif kind == "invalid_sidecar":
            vol = np.random.default_rng(8).integers(0, 255, (24, 64, 64), dtype=np.uint8)
            tifffile.imwrite(staging / f"{scan_id}.tif", vol, imagej=True, metadata={"axes": "ZYX"})
            (staging / f"{scan_id}.json").write_text("[1, 2]")
            bad[kind] = {"name": f"{scan_id}.json", "scan_id": scan_id, "how": "valid stack, sidecar `[1, 2]`"}
        elif kind == "symlink_outside":
            target = outside / "outside_scan.tif"
            shutil.copyfile(template, target)
            os.symlink(target, staging / f"{scan_id}.tif")
            bad[kind] = {"name": f"{scan_id}.tif", "scan_id": scan_id,
                         "how": "symbolic link to a good stack outside the drop folder"}
        elif kind == "image_2d":
            vol = np.random.default_rng(9).integers(0, 60000, (96, 96), dtype=np.uint16)
            tifffile.imwrite(staging / f"{scan_id}.tif", vol)
            bad[kind] = {"name": f"{scan_id}.tif", "scan_id": scan_id, "how": "a single 96 x 96 uint16 image"}
        elif kind == "non_utf8_name":
            name = os.fsencode(staging) + b"/soak_bad_caf\xe9.tif"
            with open(name, "wb") as f:
                f.write(template.read_bytes())
            bad[kind] = {"name": "soak_bad_caf\\xe9.tif", "scan_id": None,
                         "how": "a good stack named with a Latin-1 byte (not UTF-8)"}
        else:
            raise ValueError(kind)
    return bad


def drop_all(staging: Path, incoming: Path) -> int:
    """Move every staged file into ``incoming`` (companions first, volumes last); returns the count."""
    names = sorted(os.listdir(os.fsencode(staging)))
    volumes = [n for n in names if n.lower().endswith((b".tif", b".tiff", b".h5")) and b".labels." not in n]
    order = [n for n in names if n not in volumes] + volumes
    for name in order:
        os.rename(os.path.join(os.fsencode(staging), name), os.path.join(os.fsencode(incoming), name))
    return len(order)


# ------------------------------------------------------------------------------------------------
# readers (separate processes)
# ------------------------------------------------------------------------------------------------
def _zarr_read(layout, state: dict, rng: random.Random, seen: dict, counts: Counter) -> None:
    import pyarrow.parquet as pq

    from nmc_assets.storage import open_zarr

    expected = state["expected"]
    finished = set(state["finished"])
    present = [s for s in expected if layout.tomogram(s).exists()]
    if not present:
        counts["zarr_waiting"] += 1
        return
    scan = rng.choice(present)
    arr = open_zarr(layout.tomogram(scan))
    attrs = dict(arr.attrs)
    want = tuple(expected[scan]["shape"])
    if tuple(arr.shape) != want or tuple(attrs.get("shape", ())) != want:
        raise WrongRead(f"tomogram {scan}: shape {tuple(arr.shape)}, attrs {attrs.get('shape')}, expected {want}")
    if attrs.get("scan_id") != scan or arr.dtype != np.float32:
        raise WrongRead(f"tomogram {scan}: attrs scan_id {attrs.get('scan_id')!r}, dtype {arr.dtype}")
    data = np.asarray(arr[...])
    cz, cy, cx = arr.chunks
    for z in range(0, want[0], cz):
        for y in range(0, want[1], cy):
            for x in range(0, want[2], cx):
                if not np.any(data[z:z + cz, y:y + cy, x:x + cx]):
                    raise WrongRead(f"tomogram {scan}: chunk at {(z, y, x)} is all zero")
    if _volume_digest(data) != expected[scan]["digest"]:
        raise WrongRead(f"tomogram {scan}: content differs from the source volume")
    counts["tomogram_reads"] += 1

    labelled = [s for s in present if layout.fused_labels(s).exists()]
    if not labelled:
        return
    scan = rng.choice(labelled)
    arr = open_zarr(layout.fused_labels(scan))
    want = tuple(expected[scan]["shape"])
    if tuple(arr.shape) != want or arr.dtype != np.uint32 or dict(arr.attrs).get("scan_id") != scan:
        raise WrongRead(f"fused labels {scan}: shape {tuple(arr.shape)} dtype {arr.dtype} "
                        f"scan_id {dict(arr.attrs).get('scan_id')!r}; expected {want} uint32 {scan!r}")
    labels = np.asarray(arr[...])
    if scan in finished:  # the run is over: the labels are final, their features written
        n_labels = int(np.count_nonzero(np.unique(labels)))
        rows = pq.ParquetFile(layout.particle_features(scan)).metadata.num_rows
        if n_labels != rows:
            raise WrongRead(f"fused labels {scan}: {n_labels} distinct labels but {rows} feature rows")
        digest = _volume_digest(labels)
        if seen.setdefault(scan, digest) != digest:
            raise WrongRead(f"fused labels {scan}: content changed after its run finished")
        counts["labels_reads_finished"] += 1
    else:
        counts["labels_reads_in_progress"] += 1


def _sql_read(layout, state: dict, rng: random.Random, seen: dict, counts: Counter) -> None:
    import pyarrow.parquet as pq

    from nmc_assets.features.sql import query_catalog_df

    catalog = layout.catalog
    if not catalog.exists():
        counts["sql_waiting"] += 1
        return
    good = set(state["expected"])
    per_scan = query_catalog_df("SELECT scan_id, count(*) AS n FROM particle_features GROUP BY scan_id", catalog)
    counted = {str(r.scan_id): int(r.n) for r in per_scan.itertuples()}
    stray = sorted(set(counted) - good)
    if stray:
        raise WrongRead(f"catalog: features of scans that are not good scans: {stray}")
    for scan, n in counted.items():
        rows = pq.ParquetFile(layout.particle_features(scan)).metadata.num_rows
        if n != rows:
            raise WrongRead(f"catalog: {scan} has {n} rows in particle_features, its Parquet {rows}")
    scans = query_catalog_df("SELECT scan_id, status, features_present, n_particles FROM scans", catalog)
    ids = [str(s) for s in scans["scan_id"]]
    if len(ids) != len(set(ids)):
        raise WrongRead(f"catalog: scans lists a scan twice: {sorted(k for k, v in Counter(ids).items() if v > 1)}")
    for r in scans.itertuples():
        if bool(r.features_present):
            if str(r.scan_id) not in good:
                raise WrongRead(f"catalog: bad scan {r.scan_id} has features")
            live = counted.get(str(r.scan_id))
            if live is not None and int(r.n_particles) != live:
                raise WrongRead(f"catalog: scans says {r.scan_id} has {r.n_particles} particles, "
                                f"particle_features {live}")
    # one analytical query as a user would run it
    query_catalog_df("SELECT cycles, count(*) AS n, avg(damage) AS damage FROM particle_features GROUP BY cycles", catalog)
    counts["sql_reads"] += 1
    counts["sql_scans_seen_max"] = max(counts["sql_scans_seen_max"], len(counted))


def reader_main(kind: str, root: str, state_file: str, stop, results, pause: float, seed: int) -> None:
    """One reader process: read in a loop until ``stop`` is set, then put its tally on ``results``."""
    import warnings

    warnings.filterwarnings("ignore")
    from nmc_assets.paths import DataLayout

    layout = DataLayout(Path(root))
    rng = random.Random(seed)
    counts: Counter = Counter()
    wrong: list[str] = []
    errors: list[str] = []
    seen: dict = {}
    read = _zarr_read if kind == "zarr" else _sql_read
    t0 = time.time()
    while not stop.is_set():
        try:
            state = json.loads(Path(state_file).read_text())
        except (OSError, ValueError) as exc:  # the benchmark's own file: not a product error
            counts["state_unreadable"] += 1
            state = None
            if counts["state_unreadable"] > 100:
                errors.append(f"state file: {exc!r}")
        if state is not None:
            try:
                read(layout, state, rng, seen, counts)
            except WrongRead as exc:
                counts["wrong_reads"] += 1
                if len(wrong) < 20:
                    wrong.append(f"{time.time() - t0:.0f}s {exc}")
            except Exception as exc:  # noqa: BLE001 - every exception is a reader error
                counts["reader_errors"] += 1
                if len(errors) < 20:
                    errors.append(f"{time.time() - t0:.0f}s {type(exc).__name__}: {exc} | "
                                  + traceback.format_exc(limit=3).replace("\n", " / ")[-600:])
        stop.wait(pause)
    results.put({"kind": kind, "seed": seed, "counts": dict(counts), "wrong": wrong, "errors": errors,
                 "seconds": time.time() - t0})


# ------------------------------------------------------------------------------------------------
# the local instance
# ------------------------------------------------------------------------------------------------
class Processes:
    """Subprocesses in their own process groups, all killed (group-wise) on close."""

    def __init__(self, env: dict, cwd: Path, logs: Path):
        self.env, self.cwd, self.logs, self.procs = env, cwd, logs, []

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        out = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(args, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        out.close()
        self.procs.append((name, proc))
        return proc

    def run(self, name: str, args: list[str], timeout: float = 900) -> tuple[int, float]:
        t = time.perf_counter()
        proc = self.start(name, args)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            rc = -9
        return rc, time.perf_counter() - t

    @staticmethod
    def kill(proc: subprocess.Popen, grace: float = 20.0) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:  # children left behind in the group (run workers, code servers)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        for _, proc in reversed(self.procs):
            self.kill(proc)


class CatalogRefresher(threading.Thread):
    """Materializes ``particle_catalog`` every ``every`` seconds (a subprocess, the local instance)."""

    def __init__(self, procs: Processes, dagster: str, every: float):
        super().__init__(daemon=True)
        self.procs, self.every = procs, every
        self.args = [dagster, "asset", "materialize", "-m", "nmc_assets.definitions", "--select", "particle_catalog"]
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.refreshes: list[dict] = []

    def refresh(self) -> dict:
        with self.lock:
            start = time.time()
            rc, wall = self.procs.run("catalog", self.args)
            entry = {"start": start, "wall_s": round(wall, 1), "rc": rc}
            self.refreshes.append(entry)
            return entry

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.refresh()


# ------------------------------------------------------------------------------------------------
# verification from the instance
# ------------------------------------------------------------------------------------------------
def _runs(instance) -> list:
    import dagster as dg

    return list(instance.get_run_records(dg.RunsFilter(job_name=JOB)))


def _failure_text(instance, run_id: str) -> str:
    from dagster._core.events import DagsterEventType

    parts = []
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}):
        event = entry.dagster_event
        data = event.event_specific_data
        error = getattr(data, "error", None)
        if error is not None:
            parts.append(error.message)
        user = getattr(data, "user_failure_data", None)
        if user is not None and user.description:
            parts.append(user.description)
        if event.message:
            parts.append(event.message)
    return " | ".join(parts)


def _sensor_log(instance) -> tuple[list[dict], Counter]:
    """Every log record of the sensor's ticks, and the tick statuses."""
    from dagster._core.definitions.instigation_logger import get_instigation_log_records
    from dagster._core.scheduler.instigation import InstigatorType

    records, statuses = [], Counter()
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name != SENSOR:
            continue
        for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=10000):
            statuses[tick.status.value] += 1
            if tick.status.value == "FAILURE" and tick.error is not None:
                records.append({"levelname": "TICK_FAILURE", "msg": tick.error.message, "tick": tick.tick_id})
            if tick.log_key:
                for rec in get_instigation_log_records(instance, tick.log_key):
                    records.append({"levelname": rec.get("levelname"), "msg": rec.get("msg", ""), "tick": tick.tick_id})
    return records, statuses


def _running_instigators(instance) -> list[str]:
    from dagster._core.scheduler.instigation import InstigatorStatus

    return sorted(s.instigator_name for s in instance.all_instigator_state()
                  if s.status in (InstigatorStatus.RUNNING, InstigatorStatus.DECLARED_IN_CODE)
                  and s.instigator_name != SENSOR)


def verify(instance, defs, layout, expected: dict, bad: dict, t_drop: float) -> dict:
    import dagster as dg
    import pyarrow.parquet as pq

    from nmc_assets.defs.beamline import scan_processing_selection
    from nmc_assets.features.sql import query_catalog_df

    graph = defs.resolve_asset_graph()
    assets = [k for k in graph.toposorted_asset_keys if k in set(scan_processing_selection.resolve(graph))]
    problems: list[str] = []

    runs = _runs(instance)
    by_scan: dict[str, list] = {}
    for r in runs:
        by_scan.setdefault(r.dagster_run.tags.get("dagster/partition", "?"), []).append(r)
    good = sorted(expected)
    for scan in good:
        rs = by_scan.get(scan, [])
        ok = [r for r in rs if r.dagster_run.status.value == "SUCCESS"]
        if len(rs) != 1 or len(ok) != 1:
            problems.append(f"good scan {scan}: {len(rs)} runs ({', '.join(r.dagster_run.status.value for r in rs)}); "
                            "expected exactly one successful run")

    mats: dict[str, Counter] = {}
    for key in assets:
        recs = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=10000).records
        mats[key.to_user_string()] = Counter(r.partition_key for r in recs)
    for name, per_partition in mats.items():
        for scan in good:
            if per_partition.get(scan, 0) != 1:
                problems.append(f"{name}[{scan}]: {per_partition.get(scan, 0)} materializations, expected 1")
        for scan in per_partition:
            if scan not in expected:
                problems.append(f"{name}[{scan}]: materialized, but it is not a good scan")

    log, tick_statuses = _sensor_log(instance)
    if tick_statuses.get("FAILURE"):
        problems.append(f"sensor: {tick_statuses['FAILURE']} failed ticks")
    bad_report = {}
    for kind, info in bad.items():
        where, words = BAD_KINDS[kind]
        mentions = [r for r in log if info["name"] in r["msg"]]
        scan_runs = by_scan.get(info["scan_id"] or "", [])
        entry = {"name": info["name"], "how": info["how"], "expected_in": where, "sensor_mentions": len(mentions),
                 "runs": [r.dagster_run.status.value for r in scan_runs], "reason": None}
        if where == "failed_run":
            if len(scan_runs) != 1 or scan_runs[0].dagster_run.status.value != "FAILURE":
                problems.append(f"bad {kind}: runs {entry['runs']}; expected exactly one failed run")
            if mentions:
                problems.append(f"bad {kind}: also reported by the sensor {len(mentions)}x")
            if scan_runs:
                text = _failure_text(instance, scan_runs[0].dagster_run.run_id)
                hit = next((p for p in text.split(" | ") if info["name"] in p and words in p), None)
                entry["reason"] = (hit or text)[:300]
                if hit is None:
                    problems.append(f"bad {kind}: failure does not name {info['name']} with '{words}': {text[:300]}")
        else:
            if scan_runs:
                problems.append(f"bad {kind}: {len(scan_runs)} runs launched; expected none")
            if len(mentions) != 1:
                problems.append(f"bad {kind}: reported {len(mentions)}x by the sensor; expected once")
            if mentions:
                entry["reason"] = mentions[0]["msg"][:300]
                entry["level"] = mentions[0]["levelname"]
                if words not in mentions[0]["msg"]:
                    problems.append(f"bad {kind}: sensor report lacks '{words}': {mentions[0]['msg'][:300]}")
        bad_report[kind] = entry
    unexpected = [r for r in log if r["levelname"] in ("WARNING", "ERROR", "TICK_FAILURE")
                  and not any(info["name"] in r["msg"] for info in bad.values())]
    for r in unexpected:
        problems.append(f"sensor: unexpected {r['levelname']}: {r['msg'][:300]}")
    launches = Counter()
    for r in log:  # "<repository> - incoming_scans - launching a, b (new partitions: a, b)"
        head, sep, tail = r["msg"].partition("launching ")
        if sep and r["levelname"] == "INFO" and (not head or head.endswith(f"{SENSOR} - ")):
            for part in tail.split(" (new partitions")[0].split(", "):
                launches[part.strip()] += 1
    never = sorted(set(expected) - set(launches))
    if never:
        problems.append(f"sensor log has no launch line for these good scans: {never}")
    twice = sorted(s for s, n in launches.items() if n > 1)
    if twice:
        problems.append(f"sensor launched these scans more than once: {twice}")

    # the final catalog: every good scan with its features, no bad scan with features
    catalog = {}
    try:
        scans = query_catalog_df("SELECT scan_id, status, n_particles FROM scans", layout.catalog)
        counted = query_catalog_df("SELECT scan_id, count(*) AS n FROM particle_features GROUP BY 1", layout.catalog)
        counts = {str(r.scan_id): int(r.n) for r in counted.itertuples()}
        status = {str(r.scan_id): str(r.status) for r in scans.itertuples()}
        for scan in good:
            rows = pq.ParquetFile(layout.particle_features(scan)).metadata.num_rows
            if status.get(scan) != "features" or counts.get(scan) != rows:
                problems.append(f"final catalog: {scan} status {status.get(scan)}, {counts.get(scan)} rows, Parquet {rows}")
        catalog = {"scans_rows": len(scans), "feature_rows": int(sum(counts.values())),
                   "scans_with_features": len(counts), "status": dict(Counter(status.values()))}
    except Exception as exc:  # noqa: BLE001
        problems.append(f"final catalog unreadable: {type(exc).__name__}: {exc}")

    # timings of the scan runs
    done = [r for r in runs if r.end_time is not None]
    walls = [r.end_time - r.start_time for r in done if r.start_time is not None]
    good_runs = [r for r in done if r.dagster_run.tags.get("dagster/partition") in expected
                 and r.dagster_run.status.value == "SUCCESS"]
    steps: dict[str, list[float]] = {}
    for r in good_runs:
        for s in instance.get_run_step_stats(r.dagster_run.run_id):
            if s.start_time is not None and s.end_time is not None:
                steps.setdefault(s.step_key, []).append(s.end_time - s.start_time)
    created = [r.create_timestamp.timestamp() for r in runs]
    last_end = max((r.end_time for r in done), default=float("nan"))
    checks = Counter()
    from dagster._core.events import DagsterEventType

    for r in good_runs:
        for entry in instance.all_logs(r.dagster_run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
            data = entry.dagster_event.event_specific_data
            checks[(data.check_name, "passed" if data.passed else "failed")] += 1
    return {
        "problems": problems,
        "assets": [k.to_user_string() for k in assets],
        "materializations": {k: sum(v.values()) for k, v in mats.items()},
        "runs": {"total": len(runs), "by_status": dict(Counter(r.dagster_run.status.value for r in runs))},
        "run_wall_s": [round(w, 1) for w in walls],
        "good_run_wall_s": [round(r.end_time - r.start_time, 1) for r in good_runs],
        "queue_wait_s": [round(r.start_time - r.create_timestamp.timestamp(), 1) for r in done if r.start_time],
        "first_launch_after_drop_s": round(min(created) - t_drop, 1) if created else None,
        "last_launch_after_drop_s": round(max(created) - t_drop, 1) if created else None,
        "wall_s": round(last_end - t_drop, 1),
        "step_mean_s": {k: round(statistics.mean(v), 2) for k, v in steps.items()},
        "checks": {f"{n} {s}": c for (n, s), c in sorted(checks.items())},
        "bad": bad_report,
        "sensor_ticks": dict(tick_statuses),
        "sensor_launches": sum(launches.values()),
        "other_instigators_running": _running_instigators(instance),
        "catalog": catalog,
    }


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=50, help="files dropped at once, bad ones included (default 50)")
    parser.add_argument("--bad", type=int, default=5, help=f"how many of them are bad, 0-{len(BAD_KINDS)} (default 5)")
    parser.add_argument("--shape", type=int, nargs=3, default=(40, 96, 96), metavar=("Z", "Y", "X"))
    parser.add_argument("--voxel-size", type=float, default=0.2)
    parser.add_argument("--sql-readers", type=int, default=1)
    parser.add_argument("--zarr-readers", type=int, default=1)
    parser.add_argument("--read-pause", type=float, default=0.5, help="seconds between two reads of a reader")
    parser.add_argument("--catalog-every", type=float, default=240.0, help="catalog refresh period (s, default 240)")
    parser.add_argument("--timeout", type=float, default=3 * 3600.0, help="give up after this long (s)")
    parser.add_argument("--data-dir", help="data root (default: a new temporary folder, removed at the end)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "soak.md"))
    parser.add_argument("--reverify", metavar="DATA_DIR",
                        help="only re-run the checks on a kept data root of an earlier soak (its daemon stopped)")
    args = parser.parse_args(argv)
    if args.reverify:
        return reverify(Path(args.reverify).resolve(), Path(args.out))
    if not 0 <= args.bad <= len(BAD_KINDS) or args.scans <= args.bad:
        parser.error(f"need 0 <= --bad <= {len(BAD_KINDS)} and --scans > --bad")

    import warnings

    warnings.filterwarnings("ignore")
    import nmc_assets

    package_root = Path(nmc_assets.__file__).resolve().parents[1]
    keep = bool(args.data_dir)
    root = Path(args.data_dir or tempfile.mkdtemp(prefix="nmc_bench_soak_")).resolve()
    home, logs = root / "dagster_home", root / "logs"
    for d in (home, logs, root / "staging", root / "outside", root / "incoming"):
        d.mkdir(parents=True, exist_ok=True)
    if package_root != REPO:
        print(f"note: nmc_assets is imported from {package_root}, not from this checkout {REPO}", flush=True)
    shutil.copyfile(REPO / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml")
    pythonpath = os.pathsep.join([str(package_root)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    os.environ.update({"NMC_DATA_DIR": str(root), "DAGSTER_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2",
                       "PYTHONPATH": pythonpath})
    os.environ.pop("NMC_EXECUTOR", None)
    bindir = Path(sys.executable).parent
    procs = Processes(dict(os.environ), REPO, logs)
    report: dict = {"args": vars(args), "load_start": _load(), "root": str(root)}
    print(f"data root {root}; load {report['load_start']}", flush=True)

    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    results = ctx.Queue()
    readers = []
    refresher = None

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    ok = False
    try:
        import dagster as dg

        from nmc_assets.definitions import defs as load_defs
        from nmc_assets.paths import DataLayout

        layout = DataLayout(root)
        n_good, kinds = args.scans - args.bad, list(BAD_KINDS)[: args.bad]
        t = time.perf_counter()
        expected = make_good_scans(root / "staging", n_good, args.shape, args.voxel_size)
        bad = make_bad_scans(root / "staging", root / "outside", kinds, root / "staging" / f"{GOOD_PREFIX}000.tif")
        report["simulate_s"] = round(time.perf_counter() - t, 1)
        report.update({"n_good": n_good, "n_bad": len(bad), "expected": expected, "bad": bad})
        print(f"simulated {n_good} good + {len(bad)} bad scans in {report['simulate_s']} s", flush=True)
        state_file = root / "soak_state.json"
        _write_json_atomic(state_file, {"expected": expected, "finished": []})

        # the model every scan uses, once, before the burst (not timed)
        rc, wall = procs.run("stardist_model", [str(bindir / "dagster"), "asset", "materialize", "-m",
                                                "nmc_assets.definitions", "--select", "stardist_model"])
        if rc != 0:
            raise RuntimeError(f"stardist_model failed (exit {rc}); see {logs / 'stardist_model.log'}")
        report["stardist_model_s"] = round(wall, 1)

        daemon = procs.start("daemon", [str(bindir / "dagster-daemon"), "run", "-w", "workspace.yaml"])
        rc, _ = procs.run("sensor_start", [str(bindir / "dagster"), "sensor", "start", SENSOR, "-w", "workspace.yaml"])
        if rc != 0:
            raise RuntimeError(f"could not start {SENSOR} (exit {rc}); see {logs / 'sensor_start.log'}")

        for i in range(args.zarr_readers + args.sql_readers):
            kind = "zarr" if i < args.zarr_readers else "sql"
            p = ctx.Process(target=reader_main, args=(kind, str(root), str(state_file), stop, results,
                                                      args.read_pause, 100 + i), daemon=True)
            p.start()
            readers.append(p)

        t_drop = report["t_drop"] = time.time()
        n_files = drop_all(root / "staging", layout.incoming)
        report["drop_s"] = round(time.time() - t_drop, 3)
        report["dropped_files"] = n_files
        print(f"dropped {n_files} files in {report['drop_s']} s", flush=True)
        refresher = CatalogRefresher(procs, str(bindir / "dagster"), args.catalog_every)
        refresher.start()

        must_end = set(expected) | {b["scan_id"] for k, b in bad.items() if BAD_KINDS[k][0] == "failed_run"}
        loads, deadline, last_print = [], t_drop + args.timeout, 0.0
        with dg.DagsterInstance.get() as instance:
            while True:
                if daemon.poll() is not None:
                    raise RuntimeError(f"dagster-daemon exited ({daemon.returncode}); see {logs / 'daemon.log'}")
                runs = _runs(instance)
                terminal = {r.dagster_run.tags.get("dagster/partition") for r in runs if r.dagster_run.is_finished}
                active = [r for r in runs if not r.dagster_run.is_finished]
                finished = sorted(r.dagster_run.tags.get("dagster/partition") for r in runs
                                  if r.dagster_run.status.value == "SUCCESS"
                                  and r.dagster_run.tags.get("dagster/partition") in expected)
                _write_json_atomic(state_file, {"expected": expected, "finished": finished})
                loads.append(_load())
                if time.time() - last_print > 60:
                    last_print = time.time()
                    print(f"{time.time() - t_drop:6.0f} s: {len(runs)} runs, {len(active)} active, "
                          f"{len(finished)}/{len(expected)} good done; load {loads[-1]}", flush=True)
                if must_end <= terminal and not active:
                    break
                if time.time() > deadline:
                    raise TimeoutError(f"not done after {args.timeout:.0f} s: {sorted(must_end - terminal)[:10]} ...")
                time.sleep(5)
            print(f"all scans done {time.time() - t_drop:.0f} s after the drop; final catalog refresh, "
                  "then two sensor intervals for late duplicates", flush=True)
            refresher.stop.set()
            final = refresher.refresh()
            report["final_catalog_refresh"] = final
            tail_end = time.time() + 2 * SENSOR_INTERVAL_S + 5
            while time.time() < tail_end:
                loads.append(_load())
                time.sleep(5)
            stop.set()
            tallies = []
            for _ in readers:
                try:
                    tallies.append(results.get(timeout=60))
                except Exception:  # noqa: BLE001
                    tallies.append({"kind": "?", "counts": {}, "wrong": [], "errors": ["reader gave no result"]})
            procs.kill(daemon)
            report["readers"] = tallies
            report["catalog_refreshes"] = refresher.refreshes
            report["load_during"] = {"mean_1min": round(statistics.mean(l[0] for l in loads if l), 2),
                                     "max_1min": max(l[0] for l in loads if l)}
            report["load_end"] = _load()
            report["verify"] = verify(instance, load_defs(), layout, expected, bad, t_drop)
        wrong = sum(t["counts"].get("wrong_reads", 0) for t in tallies)
        errors = sum(t["counts"].get("reader_errors", 0) for t in tallies)
        missing = [t for t in tallies if t["kind"] == "?"]
        ok = not report["verify"]["problems"] and wrong == 0 and errors == 0 and not missing \
            and all(r["rc"] == 0 for r in refresher.refreshes)
        report["passed"] = ok
    except BaseException as exc:
        report["aborted"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        stop.set()
        if refresher is not None:
            refresher.stop.set()
        procs.close()
        for p in readers:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
        (root / "bench_soak.json").write_text(json.dumps(report, indent=2, default=str))
    text = render(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(text)
    if not keep and ok:
        shutil.rmtree(root, ignore_errors=True)
    elif not ok:
        print(f"kept {root} for inspection (logs in {logs})")
    return 0 if ok else 1


def reverify(root: Path, out: Path) -> int:
    """Re-run :func:`verify` on a kept data root (for debugging the checks) and re-render the report."""
    import warnings

    warnings.filterwarnings("ignore")
    report = json.loads((root / "bench_soak.json").read_text())
    os.environ.update({"NMC_DATA_DIR": str(root), "DAGSTER_HOME": str(root / "dagster_home")})
    import dagster as dg

    from nmc_assets.definitions import defs as load_defs
    from nmc_assets.paths import DataLayout

    with dg.DagsterInstance.get() as instance:
        report["verify"] = verify(instance, load_defs(), DataLayout(root), report["expected"], report["bad"],
                                  report["t_drop"])
    report.pop("aborted", None)
    wrong = sum(t["counts"].get("wrong_reads", 0) + t["counts"].get("reader_errors", 0) for t in report["readers"])
    report["passed"] = not report["verify"]["problems"] and wrong == 0
    text = render(report)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (root / "bench_soak.json").write_text(json.dumps(report, indent=2, default=str))
    print(text)
    return 0 if report["passed"] else 1


def render(report: dict) -> str:
    a = report["args"]
    lines = ["# Soak: a burst of scans through the sensor and the daemon, readers all along (benchmarks/bench_soak.py)", ""]
    cmd = f"python benchmarks/bench_soak.py --scans {a['scans']} --bad {a['bad']}"
    lines += [
        f"Date 2026-11-30; machine: 2-core x86-64 CPU, 24 GiB, no GPU ({platform.python_implementation()} "
        f"{platform.python_version()}), shared with other jobs: load average {report.get('load_start')} at the start, "
        f"{report.get('load_end')} at the end (1/5/15 min); during the soak the 1-min load averaged "
        f"{report.get('load_during', {}).get('mean_1min', '?')} (max {report.get('load_during', {}).get('max_1min', '?')}).",
        "",
        f"Command: `{cmd}` (shape {' x '.join(map(str, a['shape']))} voxels at {a['voxel_size']} um, "
        f"{a['zarr_readers']} Zarr + {a['sql_readers']} SQL reader processes, {a['read_pause']} s between reads, "
        f"catalog refreshed every {a['catalog_every']:.0f} s).",
        "",
    ]
    if "aborted" in report:
        lines += [f"**Aborted**: {report['aborted']}", ""]
    v = report.get("verify")
    if not v:
        return "\n".join(lines) + "\n"
    good_walls = v["good_run_wall_s"]
    n_good = report["n_good"]
    wall = v["wall_s"]
    reads = Counter()
    for t in report["readers"]:
        reads.update(t["counts"])
    lines += [
        "## Result",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| scans dropped at once | {a['scans']} ({n_good} good, {report['n_bad']} bad), {report['dropped_files']} files, "
        f"moved in {report['drop_s']} s |",
        f"| wall time, drop to end of the last scan's run | **{wall:.0f} s** ({wall / 60:.1f} min) |",
        f"| good scans per hour | **{3600 * n_good / wall:.0f}** ({wall / n_good:.0f} s of the machine per scan) |",
        f"| run wall time, good scans: median / p90 / max | {statistics.median(good_walls):.0f} / "
        f"{_pct(good_walls, 90):.0f} / {max(good_walls):.0f} s |",
        f"| queue wait (created to started): median / max | {statistics.median(v['queue_wait_s']):.0f} / "
        f"{max(v['queue_wait_s']):.0f} s |",
        f"| first / last run created after the drop | {v['first_launch_after_drop_s']} / {v['last_launch_after_drop_s']} s |",
        f"| runs of {JOB} | {v['runs']['total']} ({', '.join(f'{k} {n}' for k, n in v['runs']['by_status'].items())}) |",
        f"| materializations ({', '.join(v['assets'])}) | {', '.join(str(n) for n in v['materializations'].values())} |",
        f"| tomogram reads (content = source, bytes compared) | {reads.get('tomogram_reads', 0)} |",
        f"| fused-label reads: finished scans (labels = feature rows, stable) / scans still running | "
        f"{reads.get('labels_reads_finished', 0)} / {reads.get('labels_reads_in_progress', 0)} |",
        f"| SQL reads of the catalog (3 queries each) | {reads.get('sql_reads', 0)} (before the first catalog: "
        f"{reads.get('sql_waiting', 0)} polls) |",
        f"| **wrong reads / reader errors** | **{reads.get('wrong_reads', 0)} / {reads.get('reader_errors', 0)}** |",
        f"| sensor ticks; scans in its launch lines | {', '.join(f'{k} {n}' for k, n in v['sensor_ticks'].items())}; "
        f"{v['sensor_launches']} |",
        f"| catalog refreshes during the soak (+ the final one) | {len(report['catalog_refreshes']) - 1} + 1, "
        f"{statistics.median([r['wall_s'] for r in report['catalog_refreshes']]):.0f} s median each, "
        f"exit codes {sorted(set(r['rc'] for r in report['catalog_refreshes']))} |",
        f"| final catalog | {v['catalog']} |",
        f"| all checks passed | **{'yes' if report.get('passed') else 'NO'}** |",
        "",
        "## Bad scans: where each was reported, and how",
        "",
        "| kind | file | made as | expected | sensor log lines naming it | runs | reason reported |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind, b in v["bad"].items():
        reason = " ".join((b.get("reason") or "-").split()).replace("|", "/").replace(report["root"], "<root>")
        level = f"{b['level']}: " if b.get("level") else ""
        lines.append(f"| {kind} | `{b['name']}` | {b['how']} | {b['expected_in']} | {b['sensor_mentions']} | "
                     f"{', '.join(b['runs']) or 'none'} | {level}{reason} |")
    lines += ["", "## Where a good scan's run spends its time (mean s per run; each step is a process)", "",
              "| step | s |", "| --- | --- |"]
    for k, s in v["step_mean_s"].items():
        lines.append(f"| {k} | {s:.1f} |")
    steps_sum = sum(v["step_mean_s"].values())
    lines.append(f"| sum of the steps | {steps_sum:.1f} |")
    lines.append(f"| run wall (median), orchestration included | {statistics.median(good_walls):.1f} |")
    lines.append(f"| orchestration and waiting: run wall minus steps (process start-up, imports, event writes, "
                 f"waiting for CPU and pool slots beside 3 other runs) | {statistics.median(good_walls) - steps_sum:.1f} |")
    if v["checks"]:
        lines += ["", "Asset checks over the good scans' runs: "
                  + ", ".join(f"{k}: {n}" for k, n in v["checks"].items()) + "."]
    if v["other_instigators_running"]:
        lines += ["", f"Other sensors/schedules running: {v['other_instigators_running']}"]
    problems = v["problems"]
    lines += ["", "## Problems found", ""]
    lines += [f"- {p}" for p in problems] or ["None: every check above passed."]
    for t in report["readers"]:
        for w in t["wrong"]:
            lines.append(f"- wrong read ({t['kind']} reader): {w}")
        for e in t["errors"]:
            lines.append(f"- reader error ({t['kind']} reader): {e}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
