"""The drivers table: mean |SHAP| per condition and attribute, its spread over repeats, and the scores.

One row per condition and attribute (columns :data:`DRIVERS_COLUMNS`); mean |SHAP| is in units of
damage (a volume fraction), ranks are 1 = strongest. Built from fitted models by
:func:`nmc_assets.analytics.damage_model.drivers_table` and from a stored model folder by
:mod:`nmc_assets.analytics.store`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Columns of the drivers table and their pandas dtypes, in order.
DRIVERS_COLUMNS = {
    "condition": "string",
    "attribute": "string",
    "mean_abs_shap": "float64",
    "std_abs_shap": "float64",
    "rank": "int64",
    "rank_mean": "float64",
    "rank_std": "float64",
    "top3_fraction": "float64",
    "n_particles": "int64",
    "subsample_size": "int64",
    "n_repeats": "int64",
    "r2_oof_mean": "float64",
    "r2_oof_std": "float64",
    "mae_oof_mean": "float64",
    "mae_oof_std": "float64",
    "r2_test_mean": "float64",
    "r2_test_std": "float64",
    "mae_test_mean": "float64",
}


def empty_drivers_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in DRIVERS_COLUMNS.items()})


def summarise_condition(
    label: str, shap_repeats: pd.DataFrame, n_particles: int, subsample_size: int, scores: dict[str, float]
) -> pd.DataFrame:
    """One condition's rows of :func:`drivers_table` from its per-repeat SHAP table."""
    grouped = shap_repeats.groupby("attribute", sort=False)
    table = pd.DataFrame(
        {
            "mean_abs_shap": grouped["mean_abs_shap"].mean(),
            "std_abs_shap": grouped["mean_abs_shap"].std(ddof=0),
            "rank_mean": grouped["rank"].mean(),
            "rank_std": grouped["rank"].std(ddof=0),
            "top3_fraction": grouped["rank"].apply(lambda r: float((r <= 3).mean())),
        }
    ).reset_index()
    table = table.sort_values(["mean_abs_shap", "attribute"], ascending=[False, True], kind="stable").reset_index(drop=True)
    table.insert(0, "condition", label)
    table.insert(4, "rank", np.arange(1, len(table) + 1))
    table["n_particles"] = n_particles
    table["subsample_size"] = subsample_size
    table["n_repeats"] = int(shap_repeats[["subsample", "seed"]].drop_duplicates().shape[0])
    for key in ("r2_oof_mean", "r2_oof_std", "mae_oof_mean", "mae_oof_std", "r2_test_mean", "r2_test_std", "mae_test_mean"):
        table[key] = scores[key]
    return table[list(DRIVERS_COLUMNS)].astype(DRIVERS_COLUMNS)
