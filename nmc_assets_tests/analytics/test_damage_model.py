"""Damage regression core: inputs, skips, scores and the recovery of a known law (synthetic table)."""

import numpy as np
import pandas as pd
import pytest

from nmc_assets.analytics.damage_model import (
    DEFAULT_EXCLUDED_ATTRIBUTES,
    DRIVERS_COLUMNS,
    DamageModelConfig,
    drivers_table,
    fit_damage_models,
    prepare_conditions,
)
from nmc_assets.analytics.synthetic import NUISANCE_ATTRIBUTES, synthetic_features
from nmc_assets.analytics.validation import driver_recovery

from .conftest import FAST_CONFIG

TINY = DamageModelConfig(n_trees=10, n_seeds=1, n_subsamples=1, cv_folds=3, min_particles=30, criterion="squared_error")


def test_default_config_is_the_study():
    c = DamageModelConfig()
    assert (c.n_trees, c.criterion, c.max_leaf_nodes, c.max_features) == (40, "absolute_error", 30, "sqrt")
    assert (c.test_fraction, c.n_seeds, c.n_subsamples, c.subsample_size) == (0.05, 10, 10, 500)
    assert set(c.exclude_attributes) == {"surface_inner_um2", "rough_inner", "e_density", "homogeneity"}


@pytest.mark.parametrize(
    "kwargs, message",
    [({"test_fraction": 0.0}, "test_fraction"), ({"cv_folds": 1}, "cv_folds"), ({"criterion": "mae"}, "criterion"),
     ({"min_particles": 5}, "min_particles")],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DamageModelConfig(**kwargs)


def test_prepare_conditions_splits_by_cycles_and_drops_rows(synthetic_table):
    table = synthetic_table.copy()
    table.loc[table.index[:5], "contact"] = np.nan
    frames, columns, skipped, inputs = prepare_conditions(table, DamageModelConfig())
    assert list(frames) == ["10", "50", "all"]
    assert skipped == {}
    n_border = int(synthetic_table["touches_border"].sum())
    assert inputs["rows_dropped_touches_border"] == n_border
    assert inputs["rows_dropped_missing_values"] == int((~synthetic_table["touches_border"].iloc[:5]).sum())
    assert inputs["rows_used"] == len(table) - n_border - inputs["rows_dropped_missing_values"]
    assert len(frames["10"]) + len(frames["50"]) == len(frames["all"]) == inputs["rows_used"]
    assert not frames["all"]["touches_border"].any()
    for leak in DEFAULT_EXCLUDED_ATTRIBUTES:
        assert leak not in columns["10"] and leak in inputs["attributes_excluded"]
    assert "cycles" in columns["all"] and "cycles" not in columns["10"]
    for ident in ("scan_id", "particle_id", "x_um", "y_um", "voxel_size_um", "damage"):
        assert ident not in columns["all"]
    # border particles kept on request
    frames2, *_ = prepare_conditions(synthetic_table, DamageModelConfig(include_border_particles=True))
    assert len(frames2["all"]) == len(synthetic_table)


def test_missing_attribute_columns_are_reported_not_fatal(synthetic_table):
    table = synthetic_table.drop(columns=["orien_iso", "elong_std"])
    _, columns, _, inputs = prepare_conditions(table, DamageModelConfig())
    assert inputs["attributes_missing"] == ["orien_iso", "elong_std"]
    assert "orien_iso" not in columns["10"]


def test_no_damage_column_is_a_clear_error(synthetic_table):
    with pytest.raises(ValueError, match="'damage'"):
        fit_damage_models(synthetic_table.drop(columns=["damage"]), TINY)


def test_too_few_particles_skips_with_reason():
    small = synthetic_features(n_per_condition=40, seed=1)  # ~37 usable per condition, 74 together
    results = fit_damage_models(small, DamageModelConfig(n_trees=10, n_seeds=1, n_subsamples=1, min_particles=50))
    assert list(results.conditions) == ["all"]
    assert "fewer than min_particles=50" in results.skipped["10"]
    assert "fewer than min_particles=50" in results.skipped["50"]
    tiny = synthetic_features(n_per_condition=10, seed=1)
    none = fit_damage_models(tiny, DamageModelConfig(n_seeds=1, n_subsamples=1))
    assert none.conditions == {}
    assert "all" in none.skipped and "min_particles" in none.skipped["all"]
    empty = drivers_table(none)
    assert empty.empty and list(empty.columns) == list(DRIVERS_COLUMNS)


def test_one_condition_gives_all_only_and_says_why():
    one = synthetic_features(n_per_condition=120, cycles=(10,), seed=2)
    results = fit_damage_models(one, TINY)
    assert list(results.conditions) == ["all"]
    assert "only one cycling condition" in results.skipped["comparison"]
    assert "cycles" not in results.conditions["all"].attributes  # constant: no information


def test_repeats_and_scores_have_the_configured_shape(synthetic_results):
    cond = synthetic_results.conditions["10"]
    cfg = FAST_CONFIG
    assert len(cond.repeats) == cfg.n_seeds * cfg.n_subsamples
    assert len(cond.oof) == cfg.n_subsamples
    assert cond.subsample_size == min(cfg.subsample_size, cond.n_particles)
    assert (cond.repeats["n_test"] == int(np.ceil(cfg.test_fraction * cond.subsample_size))).all()
    assert len(cond.shap_repeats) == len(cond.repeats) * len(cond.attributes)
    assert cond.reference_shap.shape == (cond.n_particles, len(cond.attributes))
    # SHAP additivity of the reference forest: expected value + row sum = prediction
    X = cond.data[cond.attributes].to_numpy(float)
    pred = cond.reference_model.predict(X)
    np.testing.assert_allclose(cond.reference_expected_value + cond.reference_shap.sum(1), pred, atol=1e-6)


def test_synthetic_law_drivers_rank_first_and_scores_are_honest(synthetic_results):
    table = drivers_table(synthetic_results)
    for condition in ("10", "50"):
        check = driver_recovery(table, condition, top_k=4)  # synthetic: no size proxies
        assert check["passed"], check
        # every pure-nuisance attribute ranks below all three true driver groups
        ranks = table[table["condition"] == condition].set_index("attribute")["rank"]
        assert ranks[list(NUISANCE_ATTRIBUTES)].min() > check["worst_driver_rank"]
        scores = synthetic_results.conditions[condition].scores()
        assert scores["r2_oof_mean"] > 0.6 and scores["r2_test_mean"] > 0.5
        y = synthetic_results.conditions[condition].data["damage"]
        baseline_mae = float((y - y.median()).abs().mean())  # predicting the median for everyone
        # 21 study attributes, 7 of them pure noise (0.51 of the baseline since sphericity_std joined)
        assert 0 < scores["mae_oof_mean"] < 0.55 * baseline_mae
    # pooled: cycles is a driver when conditions are mixed
    all_rows = table[table["condition"] == "all"].set_index("attribute")
    assert all_rows.loc["cycles", "rank"] <= 2


def test_drivers_table_columns_and_spread(synthetic_results):
    table = drivers_table(synthetic_results)
    assert list(table.columns) == list(DRIVERS_COLUMNS)
    for _, rows in table.groupby("condition"):
        assert list(rows["rank"]) == list(range(1, len(rows) + 1))
        assert rows["mean_abs_shap"].is_monotonic_decreasing
        assert (rows["std_abs_shap"] >= 0).all() and (rows["top3_fraction"].between(0, 1)).all()
        assert rows["top3_fraction"].sum() == pytest.approx(3.0)  # three attributes in the top 3 of each repeat
        assert rows["r2_oof_std"].nunique() == 1


def test_leaky_attributes_would_dominate_if_not_excluded(synthetic_table):
    results = fit_damage_models(synthetic_table[synthetic_table["cycles"] == 50], DamageModelConfig(
        n_trees=20, n_seeds=1, n_subsamples=1, exclude_attributes=(), criterion="squared_error"))
    table = drivers_table(results)
    top3 = set(table[table["rank"] <= 3]["attribute"])
    assert top3 & {"e_density", "homogeneity", "surface_inner_um2", "rough_inner"}


def test_same_seed_same_result(synthetic_table):
    part = synthetic_table[synthetic_table["cycles"] == 10]
    a = drivers_table(fit_damage_models(part, TINY))
    b = drivers_table(fit_damage_models(part, TINY))
    pd.testing.assert_frame_equal(a, b)
    c = drivers_table(fit_damage_models(part, DamageModelConfig(**{**TINY.to_dict(), "random_seed": 7,
                                                                   "attributes": TINY.attributes,
                                                                   "exclude_attributes": TINY.exclude_attributes})))
    assert not np.allclose(a["mean_abs_shap"], c.set_index("attribute").loc[a["attribute"], "mean_abs_shap"])
