"""The analytics group (damage_model, damage_drivers, damage_law_recovery) in process on features files in a
temp data root, and the catalog that copies the drivers table."""

import dagster as dg
import pandas as pd
import pytest

from nmc_assets.analytics.synthetic import synthetic_features
from nmc_assets.defs.analytics import DamageModelAssetConfig, damage_drivers, damage_model
from nmc_assets.defs.features import particle_catalog
from nmc_assets.defs.resources import DataRootResource
from nmc_assets.paths import DataLayout

FAST_RUN_CONFIG = {"ops": {"damage_model": {"config": {"n_trees": 15, "n_seeds": 2, "n_subsamples": 1, "criterion": "squared_error"}}}}


def _write(layout: DataLayout, table: pd.DataFrame) -> None:
    for scan_id, part in table.groupby("scan_id"):
        path = layout.particle_features(scan_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        part.to_parquet(path)


def _materialize(tmp_path, run_config=FAST_RUN_CONFIG, with_catalog=False):
    return dg.materialize(
        [damage_model, damage_drivers] + ([particle_catalog] if with_catalog else []),
        instance=dg.DagsterInstance.ephemeral(),
        resources={"data_root": DataRootResource(data_dir=str(tmp_path))},
        run_config=run_config,
    )


def test_asset_definitions():
    assert damage_model.group_names_by_key[dg.AssetKey("damage_model")] == "analytics"
    assert dg.AssetKey("particle_features") in damage_model.dependency_keys
    assert dg.AssetKey("damage_model") in damage_drivers.dependency_keys
    # one writer of nmc.duckdb: the catalog, which follows the drivers table
    assert "duckdb" not in damage_drivers.specs_by_key[dg.AssetKey("damage_drivers")].kinds and damage_drivers.op.pool is None
    assert dg.AssetKey("damage_drivers") in particle_catalog.dependency_keys and particle_catalog.op.pool == "duckdb"
    core = DamageModelAssetConfig().to_core()
    assert (core.n_trees, core.criterion, core.n_seeds, core.n_subsamples, core.subsample_size) == (40, "absolute_error", 10, 10, 500)
    assert DamageModelAssetConfig(max_features="0.5").to_core().max_features == 0.5
    assert DamageModelAssetConfig(max_features="6").to_core().max_features == 6


def test_materialize_writes_model_table_plots_and_metadata(tmp_path):
    layout = DataLayout.from_path(tmp_path)
    _write(layout, synthetic_features(n_per_condition=150, seed=4))
    result = _materialize(tmp_path, with_catalog=True)
    assert result.success
    model_md = result.asset_materializations_for_node("damage_model")[0].metadata
    assert "| 10 |" in model_md["scores"].value and "| all |" in model_md["scores"].value
    assert model_md["skipped"].value == "none"
    assert "| informative |" in model_md["scores"].value
    drivers_md = result.asset_materializations_for_node("damage_drivers")[0].metadata
    assert drivers_md["bar_chart"].value.startswith("![damage drivers by condition](data:image/png;base64,")
    assert drivers_md["beeswarm_10"].value.startswith("![SHAP beeswarm 10](data:image/png;base64,")
    assert len(drivers_md["bar_chart"].value) < 150_000
    table = pd.read_parquet(layout.analytics / "damage_drivers.parquet")
    assert drivers_md["dagster/row_count"].value == len(table) > 0
    assert (layout.analytics / "plots" / "damage_drivers.png").exists()
    assert (layout.analytics / "plots" / "shap_beeswarm_50.png").exists()
    assert (layout.analytics / "damage_model" / "models.joblib").exists()
    catalog_md = result.asset_materializations_for_node("particle_catalog")[0].metadata
    assert catalog_md["damage_drivers_rows"].value == len(table)


def test_materialize_with_one_small_scan_skips_cleanly(tmp_path):
    layout = DataLayout.from_path(tmp_path)
    _write(layout, synthetic_features(n_per_condition=20, cycles=(10,), seed=4))
    result = _materialize(tmp_path)
    assert result.success
    skipped = result.asset_materializations_for_node("damage_model")[0].metadata["skipped"].value
    assert "only one cycling condition" in skipped and "min_particles" in skipped
    drivers_md = result.asset_materializations_for_node("damage_drivers")[0].metadata
    assert drivers_md["dagster/row_count"].value == 0 and "bar_chart" not in drivers_md


def test_no_features_fails_naming_the_path(tmp_path):
    with pytest.raises(Exception, match="no particle_features Parquet files"):
        _materialize(tmp_path)


def test_law_recovery_check_applies_only_to_virtual_scans(tmp_path):
    from nmc_assets.defs.analytics import damage_law_recovery

    layout = DataLayout.from_path(tmp_path)
    table = synthetic_features(n_per_condition=200, seed=4)
    _write(layout, table)

    def run():
        result = dg.materialize(
            [damage_model, damage_drivers, damage_law_recovery],
            instance=dg.DagsterInstance.ephemeral(),
            resources={"data_root": DataRootResource(data_dir=str(tmp_path))},
            run_config=FAST_RUN_CONFIG,
        )
        evaluations = result.get_asset_check_evaluations()
        assert len(evaluations) == 1
        return evaluations[0]

    not_virtual = run()
    assert not_virtual.passed and not_virtual.metadata["applicable"].value is False
    layout.incoming.mkdir(parents=True)
    for scan_id in table["scan_id"].unique():
        (layout.incoming / f"{scan_id}.json").write_text('{"cycles": 10, "damage_law": {"b0": 0.03}}')
    virtual = run()
    assert virtual.metadata["applicable"].value is True
    assert virtual.passed, virtual.description
    assert "| 10 |" in virtual.metadata["ranks"].value


def test_ranking_note_flags_noise():
    from nmc_assets.defs.analytics import ranking_note

    assert ranking_note({"r2_oof_mean": 0.4, "r2_oof_std": 0.05}) == "informative"
    assert ranking_note({"r2_oof_mean": 0.05, "r2_oof_std": 0.04}).startswith("noise")
    assert ranking_note({"r2_oof_mean": None, "r2_oof_std": None}) == "no score"
