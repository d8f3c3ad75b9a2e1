"""The features assets and checks, materialized in process on a tiny scan."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import tifffile

from nmc_assets.defs.features import (
    particle_catalog,
    particle_features,
    particle_features_no_nan,
    particle_features_row_count,
    particle_features_schema_complete,
)
from nmc_assets.defs.resources import BlocksResource, DataRootResource
from nmc_assets.paths import DataLayout
from nmc_assets.storage import write_zarr
from nmc_assets_tests.features.constructed import ball_mask, phase_image

CHECKS = [particle_features_schema_complete, particle_features_no_nan, particle_features_row_count]


@pytest.fixture()
def data_root(tmp_path):
    return make_data_root(tmp_path)


def make_data_root(tmp_path):
    """Scan s1: three balls (two with cavities), fused labels missing the third, ground truth, sidecar."""
    layout = DataLayout.from_path(tmp_path)
    shape = (36, 36, 72)
    labels = np.zeros(shape, np.uint32)
    solid = np.zeros(shape, bool)
    for k, cx in enumerate((12, 34, 56), start=1):
        b = ball_mask(shape, (18, 18, cx), 10)
        labels[b & (labels == 0)] = k
        solid |= b & ~ball_mask(shape, (18, 18, cx), 3 * (k - 1))
    img = phase_image(solid, blur=0.7, noise=0.02)
    write_zarr(layout.tomogram("s1"), img, attrs={"scan_id": "s1", "voxel_size_um": 0.25, "cycles": 50})
    fused = labels.copy()
    fused[fused == 3] = 0  # the "segmentation" missed one particle
    write_zarr(layout.fused_labels("s1"), fused, attrs={"scan_id": "s1", "voxel_size_um": 0.25, "n_particles": 2})
    layout.incoming.mkdir(parents=True)
    tifffile.imwrite(layout.incoming / "s1.tif", img)
    tifffile.imwrite(layout.incoming / "s1.labels.tif", labels.astype(np.uint16))
    (layout.incoming / "s1.json").write_text(json.dumps({"voxel_size_um": 0.25, "cycles": 50}))
    return layout


def _run(layout, selection_assets, partition_key="s1", run_config=None, raise_on_error=True):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("scan", ["s1"])
    return dg.materialize(
        selection_assets,
        partition_key=partition_key,
        instance=instance,
        run_config=run_config,
        raise_on_error=raise_on_error,
        resources={"data_root": DataRootResource(data_dir=str(layout.root)), "blocks": BlocksResource(workers=2)},
    )


def test_particle_features_asset_checks_and_catalog(data_root):
    res = _run(data_root, [particle_features, *CHECKS])
    assert res.success
    mat = res.asset_materializations_for_node("particle_features")[0]
    assert mat.metadata["dagster/row_count"].value == 2
    schema = mat.metadata["dagster/column_schema"].schema
    assert [c.name for c in schema.columns][:3] == ["scan_id", "particle_id", "cycles"]
    assert mat.metadata["label_source"].value == "fused"
    assert 0 < mat.metadata["mean_damage"].value < 0.2
    evaluations = res.get_asset_check_evaluations()
    assert len(evaluations) == 3 and all(e.passed for e in evaluations)
    table = pq.read_table(data_root.particle_features("s1"))
    assert table.num_rows == 2 and table.column("cycles").to_pylist() == [50, 50]
    assert table.schema.field("volume_um3").metadata[b"unit"] == b"um3"

    res = dg.materialize([particle_catalog], resources={"data_root": DataRootResource(data_dir=str(data_root.root)), "blocks": BlocksResource(workers=2)},
                         instance=dg.DagsterInstance.ephemeral())
    assert res.success
    meta = res.asset_materializations_for_node("particle_catalog")[0].metadata
    assert meta["particle_features_rows"].value == 2 and meta["scans_rows"].value == 1
    assert data_root.catalog.exists()


def test_truth_labels_source(data_root):
    res = _run(data_root, [particle_features, *CHECKS],
               run_config={"ops": {"particle_features": {"config": {"label_source": "truth"}}}})
    assert res.success
    df = pq.read_table(data_root.particle_features("s1")).to_pandas().set_index("particle_id")
    assert list(df.index) == [1, 2, 3]
    # true damage of particle 3: cavity radius 6 in a ball of radius 10 -> about 0.216
    assert df.loc[3, "damage"] == pytest.approx(0.216, abs=0.03)
    assert df.loc[1, "damage"] < 0.01
    assert all(e.passed for e in res.get_asset_check_evaluations())


def test_missing_inputs_fail_with_the_path(tmp_path):
    layout = DataLayout.from_path(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("scan", ["s1"])
    res = dg.materialize([particle_features], partition_key="s1", instance=instance, raise_on_error=False,
                         resources={"data_root": DataRootResource(data_dir=str(tmp_path)), "blocks": BlocksResource(workers=2)})
    assert not res.success
    failure = res.get_step_failure_events()[0]
    assert "tomograms/s1.zarr" in str(failure.event_specific_data.error)


def test_fused_labels_are_measured_blockwise_equal_to_in_memory(data_root):
    """The asset runs the blockwise path on the fused labels (progress in the run's log) and writes the
    table that the in-memory path computes from the same stores."""
    from nmc_assets.features import compute_particle_features, read_features
    from nmc_assets.storage import read_zarr

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("scan", ["s1"])
    res = dg.materialize([particle_features], partition_key="s1", instance=instance,
                         resources={"data_root": DataRootResource(data_dir=str(data_root.root)), "blocks": BlocksResource(workers=2)})
    assert res.success
    messages = [e.user_message for e in instance.all_logs(res.run_id)]
    assert any(m.startswith("particle_features s1: mosaics: 1/1 mosaics") for m in messages), messages
    want = compute_particle_features(read_zarr(data_root.fused_labels("s1")), read_zarr(data_root.tomogram("s1")),
                                     0.25, scan_id="s1", cycles=50)
    pd.testing.assert_frame_equal(read_features(data_root.particle_features("s1")), want, check_exact=True)
    meta = res.asset_materializations_for_node("particle_features")[0].metadata
    assert not list(data_root.fused_labels("s1").parent.glob(".*features.tmp-*")), "scratch folder left"
    assert meta["solid_threshold"].value > 0


def test_empty_fused_labels_fail_clearly(data_root):
    from nmc_assets.storage import read_zarr

    shape = read_zarr(data_root.fused_labels("s1")).shape
    write_zarr(data_root.fused_labels("s1"), np.zeros(shape, np.uint32))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("scan", ["s1"])
    res = dg.materialize([particle_features], partition_key="s1", instance=instance, raise_on_error=False,
                         resources={"data_root": DataRootResource(data_dir=str(data_root.root)), "blocks": BlocksResource(workers=2)})
    assert not res.success
    assert "no labelled voxels" in str(res.get_step_failure_events()[0].event_specific_data.error)


def test_li2022_feature_set_from_the_run_config(data_root):
    """feature_set in the launchpad config: the li2022 definitions, recorded in the Parquet schema and
    the materialization; the checks still pass."""
    res = _run(data_root, [particle_features, *CHECKS],
               run_config={"ops": {"particle_features": {"config": {"label_source": "fused", "feature_set": "li2022"}}}})
    assert res.success
    meta = res.asset_materializations_for_node("particle_features")[0].metadata
    assert meta["feature_set"].value == "li2022" and meta["dagster/row_count"].value == 2
    columns = {c.name: c.description for c in meta["dagster/column_schema"].schema.columns}
    assert columns["homogeneity"].startswith("li2022 (Homogeneity, inverted)")
    table = pq.read_table(data_root.particle_features("s1"))
    assert table.schema.metadata[b"feature_set"] == b"li2022"
    assert table.schema.metadata[b"nmc.feature_set"] == b"li2022"
    assert all(e.passed for e in res.get_asset_check_evaluations())
    (row_count,) = [e for e in res.get_asset_check_evaluations() if e.check_name == "particle_features_row_count"]
    assert row_count.metadata["labels_with_solid_voxels_only"].value is True


def test_unknown_feature_set_fails_with_the_choices(data_root):
    res = _run(data_root, [particle_features],
               run_config={"ops": {"particle_features": {"config": {"feature_set": "li2021"}}}}, raise_on_error=False)
    assert not res.success
    assert "feature_set must be one of ['default', 'li2022']" in str(res.get_step_failure_events()[0].event_specific_data.error)
