"""reprocess_scans schedule and the declarative-automation sensors, on a stand-in graph with the real keys."""

import warnings

import dagster as dg
import pytest

from nmc_assets.defs import automation as au
from nmc_assets.defs.partitions import scan_partitions as scan

PER_SCAN = ["raw_tomogram", "view_probabilities", "fused_labels", "particle_features"]


def build_assets(fused_code_version: str = "1") -> list[dg.AssetsDefinition]:
    """The asset keys and dependencies of docs/design.md §2 (bodies do nothing)."""

    @dg.asset(partitions_def=scan, code_version="1")
    def raw_tomogram() -> None: ...

    @dg.asset(code_version="1")
    def stardist_model() -> None: ...

    @dg.asset(partitions_def=scan, deps=[raw_tomogram, stardist_model], code_version="1")
    def view_probabilities() -> None: ...

    @dg.asset(partitions_def=scan, deps=[view_probabilities], code_version=fused_code_version)
    def fused_labels() -> None: ...

    @dg.asset(partitions_def=scan, deps=[fused_labels, raw_tomogram], code_version="1")
    def particle_features() -> None: ...

    @dg.asset(deps=[particle_features], code_version="1")
    def damage_model() -> None: ...

    @dg.asset(deps=[damage_model], code_version="1")
    def damage_drivers() -> None: ...

    @dg.asset(deps=[particle_features, damage_drivers], code_version="1")
    def particle_catalog() -> None: ...

    return [raw_tomogram, stardist_model, view_probabilities, fused_labels, particle_features,
            particle_catalog, damage_model, damage_drivers]


def repository(assets):
    defs = dg.Definitions(
        assets=assets,
        schedules=[au.reprocess_scans],
        sensors=[au.follow_new_scans, au.follow_catalog_and_analytics],
    )
    return defs.get_repository_def()


@pytest.fixture
def instance():
    """In-memory instance (a SQLite one costs ~10x per run); the schedule context needs a persistent
    one, so :func:`test_schedule_evaluates_through_a_schedule_context` uses SQLite."""
    return dg.DagsterInstance.ephemeral()


@pytest.fixture
def sqlite_instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        yield inst


@pytest.fixture
def processed(instance):
    """Model trained; scans a and b fully processed; scan c registered but never processed."""
    assets = build_assets()
    instance.add_dynamic_partitions("scan", ["a", "b", "c"])
    dg.materialize(assets, selection=["stardist_model"], instance=instance)
    for scan_id in ("a", "b"):
        dg.materialize(assets, selection=PER_SCAN, partition_key=scan_id, instance=instance)
    return assets


def evaluate_schedule(instance, assets):
    """What reprocess_scans returns on a tick (the schedule body without the context plumbing)."""
    requests = au.scans_to_reprocess(instance, repository(assets).asset_graph)
    return [r.to_run_request() for r in requests] if requests else dg.SkipReason("up to date")


def names(keys):
    return [k.to_user_string() for k in keys]


# ------------------------------------------------------------------------------------------------
# reprocess_scans


def test_schedule_skips_when_every_scan_is_current(instance, processed):
    result = evaluate_schedule(instance, processed)
    assert isinstance(result, dg.SkipReason)


def test_new_model_reprocesses_each_processed_scan_once(instance, processed):
    dg.materialize(processed, selection=["stardist_model"], instance=instance)  # a retrained model
    requests = evaluate_schedule(instance, processed)
    assert [r.partition_key for r in requests] == ["a", "b"]  # c was never processed: not "changed"
    for r in requests:
        assert names(r.asset_selection) == ["view_probabilities", "fused_labels", "particle_features"]
        assert "stardist_model re-materialized" in r.tags["nmc/reprocess_reason"]
    assert len({r.run_key for r in requests}) == 2
    # a second evaluation asks for the same runs (same run keys: Dagster launches each once)
    assert [r.run_key for r in evaluate_schedule(instance, processed)] == [r.run_key for r in requests]

    # once scan a ran with the new model, only b is left
    dg.materialize(processed, selection=names(requests[0].asset_selection), partition_key="a", instance=instance)
    assert [r.partition_key for r in evaluate_schedule(instance, processed)] == ["b"]


def test_scans_with_a_run_in_progress_are_skipped(instance, processed):
    from dagster._core.storage.dagster_run import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    dg.materialize(processed, selection=["stardist_model"], instance=instance)
    create_run_for_test(instance, job_name="__ASSET_JOB", status=DagsterRunStatus.STARTED, tags={"dagster/partition": "a"})
    assert [r.partition_key for r in evaluate_schedule(instance, processed)] == ["b"]


