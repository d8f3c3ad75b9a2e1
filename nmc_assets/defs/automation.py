"""Automation: the nightly ``reprocess_scans`` schedule and declarative automation of downstream assets.

Who starts what (docs/design.md §2, "Automation"):

* ``incoming_scans`` (sensor, ``defs/beamline.py``) registers new scans as partitions and launches them.
* ``follow_new_scans`` (automation sensor, here): per-scan segmentation and feature assets
  (``view_probabilities``, ``fused_labels``, ``particle_features``) follow a scan's new or updated
  parents, partition by partition. Updates of the models they use (``stardist_model``) are ignored here:
  re-running every scan after a model change is the nightly schedule's job, so a retrained model never
  floods the GPU pool in the middle of the day.
* ``follow_catalog_and_analytics`` (automation sensor, here): ``particle_catalog``, ``damage_model`` and
  ``damage_drivers`` are rebuilt once every running scan has finished (they wait while any upstream
  partition is in progress), whenever a partition they read was updated. A scan that failed does not
  block them: they are built from the scans that exist.
* ``reprocess_scans`` (schedule, here, 02:00 UTC): one run per scan whose stored outputs are out of date
  (rule below), covering the out-of-date assets and every per-scan asset downstream of them.

All three are off when the code location first loads (Dagster's default); turn them on in the UI under
Automation (or ``dagster schedule start reprocess_scans`` / ``dagster sensor start ...``).

The reprocessing rule, per scan and per scan-partitioned asset A that has a materialization for it:

1. *code changed*: the ``code_version`` recorded with A's latest materialization of the scan differs from
   A's current ``code_version``;
2. *upstream re-materialized*: some materializable parent P of A has a newer materialization than the one
   A consumed: for an unpartitioned P such as ``stardist_model``, P's latest materialization is not the
   event A recorded as consumed (tag ``dagster/input_event_pointer/<P>``); for the scan's own partition
   of a per-scan P (e.g. a re-ingested ``raw_tomogram``), P's latest materialization is newer than A's.

Assets never materialized for a scan are not "changed" (launching missing work is the sensor's job), and
scans with a run in progress are skipped. The run key is derived from the reasons, so each change is
requested once, however often the schedule is evaluated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import dagster as dg

from nmc_assets.defs.partitions import scan_partitions

REPROCESS_CRON = "0 2 * * *"
REPROCESS_TAG = "nmc/reprocess"

#: Per-scan assets that follow their parents (keys of docs/design.md §2; absent keys are skipped).
PER_SCAN_FOLLOWERS = ("view_probabilities", "fused_labels", "particle_features")
#: Whole-collection assets rebuilt after scans change.
AGGREGATE_FOLLOWERS = ("particle_catalog", "damage_model", "damage_drivers")
#: Per-scan assets the schedule may re-run (absent keys are skipped).
REPROCESSED_ASSETS = ("raw_tomogram", *PER_SCAN_FOLLOWERS)
#: Model assets whose updates per-scan automation ignores (the schedule reprocesses scans instead).
MODEL_ASSETS = ("stardist_model",)


def _key_selection(names: Iterable[str]) -> dg.AssetSelection:
    """Selection of the named asset keys that exist (and their checks); unknown names select nothing."""
    return dg.AssetSelection.from_string(" or ".join(f'key:"{n}"' for n in names))


# --------------------------------------------------------------------------------------------------
# Declarative automation
# --------------------------------------------------------------------------------------------------


def follow_parents_condition(*, ignore: dg.AssetSelection | None, require_parents: bool) -> dg.AutomationCondition:
    """Like ``AutomationCondition.eager()``: run when missing or a parent updated, once per change, never
    while a parent or the target itself is in progress.

    ``ignore``: parents whose updates do not trigger. ``require_parents``: wait until no parent partition
    is missing (right for per-scan assets: a scan's features need its labels). Aggregates over all scans
    set it to False so that one failed scan does not block the catalog of the others; they then trigger
    only on parent updates (never merely because they are missing, which would build an empty catalog).
    """
    updated = dg.AutomationCondition.any_deps_updated()
    if ignore is not None:
        updated = updated.ignore(ignore)
    if require_parents:
        trigger = dg.AutomationCondition.newly_missing() | updated
    else:
        trigger = updated
    condition = (
        trigger.since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    )
    if require_parents:
        missing = dg.AutomationCondition.any_deps_missing()
        condition = condition & ~(missing.ignore(ignore) if ignore is not None else missing)
    return condition.with_label("follow parents" if require_parents else "follow updated parents")


PER_SCAN_CONDITION = follow_parents_condition(ignore=_key_selection(MODEL_ASSETS), require_parents=True)
AGGREGATE_CONDITION = follow_parents_condition(ignore=None, require_parents=False)

follow_new_scans = dg.AutomationConditionSensorDefinition(
    "follow_new_scans",
    target=_key_selection(PER_SCAN_FOLLOWERS),
    default_condition=PER_SCAN_CONDITION,
    use_user_code_server=True,
    minimum_interval_seconds=30,
    run_tags={"nmc/trigger": "follow_new_scans"},
    description=(
        "Segments and measures each new or re-ingested scan: view_probabilities, fused_labels and "
        "particle_features follow their parents per scan (model updates are left to reprocess_scans)."
    ),
)

follow_catalog_and_analytics = dg.AutomationConditionSensorDefinition(
    "follow_catalog_and_analytics",
    target=_key_selection(AGGREGATE_FOLLOWERS),
    default_condition=AGGREGATE_CONDITION,
    use_user_code_server=True,
    minimum_interval_seconds=60,
    run_tags={"nmc/trigger": "follow_catalog_and_analytics"},
    description=(
        "Rebuilds particle_catalog, damage_model and damage_drivers after scans' features change, "
        "once no upstream partition is still running."
    ),
)


# --------------------------------------------------------------------------------------------------
# Reprocessing schedule
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReprocessRequest:
    """One scan to re-run: the assets to materialize (topological order) and why."""

    scan_id: str
    asset_keys: tuple[dg.AssetKey, ...]
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def run_key(self) -> str:
        digest = hashlib.sha256("\n".join(self.reasons).encode()).hexdigest()[:16]
        return f"reprocess:{self.scan_id}:{digest}"

    def to_run_request(self) -> dg.RunRequest:
        return dg.RunRequest(
            run_key=self.run_key,
            partition_key=self.scan_id,
            asset_selection=list(self.asset_keys),
            tags={REPROCESS_TAG: "true", "nmc/reprocess_reason": self.reasons[0][:200]},
        )


def _is_scan_partitioned(node) -> bool:
    pdef = node.partitions_def
    return isinstance(pdef, dg.DynamicPartitionsDefinition) and pdef.name == scan_partitions.name


def _latest_records_by_partition(instance: dg.DagsterInstance, key: dg.AssetKey, scans: Sequence[str]):
    """Latest materialization record of ``key`` per scan (only scans that have one)."""
    from dagster._core.events import DagsterEventType

    ids = instance.get_latest_storage_id_by_partition(key, DagsterEventType.ASSET_MATERIALIZATION, set(scans))
    if not ids:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, storage_ids=list(ids.values())), limit=len(ids)
    ).records
    return {r.partition_key: r for r in records}


def _scans_in_progress(instance: dg.DagsterInstance) -> set[str]:
    from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

    runs = instance.get_run_records(dg.RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES)))
    return {r.dagster_run.tags["dagster/partition"] for r in runs if "dagster/partition" in r.dagster_run.tags}


def scans_to_reprocess(
    instance: dg.DagsterInstance,
    asset_graph,
    scan_ids: Sequence[str] | None = None,
    asset_names: Sequence[str] = REPROCESSED_ASSETS,
) -> list[ReprocessRequest]:
    """Apply the reprocessing rule of the module docstring to every scan (or ``scan_ids``), over the
    scan-partitioned assets named in ``asset_names`` that exist in ``asset_graph``."""
    if scan_ids is None:
        scan_ids = scan_partitions.get_partition_keys(dynamic_partitions_store=instance)
    scan_ids = sorted(set(scan_ids) - _scans_in_progress(instance))
    if not scan_ids:
        return []
    order = [k for k in asset_graph.toposorted_asset_keys if asset_graph.get(k).is_materializable]
    per_scan = [
        k for k in order if k.to_user_string() in asset_names and _is_scan_partitioned(asset_graph.get(k))
    ]
    latest = {key: _latest_records_by_partition(instance, key, scan_ids) for key in per_scan}
    unpartitioned_latest: dict[dg.AssetKey, int | None] = {}

    def parent_storage_id(parent: dg.AssetKey, scan: str) -> int | None:
        if parent in latest:
            record = latest[parent].get(scan)
            return record.storage_id if record else None
        if parent not in unpartitioned_latest:
            records = instance.fetch_materializations(parent, limit=1).records
            unpartitioned_latest[parent] = records[0].storage_id if records else None
        return unpartitioned_latest[parent]

    requests = []
    for scan in scan_ids:
        reasons: dict[dg.AssetKey, list[str]] = {}
        for key in per_scan:
            record = latest[key].get(scan)
            if record is None:
                continue
            name = key.to_user_string()
            tags = record.asset_materialization.tags or {}
            current = asset_graph.get(key).code_version
            recorded = tags.get("dagster/code_version")
            if current is not None and recorded != current:
                reasons.setdefault(key, []).append(f"{name}: code version {recorded} -> {current}")
            for parent in sorted(asset_graph.get(key).parent_keys):
                pnode = asset_graph.get(parent)
                if not pnode.is_materializable:
                    continue
                if _is_scan_partitioned(pnode) is False and pnode.partitions_def is not None:
                    continue  # a parent partitioned some other way: not ours to judge
                newest = parent_storage_id(parent, scan)
                if newest is None:
                    continue
                # Dagster records the consumed event only reliably for unpartitioned parents (for a
                # partitioned parent outside the run it points at the asset's latest event, of any
                # partition), so the scan's own parent partition is compared by event order.
                consumed = tags.get(f"dagster/input_event_pointer/{parent.to_user_string()}")
                if parent in latest or consumed is None:
                    stale = newest > record.storage_id
                else:
                    stale = int(consumed) != newest
                if stale:
                    reasons.setdefault(key, []).append(
                        f"{name}: {parent.to_user_string()} re-materialized (event {consumed or '?'} -> {newest})"
                    )
        if not reasons:
            continue
        selected = set(reasons)
        for key in per_scan:  # topological: descendants of a changed asset run too
            if any(p in selected for p in asset_graph.get(key).parent_keys):
                selected.add(key)
        keys = tuple(k for k in per_scan if k in selected)
        flat = tuple(r for k in per_scan for r in reasons.get(k, []))
        requests.append(ReprocessRequest(scan_id=scan, asset_keys=keys, reasons=flat))
    return requests


@dg.schedule(
    name="reprocess_scans",
    cron_schedule=REPROCESS_CRON,
    execution_timezone="UTC",
    target=_key_selection(REPROCESSED_ASSETS),
    description=(
        "Nightly: re-runs, per scan, the per-scan assets whose code version changed or whose inputs were "
        "re-materialized since (a new stardist_model, a re-ingested tomogram), plus everything per-scan "
        "downstream of them. One run per scan; catalog and analytics follow by automation."
    ),
)
def reprocess_scans(context: dg.ScheduleEvaluationContext):
    requests = scans_to_reprocess(context.instance, context.repository_def.asset_graph)
    if not requests:
        return dg.SkipReason("every scan is up to date with the current code and models")
    for request in requests:
        context.log.info(f"reprocess {request.scan_id}: {'; '.join(request.reasons)}")
    return [r.to_run_request() for r in requests]
