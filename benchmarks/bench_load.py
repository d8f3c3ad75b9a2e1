"""Load figure: how many scans per hour the local instance processes, and where the time goes per asset.

Runs the per-scan part of the asset graph (``raw_tomogram`` and every scan-partitioned asset after it,
the same selection as the ``incoming_scans`` sensor's ``scan_processing_job``) on the default virtual
scans (``nmc_assets.beamline.defaults``: 128 x 320 x 320 voxels each) the way the local instance runs
it: ``dagster asset materialize`` in a fresh process against a persistent instance, with the code
location's executor (multiprocess: every step in its own spawned process). Per-step times come from the
instance's step stats; "orchestration" is the run's wall time minus its steps (process start-up,
imports, event log writes).

Baseline in the same run: the same selection executed in process (``execute_in_process``, what ``make
demo`` does), which pays no per-step process start-up. The one-off upstream assets (the model) and the
collection-level assets that follow a batch of scans (catalog, analytics) are timed separately.

    python benchmarks/bench_load.py [--data-dir DIR] [--no-baseline] [--out benchmarks/results/operations.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO

AGGREGATES = ("particle_catalog", "damage_model", "damage_drivers")


def _load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _run_cli(args: list[str], env: dict[str, str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "a") as out:
        proc = subprocess.run(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed (exit {proc.returncode}); see {log}")
    return seconds


def _step_seconds(instance, run_id: str) -> dict[str, float]:
    return {
        s.step_key: (s.end_time - s.start_time)
        for s in instance.get_run_step_stats(run_id)
        if s.start_time is not None and s.end_time is not None
    }


def _latest_run(instance, partition: str | None):
    import dagster as dg

    tags = {"dagster/partition": partition} if partition else {}
    (record,) = instance.get_run_records(dg.RunsFilter(tags=tags), limit=1)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="data root to use (default: a new temporary folder, removed at the end)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the in-process baseline")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "operations.md"))
    args = parser.parse_args(argv)

    keep = bool(args.data_dir)
    root = Path(args.data_dir or tempfile.mkdtemp(prefix="nmc_bench_load_")).resolve()
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml")
    os.environ.update({"NMC_DATA_DIR": str(root), "DAGSTER_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"})
    os.environ.pop("NMC_EXECUTOR", None)
    env = dict(os.environ)
    log = root / "bench_load.log"
    dagster_cli = str(Path(sys.executable).parent / "dagster")
    load_before = _load_average()

    import warnings

    warnings.filterwarnings("ignore")
    import dagster as dg

    from nmc_assets.beamline.defaults import DEFAULT_SCANS, write_default_scans
    from nmc_assets.definitions import defs as load_defs
    from nmc_assets.paths import DataLayout

    layout = DataLayout(root)
    t = time.perf_counter()
    write_default_scans(layout.incoming)
    simulate_s = time.perf_counter() - t
    scans = sorted(DEFAULT_SCANS)
    shape = DEFAULT_SCANS[scans[0]].shape

    defs = load_defs()
    graph = defs.resolve_asset_graph()
    order = [k for k in graph.toposorted_asset_keys if graph.get(k).is_materializable]
    raw = dg.AssetKey("raw_tomogram")
    downstream = set(dg.AssetSelection.assets(raw).downstream().resolve(graph))
    per_scan = [k for k in order if k in downstream and graph.get(k).partitions_def is not None]
    # unpartitioned parents of the per-scan assets (the StarDist model), materialized once first
    parents = {p for k in per_scan for p in graph.get(k).parent_keys}
    upstream_once = [k for k in order if k in parents and graph.get(k).partitions_def is None]
    aggregates = [dg.AssetKey(n) for n in AGGREGATES if graph.has(dg.AssetKey(n))]
    job = defs.resolve_implicit_global_asset_job_def()

    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("scan", scans)
        # one-off: the model the per-scan chain uses (in process; not part of the per-scan figure)
        one_off = {}
        for key in upstream_once:
            t = time.perf_counter()
            result = job.execute_in_process(instance=instance, asset_selection=[key], raise_on_error=False)
            one_off[key.to_user_string()] = (time.perf_counter() - t, result.success)

        select = ",".join(k.to_user_string() for k in per_scan)
        materialize = [dagster_cli, "asset", "materialize", "-m", "nmc_assets.definitions", "--select", select]
        modes: dict[str, list[dict]] = {}

        def cli_runs(profile: str) -> list[dict]:
            """The local instance's way: a fresh process per run, the code location's executor."""
            run_env = {**env, "NMC_EXECUTOR": profile}
            out = []
            for scan in scans:
                wall = _run_cli([*materialize, "--partition", scan], run_env, log)
                record = _latest_run(instance, scan)
                out.append({"scan": scan, "wall_s": wall, "status": record.dagster_run.status.value,
                            "steps": _step_seconds(instance, record.dagster_run.run_id)})
            return out

        modes["multiprocess"] = cli_runs("multiprocess")
        if not args.no_baseline:
            modes["spawn"] = cli_runs("spawn")
            # both scans at once, as the queued instance runs them (GPU pool: one view_probabilities at a time)
            t = time.perf_counter()
            with open(log, "a") as out:
                procs = [subprocess.Popen([*materialize, "--partition", scan], cwd=REPO, env=env, stdout=out,
                                          stderr=subprocess.STDOUT) for scan in scans]
                codes = [p.wait() for p in procs]
            both = time.perf_counter() - t
            statuses = [_latest_run(instance, scan).dagster_run.status.value for scan in scans]
            modes["concurrent"] = [{"scan": "+".join(scans), "wall_s": both, "n": len(scans),
                                    "status": "SUCCESS" if set(statuses) == {"SUCCESS"} and not any(codes) else "FAILURE",
                                    "steps": {}}]
            baseline = []
            for scan in scans:
                t = time.perf_counter()
                result = job.execute_in_process(instance=instance, asset_selection=per_scan, partition_key=scan,
                                                raise_on_error=False)
                baseline.append({"scan": scan, "wall_s": time.perf_counter() - t,
                                 "status": "SUCCESS" if result.success else "FAILURE",
                                 "steps": _step_seconds(instance, result.run_id)})
            modes["in_process"] = baseline
        runs = modes["multiprocess"]

        agg = {}
        if aggregates:
            wall = _run_cli([dagster_cli, "asset", "materialize", "-m", "nmc_assets.definitions",
                             "--select", ",".join(k.to_user_string() for k in aggregates)], env, log)
            record = _latest_run(instance, None)
            agg = {"wall_s": wall, "status": record.dagster_run.status.value,
                   "steps": _step_seconds(instance, record.dagster_run.run_id)}

    load_after = _load_average()
    ok_runs = _ok(runs)
    report = {
        "scans": scans, "shape": shape, "simulate_s": simulate_s, "per_scan_assets": [k.to_user_string() for k in per_scan],
        "one_off": one_off, "modes": modes, "aggregates": agg,
        "load_before": load_before, "load_after": load_after,
    }
    (root / "bench_load.json").write_text(json.dumps(report, indent=2, default=str))
    text = render(report, ok_runs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(r["status"] == "SUCCESS" for rs in modes.values() for r in rs) else 1


def _ok(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r["status"] == "SUCCESS"]


MODE_LABELS = {
    "multiprocess": "local instance, default profile: multiprocess executor, steps forked from a forkserver "
                    "with the code location preloaded; one scan after the other",
    "concurrent": "local instance, default profile, the 2 scans as 2 concurrent runs (GPU pool: 1 step at a time)",
    "spawn": "local instance, `NMC_EXECUTOR=spawn` (Dagster's default: every step a fresh interpreter)",
    "in_process": "baseline: in process (`execute_in_process`, as `make demo`)",
}


def render(report: dict, ok_runs: list[dict]) -> str:
    modes, agg = report["modes"], report["aggregates"]
    lines = [
        "# Operations: load figure (benchmarks/bench_load.py)",
        "",
        f"Date 2026-11-21; machine: 2-core x86-64 CPU, 24 GiB, no GPU ({platform.python_implementation()} "
        f"{platform.python_version()}); the machine was shared with other jobs: load average "
        f"{report['load_before']} before, {report['load_after']} after (1/5/15 min), so absolute times are +-2x; "
        "ratios between modes of this run are the robust part.",
        "",
        f"Scans: the default virtual scans {', '.join(report['scans'])} ({' x '.join(map(str, report['shape']))} voxels "
        f"at 0.2 um, about 150 particles each; simulated in {report['simulate_s']:.0f} s, not counted). "
        f"Per-scan assets (what `incoming_scans` launches): {', '.join(report['per_scan_assets'])}, with their checks. "
        "Each run is `dagster asset materialize` in a new process against a persistent SQLite instance.",
        "",
        "## Throughput",
        "",
        "| mode | s per scan | scans per hour |",
        "| --- | --- | --- |",
    ]
    reference = None
    for mode, runs in modes.items():
        ok = _ok(runs)
        if not ok:
            lines.append(f"| {MODE_LABELS[mode]} | failed | - |")
            continue
        per_scan = sum(r["wall_s"] for r in ok) / sum(r.get("n", 1) for r in ok)
        reference = reference or per_scan
        bold = "**" if mode == "multiprocess" else ""
        lines.append(f"| {MODE_LABELS[mode]} | {per_scan:.1f} | {bold}{3600 / per_scan:.0f}{bold} |")
    if len(lines) and reference:
        ratios = []
        for mode in ("spawn", "concurrent", "in_process"):
            ok = _ok(modes.get(mode, []))
            if ok:
                per_scan = sum(r["wall_s"] for r in ok) / sum(r.get("n", 1) for r in ok)
                ratios.append(f"{mode} / default = {per_scan / reference:.2f}x")
        if ratios:
            lines += ["", "Time per scan relative to the default profile: " + "; ".join(ratios) + "."]
    if agg and agg.get("status") == "SUCCESS" and ok_runs:
        mean = statistics.mean(r["wall_s"] for r in ok_runs)
        batch = len(ok_runs) * mean + agg["wall_s"]
        lines += [
            "",
            f"Collection refresh after a batch ({', '.join(agg['steps'])}): {agg['wall_s']:.1f} s per refresh "
            f"(`follow_catalog_and_analytics` runs it once per batch); {len(ok_runs)} scans plus one refresh: "
            f"{batch:.0f} s = {3600 * len(ok_runs) / batch:.0f} scans per hour.",
        ]
    base = _ok(modes.get("in_process", []))
    if ok_runs:
        lines += ["", "## Where the time goes (seconds per scan, mean over the scans; checks are steps of their own)", ""]
        keys = list(dict.fromkeys(k for r in ok_runs for k in r["steps"]))
        spawn = _ok(modes.get("spawn", []))
        cols = [("default profile", ok_runs)] + ([("spawn", spawn)] if spawn else []) + ([("in process", base)] if base else [])
        lines += ["| step | " + " | ".join(c for c, _ in cols) + " |", "| --- |" + " --- |" * len(cols)]

        def mean_of(runs, key):
            vals = [r["steps"][key] for r in runs if key in r["steps"]]
            return f"{statistics.mean(vals):.1f}" if vals else "-"

        for key in keys:
            lines.append(f"| {key} | " + " | ".join(mean_of(r, key) for _, r in cols) + " |")
        overhead = [f"{statistics.mean(r['wall_s'] - sum(r['steps'].values()) for r in runs):.1f}" for _, runs in cols]
        lines.append("| orchestration: run wall time minus steps (process start-up, imports, code loading, events) | "
                     + " | ".join(overhead) + " |")
    failed = [f"{m}:{r['scan']}" for m, runs in modes.items() for r in runs if r["status"] != "SUCCESS"]
    if failed:
        lines += ["", "Failed runs: " + ", ".join(failed)]
    if report["one_off"]:
        lines += ["", "One-off upstream assets (in process, before the scans): "
                  + ", ".join(f"{k} {s:.1f} s{'' if ok else ' (FAILED)'}" for k, (s, ok) in report["one_off"].items()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