def test_code_version_change_reprocesses_from_that_asset_down(instance, processed):
    changed = build_assets(fused_code_version="2")
    requests = evaluate_schedule(instance, changed)
    assert [r.partition_key for r in requests] == ["a", "b"]
    assert all(names(r.asset_selection) == ["fused_labels", "particle_features"] for r in requests)
    assert "fused_labels: code version 1 -> 2" in requests[0].tags["nmc/reprocess_reason"]


def test_schedule_evaluates_through_a_schedule_context(sqlite_instance):
    assets = build_assets()
    sqlite_instance.add_dynamic_partitions("scan", ["a"])
    dg.materialize(assets, selection=["stardist_model"], instance=sqlite_instance)
    dg.materialize(assets, selection=PER_SCAN, partition_key="a", instance=sqlite_instance)
    context = dg.build_schedule_context(instance=sqlite_instance, repository_def=repository(assets))
    assert isinstance(au.reprocess_scans(context), dg.SkipReason)
    dg.materialize(assets, selection=["stardist_model"], instance=sqlite_instance)
    context = dg.build_schedule_context(instance=sqlite_instance, repository_def=repository(assets))
    (request,) = au.reprocess_scans(context)
    assert request.partition_key == "a" and request.tags[au.REPROCESS_TAG] == "true"


def test_reingested_tomogram_reprocesses_only_that_scan(instance, processed):
    dg.materialize(processed, selection=["raw_tomogram"], partition_key="b", instance=instance)
    requests = evaluate_schedule(instance, processed)
    assert [r.partition_key for r in requests] == ["b"]
    assert names(requests[0].asset_selection) == ["view_probabilities", "fused_labels", "particle_features"]


# ------------------------------------------------------------------------------------------------
# declarative automation


def tick(sensor, instance, assets, cursor):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sensor(dg.build_sensor_context(instance=instance, repository_def=repository(assets), cursor=cursor))
    requested = sorted(
        (key.to_user_string(), r.partition_key) for r in result.run_requests for key in r.asset_selection
    )
    return requested, result.cursor


def test_new_scan_is_followed_per_scan_and_model_updates_are_left_to_the_schedule(instance, processed):
    requested, cursor = tick(au.follow_new_scans, instance, processed, None)
    assert requested == []  # first tick: nothing new

    dg.materialize(processed, selection=["raw_tomogram"], partition_key="c", instance=instance)  # scan c lands
    requested, cursor = tick(au.follow_new_scans, instance, processed, cursor)
    assert requested == [("fused_labels", "c"), ("particle_features", "c"), ("view_probabilities", "c")]

    dg.materialize(processed, selection=PER_SCAN[1:], partition_key="c", instance=instance)
    requested, cursor = tick(au.follow_new_scans, instance, processed, cursor)
    assert requested == []  # handled: requested once

    dg.materialize(processed, selection=["stardist_model"], instance=instance)
    requested, cursor = tick(au.follow_new_scans, instance, processed, cursor)
    assert requested == []  # model updates: reprocess_scans's job


def test_catalog_and_analytics_follow_new_features_even_with_a_failed_scan(instance, processed):
    dg.materialize(processed, selection=["particle_catalog", "damage_model", "damage_drivers"], instance=instance)
    requested, cursor = tick(au.follow_catalog_and_analytics, instance, processed, None)
    assert requested == []

    # scan c is processed; scan d was registered but its ingest failed (no partitions of d exist)
    instance.add_dynamic_partitions("scan", ["d"])
    dg.materialize(processed, selection=PER_SCAN, partition_key="c", instance=instance)
    requested, cursor = tick(au.follow_catalog_and_analytics, instance, processed, cursor)
    assert requested == [("damage_drivers", None), ("damage_model", None), ("particle_catalog", None)]
    requested, cursor = tick(au.follow_catalog_and_analytics, instance, processed, cursor)
    assert requested == []


# ------------------------------------------------------------------------------------------------
# the real code location


def test_code_location_carries_the_schedule_and_sensors(sqlite_instance):
    from nmc_assets.definitions import defs as load_defs

    defs = load_defs()
    repo = defs.get_repository_def()
    assert repo.get_schedule_def("reprocess_scans").cron_schedule == au.REPROCESS_CRON
    for name in ("follow_new_scans", "follow_catalog_and_analytics"):
        assert repo.get_sensor_def(name).default_status == dg.DefaultSensorStatus.STOPPED
    result = au.reprocess_scans(dg.build_schedule_context(instance=sqlite_instance, repository_def=repo))
    assert isinstance(result, dg.SkipReason)  # no scans yet
    graph = defs.resolve_asset_graph()
    for name in au.PER_SCAN_FOLLOWERS:
        key = dg.AssetKey(name)
        if graph.has(key):  # the per-scan followers really are per-scan assets
            assert au._is_scan_partitioned(graph.get(key)), name
