"""``make demo``: simulate the default scans if the drop folder is empty, then materialize every asset.

Run as ``python -m nmc_assets.demo``. Uses the data root ``$NMC_DATA_DIR`` (``./data``) and the persistent
Dagster instance in ``<data root>/dagster_home``, so ``make ui`` shows every materialization afterwards.
Assets run in topological order with their default config, except a shorter grain-model calibration
(``--grain-model-steps``); partitioned assets run once per scan. The grain-model calibration, which
needs no scan, runs in a second process beside the scan path (``plan_lanes``; ``--sequential`` turns
that off). Each step is printed when it starts and when it ends. A scan that fails does not stop the
others; the summary lists what failed and why.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nmc_assets.paths import VOLUME_SUFFIXES, DataLayout, is_valid_scan_id, split_incoming_name

#: Only warnings and errors from Dagster's console logger; the full logs are in the instance (make ui).
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
#: The demo's calibration budget (the grain_model asset's own default is the benchmarked 1200 steps).
DEMO_GRAIN_MODEL_STEPS = 400

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_INSTANCE_CONFIG = REPO_ROOT / "deploy" / "local" / "dagster.yaml"


def prepare_instance_home(layout: DataLayout) -> Path:
    """Create ``dagster_home`` with the local instance config (GPU pool limit) and point DAGSTER_HOME at it."""
    home = layout.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    if LOCAL_INSTANCE_CONFIG.exists() and not (home / "dagster.yaml").exists():
        shutil.copyfile(LOCAL_INSTANCE_CONFIG, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def incoming_scan_ids(incoming: Path) -> list[str]:
    """Valid scan ids of volume files in the drop folder, sorted."""
    if not incoming.is_dir():
        return []
    ids = set()
    for path in incoming.iterdir():
        parsed = split_incoming_name(path.name)
        if parsed and parsed[1] in VOLUME_SUFFIXES and is_valid_scan_id(parsed[0]):
            ids.add(parsed[0])
    return sorted(ids)


@dataclass
class StepOutcome:
    asset: str
    partition: str | None
    seconds: float
    ok: bool
    error: str = ""
    checks: dict[str, bool] = field(default_factory=dict)


@dataclass
class DemoReport:
    scans: list[str]
    outcomes: list[StepOutcome] = field(default_factory=list)

    @property
    def failures(self) -> list[StepOutcome]:
        return [o for o in self.outcomes if not o.ok]


def _first_error(result) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            return event.step_failure_data.error.message.strip().splitlines()[0][:300]
    return "failed (see the run in the Dagster UI)"


def run_config_for(asset_name: str, asset_config: dict[str, dict] | None = None) -> dict:
    """Quiet run config, plus ``asset_config[asset_name]`` as the asset's op config when given."""
    if asset_config and asset_name in asset_config:
        return {**QUIET_RUN_CONFIG, "ops": {asset_name: {"config": dict(asset_config[asset_name])}}}
    return QUIET_RUN_CONFIG


#: Assets that run in a lane of their own beside the rest (with the assets only they need), because
#: they are long and independent of the scans: the grain-model calibration.
PARALLEL_LANES = ("grain_model",)


def plan_lanes(graph, heavy: tuple[str, ...] = PARALLEL_LANES) -> tuple[list[list], list]:
    """Split the materializable assets into lanes that can run at the same time, and what must follow.

    Each heavy asset gets a lane with the ancestors that feed nothing else; the main lane has every
    other asset except the heavy assets' descendants, which run afterwards (all in topological order).
    """
    import dagster as dg

    order = [k for k in graph.toposorted_asset_keys if graph.get(k).is_materializable]
    lanes, claimed, after = [], set(), set()
    for name in heavy:
        key = dg.AssetKey(name)
        if not graph.has(key):
            continue
        below = set(dg.AssetSelection.assets(key).downstream().resolve(graph)) - {key}
        above = set(dg.AssetSelection.assets(key).upstream().resolve(graph))
        own = {k for k in above if graph.get(k).is_materializable
               and set(dg.AssetSelection.assets(k).downstream().resolve(graph)) <= above | below}
        lanes.append([k for k in order if k in own])
        claimed |= own
        after |= below
    main = [k for k in order if k not in claimed and k not in after]
    return [main, *lanes], [k for k in order if k in after and k not in claimed]


