"""Dagster layer of ingest: raw_tomogram, the incoming_scans sensor, the device resource, the local instance config."""

import logging
import os
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from nmc_assets.defs.beamline import incoming_scans, raw_tomogram, scan_processing_job
from nmc_assets.defs.partitions import scan_partitions
from nmc_assets.defs.resources import DataRootResource, DeviceResource
from nmc_assets.storage import read_zarr, zarr_attrs
from nmc_assets_tests.ingest.scan_fixtures import (
    SIDECAR,
    make_labels,
    make_volume,
    tree_state,
    truncate,
    write_scan,
    write_tiff,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path) -> Path:
    (tmp_path / "incoming").mkdir()
    return tmp_path


def _materialize(root: Path, keys: list[str], run_config=None):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("scan", keys)
    results = {}
    for key in keys:
        results[key] = dg.materialize([raw_tomogram], partition_key=key, instance=instance, raise_on_error=False,
                                      resources={"data_root": DataRootResource(data_dir=str(root))},
                                      run_config=run_config)
    return results


def test_raw_tomogram_writes_zarr_with_values_attrs_and_metadata(root):
    vol = make_volume()
    src = write_scan(root / "incoming", "s1", vol, sidecar={**SIDECAR, "thickness_axis": "y"}, labels=make_labels())
    before = tree_state(root / "incoming")
    res = _materialize(root, ["s1"])["s1"]
    assert res.success

    out = root / "warehouse/tomograms/s1.zarr"
    data = read_zarr(out)
    assert data.dtype == np.uint16 and data.shape == (20, 6, 24)  # the source dtype is kept
    np.testing.assert_array_equal(data, np.moveaxis(vol, 1, 0))
    attrs = zarr_attrs(out)
    assert attrs["scan_id"] == "s1" and attrs["source_path"] == str(src) and len(attrs["source_sha256"]) == 64
    assert attrs["voxel_size_um"] == 0.1 and attrs["cycles"] == 10 and attrs["sample"] == "NMC811-A"
    assert attrs["beamline"] == "virtual" and attrs["thickness_axis"] == "y" and attrs["shape"] == [20, 6, 24]
    assert attrs["source_dtype"] == "uint16" and attrs["dtype"] == "uint16" and attrs["warnings"] == []
    assert list(attrs["percentiles"]) == ["0.5", "1", "50", "99", "99.5", "99.8"]
    assert attrs["percentiles"]["50"] == pytest.approx(float(np.percentile(vol, 50)))

    (mat,) = res.asset_materializations_for_node("raw_tomogram")
    md = mat.metadata
    assert md["shape"].value == "(20, 6, 24)" and md["dtype"].value == "uint16"
    assert md["voxel_size_um"].value == 0.1 and md["cycles"].value == 10
    assert md["source_sha256"].value == attrs["source_sha256"] and md["path"].value == str(out)
    assert md["preview"].value.startswith("![xy | xz | yz](data:image/png;base64,")
    assert md["intensity_percentiles"].value == attrs["percentiles"]
    assert tree_state(root / "incoming") == before
    assert not [p for p in (root / "warehouse/tomograms").iterdir() if ".tmp-" in p.name or ".lnk-" in p.name], "temp output left"


def test_missing_sidecar_materializes_with_a_warning(root):
    write_scan(root / "incoming", "nosc", make_volume())
    res = _materialize(root, ["nosc"])["nosc"]
    assert res.success
    attrs = zarr_attrs(root / "warehouse/tomograms/nosc.zarr")
    assert attrs["voxel_size_um"] == 0.07 and attrs["cycles"] is None
    assert len(attrs["warnings"]) == 1 and "no sidecar" in attrs["warnings"][0]
    strict = {"ops": {"raw_tomogram": {"config": {"require_sidecar": True}}}}
    res = _materialize(root, ["nosc"], run_config=strict)["nosc"]
    assert not res.success
    assert "nosc.json: sidecar missing" in res.get_step_failure_events()[0].step_failure_data.error.message


def test_bad_scan_fails_with_file_and_problem_and_others_still_process(root):
    incoming = root / "incoming"
    write_scan(incoming, "good", make_volume(), sidecar=SIDECAR)
    truncate(write_tiff(incoming / "bad.tif", make_volume((8, 32, 32))), 0.9)
    before = tree_state(incoming)
    results = _materialize(root, ["bad", "good"])

    assert results["good"].success and (root / "warehouse/tomograms/good.zarr").exists()
    bad = results["bad"]
    assert not bad.success and not (root / "warehouse/tomograms/bad.zarr").exists()
    (failure,) = bad.get_step_failure_events()
    message = failure.step_failure_data.error.message + str(failure.step_failure_data.user_failure_data)
    assert str(incoming / "bad.tif") in message and "truncated TIFF: only 7 of 8 slices" in message
    assert tree_state(incoming) == before


def test_rematerializing_gives_identical_output(root):
    write_scan(root / "incoming", "r", make_volume(), sidecar=SIDECAR)
    first = _materialize(root, ["r"])["r"]
    a = read_zarr(root / "warehouse/tomograms/r.zarr")
    second = _materialize(root, ["r"])["r"]
    np.testing.assert_array_equal(read_zarr(root / "warehouse/tomograms/r.zarr"), a)
    v1, v2 = (r.asset_materializations_for_node("raw_tomogram")[0].tags["dagster/data_version"] for r in (first, second))
    assert v1 == v2


# ----------------------------------------------------------------------------------------------------
# sensor
# ----------------------------------------------------------------------------------------------------
class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def clear(self):
        self.lines.clear()


@pytest.fixture
def sensor_log():
    """Collects what the sensor logs through ``context.log`` (an InstigationLogger per tick)."""
    return _Lines()


