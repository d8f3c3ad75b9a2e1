"""Damage-model folder, drivers Parquet and plots written from features files."""

import json

import numpy as np
import pandas as pd
import pytest

from nmc_assets.analytics.damage_model import DRIVERS_COLUMNS, DamageModelConfig, drivers_table
from nmc_assets.analytics.pipeline import (
    BAR_CHART_FILE,
    PLOTS_DIR,
    beeswarm_path,
    build_damage_drivers,
    build_damage_model,
    drivers_path,
    model_dir,
)
from nmc_assets.analytics.store import load_damage_model, load_models, read_features, save_damage_model
from nmc_assets.analytics.synthetic import synthetic_features

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_features(root, table):
    paths = []
    for scan_id, part in table.groupby("scan_id"):
        path = root / f"scan_id={scan_id}" / "features.parquet"
        path.parent.mkdir(parents=True)
        part.to_parquet(path)
        paths.append(path)
    return paths


def test_read_features_glob_and_errors(tmp_path, synthetic_table):
    write_features(tmp_path / "pf", synthetic_table)
    frame = read_features(str(tmp_path / "pf" / "*" / "features.parquet"))
    assert len(frame) == len(synthetic_table)
    assert set(frame["scan_id"]) == {"synthetic-10", "synthetic-50"}
    with pytest.raises(FileNotFoundError, match="no particle_features"):
        read_features(str(tmp_path / "nothing" / "*.parquet"))
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 truncated")
    with pytest.raises(ValueError, match="bad.parquet"):
        read_features([bad])


def test_read_features_records_the_feature_set_and_refuses_a_mix(tmp_path, synthetic_table):
    import pyarrow.parquet as pq

    paths = write_features(tmp_path / "pf", synthetic_table)
    assert read_features([str(p) for p in paths]).attrs["feature_set"] == "default"  # files without the key
    for path in paths:
        table = pq.read_table(path)
        pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), b"feature_set": b"li2022"}), path)
    assert read_features([str(p) for p in paths]).attrs["feature_set"] == "li2022"
    first = pq.read_table(paths[0])
    pq.write_table(first.replace_schema_metadata({b"feature_set": b"default"}), paths[0])
    with pytest.raises(ValueError, match="mix feature sets"):
        read_features([str(p) for p in paths])


def test_store_round_trip_matches_in_memory(tmp_path, synthetic_results):
    directory = save_damage_model(synthetic_results, tmp_path / "damage_model")
    stored = load_damage_model(directory)
    assert stored.conditions == ["10", "50", "all"]
    summary = json.loads((directory / "summary.json").read_text())
    assert summary["config"]["criterion"] == "absolute_error"
    assert summary["conditions"]["10"]["n_repeats"] == 4
    from nmc_assets.analytics.store import stored_drivers_table

    pd.testing.assert_frame_equal(stored_drivers_table(stored), drivers_table(synthetic_results))
    values, shap_values, ids, expected = stored.reference_shap("50")
    cond = synthetic_results.conditions["50"]
    np.testing.assert_allclose(shap_values, cond.reference_shap)
    assert list(values.columns) == cond.attributes and {"scan_id", "particle_id", "damage"} <= set(ids.columns)
    models = load_models(directory)
    X = cond.data[cond.attributes].to_numpy(float)
    np.testing.assert_allclose(models["50"]["model"].predict(X), cond.reference_model.predict(X))
    with pytest.raises(FileNotFoundError, match="materialize damage_model"):
        load_damage_model(tmp_path / "missing")


def test_build_outputs_and_stale_plots_removed(tmp_path):
    table = synthetic_features(n_per_condition=120, seed=5)
    analytics = tmp_path / "analytics"
    config = DamageModelConfig(n_trees=15, n_seeds=2, n_subsamples=1, criterion="squared_error")
    build_damage_model(table, analytics, config)
    stale = analytics / PLOTS_DIR / "shap_beeswarm_old.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(PNG_MAGIC)
    out = build_damage_drivers(analytics)
    assert not stale.exists()
    written = pd.read_parquet(drivers_path(analytics))
    assert list(written.columns) == list(DRIVERS_COLUMNS)
    assert set(written["condition"]) == {"10", "50", "all"}
    assert out.bar_chart == analytics / PLOTS_DIR / BAR_CHART_FILE
    for condition in ("10", "50", "all"):
        png = beeswarm_path(analytics, condition).read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 10_000
    assert out.bar_chart.read_bytes().startswith(PNG_MAGIC)
    # re-running with the same inputs gives the same table
    build_damage_model(table, analytics, config)
    again = build_damage_drivers(analytics)
    pd.testing.assert_frame_equal(again.table, written)


def test_too_little_data_writes_empty_table_and_no_plots(tmp_path):
    analytics = tmp_path / "analytics"
    results = build_damage_model(synthetic_features(n_per_condition=8, seed=1), analytics, DamageModelConfig(n_seeds=1, n_subsamples=1))
    assert results.conditions == {} and "all" in results.skipped
    out = build_damage_drivers(analytics)
    assert out.table.empty and out.bar_chart is None and out.beeswarms == {}
    assert list(pd.read_parquet(drivers_path(analytics)).columns) == list(DRIVERS_COLUMNS)
    assert "min_particles" in json.loads((model_dir(analytics) / "summary.json").read_text())["skipped"]["all"]