def _run_steps(keys, scans: list[str], asset_config: dict[str, dict] | None, lane: str = "",
               failed_scans: set[str] | None = None) -> list[StepOutcome]:
    """Materialize ``keys`` in order (partitioned ones once per scan) in this process; print as it goes."""
    import dagster as dg

    from nmc_assets.definitions import defs as load_defs

    instance = dg.DagsterInstance.get()
    definitions = load_defs()
    graph = definitions.resolve_asset_graph()
    job = definitions.resolve_implicit_global_asset_job_def()
    failed_scans = set(failed_scans or ())
    prefix = f"[{lane}] " if lane else ""
    outcomes = []
    for key in [dg.AssetKey.from_user_string(k) if isinstance(k, str) else k for k in keys]:
        partitions = scans if graph.get(key).partitions_def is not None else [None]
        for partition in partitions:
            name = key.to_user_string() + (f"[{partition}]" if partition else "")
            if partition in failed_scans:
                outcomes.append(StepOutcome(key.to_user_string(), partition, 0.0, False, "skipped: upstream failed"))
                continue
            print(f"  {prefix}running {name} ...", flush=True)
            start = time.perf_counter()
            result = job.execute_in_process(
                run_config=run_config_for(key.to_user_string(), asset_config),
                instance=instance,
                asset_selection=[key],
                partition_key=partition,
                raise_on_error=False,
            )
            seconds = time.perf_counter() - start
            outcome = StepOutcome(key.to_user_string(), partition, seconds, result.success)
            outcome.checks = {e.check_name: bool(e.passed) for e in result.get_asset_check_evaluations()}
            if not result.success:
                outcome.error = _first_error(result)
                if partition is not None:
                    failed_scans.add(partition)
            outcomes.append(outcome)
            checks = " ".join(f"{c}:{'pass' if ok else 'FAIL'}" for c, ok in sorted(outcome.checks.items()))
            print(f"  {prefix}{'ok  ' if outcome.ok else 'FAIL'} {name:<40} {seconds:7.1f} s  {checks} {outcome.error}",
                  flush=True)
    return outcomes


def _run_lane(keys: list[str], scans: list[str], asset_config, lane: str, env: dict[str, str]) -> list[StepOutcome]:
    """A lane in a worker process (spawned: its own Dagster, TensorFlow and torch state)."""
    os.environ.update(env)
    return _run_steps(keys, scans, asset_config, lane)


#: The concurrency pool of the steps that use a GPU when there is one (deploy/README.md, "GPU pool").
GPU_POOL = "gpu"


def open_gpu_pool_without_gpu(instance, lanes: int, cuda_available: bool | None = None) -> bool:
    """Without a CUDA GPU, let ``lanes`` steps of the ``gpu`` pool run at once (they run on the CPU, so
    the one-card limit would only queue one lane behind the other: StarDist waiting for the grain-model
    calibration). Sets the instance's pool limit (as ``dagster instance concurrency set gpu N``) and
    returns True; with a GPU, or when the limit is already that high, leaves it and returns False."""
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if cuda_available:
        return False
    storage = instance.event_log_storage
    if GPU_POOL in storage.get_concurrency_keys() and storage.get_concurrency_info(GPU_POOL).slot_count >= lanes:
        return False
    storage.set_concurrency_slots(GPU_POOL, lanes)
    print(f"no CUDA GPU: the {GPU_POOL!r} pool now admits {lanes} steps at once on this instance "
          f"(`dagster instance concurrency set {GPU_POOL} 1` restores one)", flush=True)
    return True


def materialize_all(layout: DataLayout, scans: list[str], asset_config: dict[str, dict] | None = None,
                    parallel: bool = True) -> DemoReport:
    """Materialize every asset (partitioned ones once per scan) with ``asset_config`` (asset name ->
    config dict) as run config. The lanes of :func:`plan_lanes` run at the same time in separate
    processes when ``parallel`` (all against the same instance); a failed scan's downstream partitions
    are skipped, the rest go on."""
    import concurrent.futures
    import multiprocessing

    import dagster as dg

    from nmc_assets.definitions import defs as load_defs

    instance = dg.DagsterInstance.get()
    known = set(instance.get_dynamic_partitions("scan"))
    new = [s for s in scans if s not in known]
    if new:
        instance.add_dynamic_partitions("scan", new)
    lanes, after = plan_lanes(load_defs().resolve_asset_graph())
    names = [[k.to_user_string() for k in lane] for lane in lanes]
    report = DemoReport(scans=scans)
    if parallel and len(names) > 1:
        open_gpu_pool_without_gpu(instance, len(names))
        env = {k: os.environ[k] for k in ("NMC_DATA_DIR", "DAGSTER_HOME") if k in os.environ}
        labels = ["scans"] + [lane[-1] for lane in names[1:]]
        with concurrent.futures.ProcessPoolExecutor(len(names), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_run_lane, lane, scans, asset_config, label, env) for lane, label in zip(names, labels)]
            for future in futures:
                report.outcomes += future.result()
    else:
        for lane in names:
            report.outcomes += _run_steps(lane, scans, asset_config)
    failed = {o.partition for o in report.failures if o.partition}
    report.outcomes += _run_steps([k.to_user_string() for k in after], scans, asset_config, failed_scans=failed)
    return report