def _tick(instance, root, cursor, log: logging.Handler | None = None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor,
                                  resources={"data_root": DataRootResource(data_dir=str(root))})
    if log is not None:
        ctx.log.addHandler(log)
    return incoming_scans(ctx)


def _apply_partition_requests(instance, result):
    """What the sensor daemon does with the tick's dynamic partition requests."""
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_sensor_waits_for_stable_files_launches_once_and_reports_bad_names(root, sensor_log):
    incoming = root / "incoming"
    instance = dg.DagsterInstance.ephemeral()
    write_scan(incoming, "s1", make_volume(), sidecar=SIDECAR)
    growing = write_scan(incoming, "s2", make_volume(seed=2))
    write_scan(incoming, "bad name", make_volume())
    (incoming / "junk.tif").write_bytes(os.urandom(2000))
    before = tree_state(incoming)

    r1 = _tick(instance, root, None, sensor_log)
    assert not r1.run_requests and "waiting" in r1.skip_reason.skip_message
    assert "bad name.tif" in r1.skip_reason.skip_message
    assert "invalid scan id 'bad name'" in sensor_log.text

    with open(growing, "ab") as f:  # s2 is still being written between the ticks
        f.write(b"\0" * 128)
    sensor_log.clear()
    r2 = _tick(instance, root, r1.cursor, sensor_log)
    assert [(r.partition_key, r.run_key.split(":")[0]) for r in r2.run_requests] == [("s1", "s1")]
    assert [list(d.partition_keys) for d in r2.dynamic_partitions_requests] == [["s1"]]
    assert r2.dynamic_partitions_requests[0].partitions_def_name == "scan"
    assert "junk.tif" in sensor_log.text and "not a readable TIFF" in sensor_log.text
    assert "invalid scan id" not in sensor_log.text  # reported once, not every tick
    # a retried tick (same cursor) asks for the same run key: the daemon never launches it twice
    assert [r.run_key for r in _tick(instance, root, r1.cursor).run_requests] == [r.run_key for r in r2.run_requests]
    _apply_partition_requests(instance, r2)

    r3 = _tick(instance, root, r2.cursor)
    assert [r.partition_key for r in r3.run_requests] == ["s2"]  # stable now
    assert [list(d.partition_keys) for d in r3.dynamic_partitions_requests] == [["s2"]]
    _apply_partition_requests(instance, r3)
    assert set(instance.get_dynamic_partitions("scan")) == {"s1", "s2"}

    r4 = _tick(instance, root, r3.cursor)
    assert not r4.run_requests and not r4.dynamic_partitions_requests
    assert r4.skip_reason is not None
    assert len(r4.cursor) < 1000

    # a re-dropped, changed scan is processed again (new run key) without a new partition
    shutil.copy(growing, incoming / "tmp.bin")
    write_scan(incoming, "s1", make_volume(seed=7), sidecar={**SIDECAR, "cycles": 50})
    (incoming / "tmp.bin").unlink()
    r5 = _tick(instance, root, _tick(instance, root, r4.cursor).cursor)
    assert [r.partition_key for r in r5.run_requests] == ["s1"]
    assert r5.run_requests[0].run_key != r2.run_requests[0].run_key and not r5.dynamic_partitions_requests
    assert tree_state(incoming) != before  # (only the test itself changed the drop folder)


def test_sensor_with_missing_drop_folder_skips(tmp_path):
    r = _tick(dg.DagsterInstance.ephemeral(), tmp_path, None)
    assert not r.run_requests and r.skip_reason.skip_message == "no new or changed scans"


# ----------------------------------------------------------------------------------------------------
# definitions, job, resources, instance config
# ----------------------------------------------------------------------------------------------------
def test_definitions_load_with_sensor_and_job():
    from nmc_assets.definitions import defs

    d = defs()
    dg.Definitions.validate_loadable(d)
    sensor = d.resolve_sensor_def("incoming_scans")
    assert sensor.minimum_interval_seconds == 30 and sensor.job_name == "scan_processing_job"
    job = d.resolve_job_def("scan_processing_job")
    keys = job.asset_layer.selected_asset_keys
    assert dg.AssetKey("raw_tomogram") in keys
    graph = d.resolve_asset_graph()
    for key in keys:  # only per-scan assets: a scan's run never touches catalog-wide assets
        assert graph.get(key).partitions_def == scan_partitions, key


def test_scan_processing_job_resolves_with_raw_tomogram_alone():
    d = dg.Definitions(assets=[raw_tomogram], jobs=[scan_processing_job], sensors=[incoming_scans],
                       resources={"data_root": DataRootResource()})
    dg.Definitions.validate_loadable(d)
    assert d.resolve_job_def("scan_processing_job").asset_layer.selected_asset_keys == {dg.AssetKey("raw_tomogram")}


def test_device_resource_specs():
    import torch

    assert DeviceResource(device="auto").torch_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert DeviceResource(device="cpu").torch_device() == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="'cuda' requested but torch sees no CUDA device"):
            DeviceResource(device="cuda").torch_device()
        with pytest.raises(RuntimeError, match="cuda:1"):
            DeviceResource(device="cuda:1").torch_device()
    for bad in ("gpu", "cuda:x", "tpu"):
        with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
            DeviceResource(device=bad).torch_device()


def test_local_instance_config_limits_the_gpu_pool(tmp_path):
    shutil.copy(REPO / "deploy/local/dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1
        gpu = instance.event_log_storage.get_concurrency_info("gpu")
        assert gpu.limit == 1
        assert instance.run_monitoring_settings.get("free_slots_after_run_end_seconds", 0) > 0
        assert config.run_queue_config.max_concurrent_runs >= 1
    finally:
        instance.dispose()
