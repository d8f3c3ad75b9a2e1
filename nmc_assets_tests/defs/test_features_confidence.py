"""The confidence columns of particle_features and the per-scan confidence check (tiny scan, constructed maps)."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest

from nmc_assets.defs.features import particle_features, particle_features_confidence
from nmc_assets.features.columns import CONFIDENCE_COLUMNS
from nmc_assets.storage import read_zarr
from nmc_assets_tests.defs.test_features import _run, make_data_root
from nmc_assets_tests.segmentation.constructed import ideal_maps, write_view_maps

CHECK_OP = "particle_features_particle_features_confidence"


@pytest.fixture()
def data_root(tmp_path):
    return make_data_root(tmp_path)


def _with_view_maps(layout):
    """StarDist-like maps of the fused labels (two balls), as if predicted, at bin factor 1."""
    labels = read_zarr(layout.fused_labels("s1"))
    prob, dist = ideal_maps(labels)
    write_view_maps(layout.view_probabilities("s1"), {v: prob for v in ("xy", "xz", "yz")}, dist, bin_factor=1,
                    full_shape=labels.shape, voxel_size_um=0.25)
    return layout


def _check(res):
    (evaluation,) = [e for e in res.get_asset_check_evaluations() if e.check_name == "particle_features_confidence"]
    return evaluation


def test_confidence_columns_and_check(data_root):
    _with_view_maps(data_root)
    res = _run(data_root, [particle_features, particle_features_confidence])
    df = pq.read_table(data_root.particle_features("s1")).to_pandas()
    conf = df[CONFIDENCE_COLUMNS].to_numpy()
    assert conf.shape == (2, 5) and np.isfinite(conf).all() and (conf >= 0).all() and (conf <= 1).all()
    assert (df["segmentation_confidence"] > 0.5).all()  # two clean balls with crisp maps
    meta = res.asset_materializations_for_node("particle_features")[0].metadata
    assert meta["confidence"].value.startswith("computed from")
    check = _check(res)
    assert check.passed and check.metadata["low_confidence"].value == 0 and "gallery" in check.metadata
    # every particle below a threshold of 1, more than 0 % allowed -> warns, with the gallery of both
    res = _run(data_root, [particle_features, particle_features_confidence], raise_on_error=False,
               run_config={"ops": {CHECK_OP: {"config": {"threshold": 1.0, "max_low_share": 0.0, "gallery_size": 2}}}})
    check = _check(res)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["low_confidence_share"].value == 1.0
    gallery = check.metadata["gallery"].value
    assert "data:image/png;base64," in gallery and gallery.count(" (0.") + gallery.count(" (1.") == 2


def test_without_view_maps_the_columns_are_null_and_the_check_skips(data_root):
    res = _run(data_root, [particle_features, particle_features_confidence])
    df = pq.read_table(data_root.particle_features("s1")).to_pandas()
    assert df[CONFIDENCE_COLUMNS].isna().all().all() and len(df) == 2
    meta = res.asset_materializations_for_node("particle_features")[0].metadata
    assert meta["confidence"].value.startswith("not computed: no view maps")
    check = _check(res)
    assert check.passed and "no view maps" in check.metadata["skipped"].value


def test_require_confidence_fails_without_view_maps(data_root):
    res = _run(data_root, [particle_features], raise_on_error=False,
               run_config={"ops": {"particle_features": {"config": {"require_confidence": True}}}})
    assert not res.success
    error = str(res.get_step_failure_events()[0].event_specific_data.error)
    assert "require_confidence" in error and "materialize view_probabilities" in error


def test_truth_labels_get_confidence_from_the_view_maps(data_root):
    """label_source truth (labels read whole from the TIFF): the same columns, one row per true particle;
    the particle the view maps do not show (missed by the segmentation) scores lowest."""
    _with_view_maps(data_root)
    res = _run(data_root, [particle_features],
               run_config={"ops": {"particle_features": {"config": {"label_source": "truth"}}}})
    assert res.success
    df = pq.read_table(data_root.particle_features("s1")).to_pandas().set_index("particle_id")
    assert list(df.index) == [1, 2, 3] and df[CONFIDENCE_COLUMNS].notna().all().all()
    assert df["segmentation_confidence"].idxmin() == 3 and df.loc[3, "segmentation_confidence"] < 0.5