def summary(layout: DataLayout, report: DemoReport, wall_seconds: float) -> str:
    lines = ["", "nmc_assets demo summary", "=" * 23, f"data root: {layout.root}", "scans:"]
    for scan in report.scans:
        tomo = layout.tomogram(scan)
        shape = ""
        if tomo.exists():
            from nmc_assets.storage import open_zarr

            z = open_zarr(tomo)
            shape = f"shape {tuple(z.shape)}, voxel {z.attrs.get('voxel_size_um')} um, cycles {z.attrs.get('cycles')}"
        lines.append(f"  {scan}: {shape or 'not ingested'}")
    lines.append("outputs:")
    for label, path in [
        ("tomograms", layout.warehouse / "tomograms"),
        ("fused labels", layout.warehouse / "fused_labels"),
        ("feature tables", layout.warehouse / "particle_features"),
        ("SQL catalog", layout.catalog),
        ("analytics", layout.analytics),
        ("models", layout.models),
        ("published datasets", layout.published),
    ]:
        if path.exists():
            lines.append(f"  {label:<18} {path}")
    n_ok = sum(o.ok for o in report.outcomes)
    lines.append(f"materializations: {n_ok} ok, {len(report.failures)} failed, wall time {wall_seconds:.0f} s")
    failed_checks = [(o, name) for o in report.outcomes for name, ok in o.checks.items() if not ok]
    n_checks = sum(len(o.checks) for o in report.outcomes)
    lines.append(f"asset checks: {n_checks - len(failed_checks)} passed, {len(failed_checks)} did not pass")
    for o, name in failed_checks:
        lines.append(f"  check {name} on {o.asset}[{o.partition or ''}] did not pass (details in the UI)")
    for o in report.failures:
        lines.append(f"  FAILED {o.asset}[{o.partition or ''}]: {o.error}")
    lines += [
        "next:",
        "  make ui                                   # Dagster UI on http://127.0.0.1:3000 with these runs",
        '  .venv/bin/nmc-assets sql "SELECT scan_id, count(*) FROM particle_features GROUP BY 1"',
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="data root (default $NMC_DATA_DIR or ./data)")
    parser.add_argument("--sequential", action="store_true",
                        help="run every asset in this process, one after the other (default: independent lanes in parallel)")
    parser.add_argument("--grain-model-steps", type=int, default=DEMO_GRAIN_MODEL_STEPS,
                        help=f"grain-model calibration steps (default {DEMO_GRAIN_MODEL_STEPS}; the asset's own default is 1200)")
    args = parser.parse_args(argv)
    layout = DataLayout.from_path(args.data_dir) if args.data_dir else DataLayout.from_env()
    os.environ["NMC_DATA_DIR"] = str(layout.root)
    start = time.perf_counter()
    prepare_instance_home(layout)
    from nmc_assets.storage import remove_stale_temporaries

    for root in (layout.warehouse, layout.models, layout.published):
        for path in remove_stale_temporaries(root):
            print(f"removed a temporary left by an interrupted writer: {path}")

    scans = incoming_scan_ids(layout.incoming)
    if not scans:
        from nmc_assets.beamline.defaults import write_default_scans

        print(f"drop folder {layout.incoming} is empty: writing the default virtual scans ...")
        write_default_scans(layout.incoming)
        scans = incoming_scan_ids(layout.incoming)
    print(f"materializing every asset for {len(scans)} scan(s): {', '.join(scans)}")
    report = materialize_all(layout, scans, asset_config={"grain_model": {"steps": args.grain_model_steps}},
                             parallel=not args.sequential)
    print(summary(layout, report, time.perf_counter() - start))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
