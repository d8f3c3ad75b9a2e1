"""The two analytics steps over paths: features -> damage-model folder -> drivers table and plots.

Outputs (under ``<warehouse>/analytics/``, every file written atomically)::

    damage_model/                  see nmc_assets.analytics.store
    damage_drivers.parquet         the drivers table (nmc_assets.analytics.damage_model.drivers_table)
    plots/damage_drivers.png       grouped bar chart of mean |SHAP| by attribute and condition
    plots/shap_beeswarm_<condition>.png   SHAP beeswarm of the condition's reference forest
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nmc_assets.analytics.damage_model import DamageModelConfig, DamageModelResults, fit_damage_models
from nmc_assets.paths import DAMAGE_DRIVERS_FILE
from nmc_assets.analytics.plots import beeswarm_png, condition_order, drivers_bar_chart
from nmc_assets.analytics.store import (
    _safe_name,
    load_damage_model,
    read_features,
    save_damage_model,
    stored_drivers_table,
)
from nmc_assets.storage import atomic_write_bytes, atomic_write_parquet

DRIVERS_FILE = DAMAGE_DRIVERS_FILE
MODEL_DIR = "damage_model"
PLOTS_DIR = "plots"
BAR_CHART_FILE = "damage_drivers.png"


def model_dir(analytics_dir: str | Path) -> Path:
    return Path(analytics_dir) / MODEL_DIR


def drivers_path(analytics_dir: str | Path) -> Path:
    return Path(analytics_dir) / DRIVERS_FILE


def beeswarm_path(analytics_dir: str | Path, condition: str) -> Path:
    return Path(analytics_dir) / PLOTS_DIR / f"shap_beeswarm_{_safe_name(condition)}.png"


def build_damage_model(
    features: str | list[str | Path] | pd.DataFrame, analytics_dir: str | Path, config: DamageModelConfig | None = None
) -> DamageModelResults:
    """Read the features (glob, paths or a DataFrame), fit every condition, write ``damage_model/``.
    ``results.inputs["feature_set"]`` names the feature set the ranking comes from."""
    frame = features if isinstance(features, pd.DataFrame) else read_features(features)
    results = fit_damage_models(frame, config)
    results.inputs["feature_set"] = frame.attrs.get("feature_set", "default")
    save_damage_model(results, model_dir(analytics_dir))
    return results


@dataclass
class DriversOutputs:
    table: pd.DataFrame
    table_path: Path
    bar_chart: Path | None
    bar_chart_png: bytes | None
    beeswarms: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    feature_set: str = "default"  #: the feature set of the ranked attributes (docs/features.md)


def build_damage_drivers(analytics_dir: str | Path) -> DriversOutputs:
    """Write ``damage_drivers.parquet`` and the plots from the stored damage model.

    With no fitted condition the table is written empty (with its columns) and no plot is drawn;
    stale plots from an earlier run are removed so they cannot be mistaken for current ones.
    """
    analytics_dir = Path(analytics_dir)
    stored = load_damage_model(model_dir(analytics_dir))
    table = stored_drivers_table(stored)
    table_path = atomic_write_parquet(drivers_path(analytics_dir), table)
    plots = analytics_dir / PLOTS_DIR
    current = {BAR_CHART_FILE} | {beeswarm_path(analytics_dir, c).name for c in stored.conditions}
    if plots.exists():
        for old in plots.glob("*.png"):
            if old.name not in current:
                old.unlink()
    outputs = DriversOutputs(table=table, table_path=table_path, bar_chart=None, bar_chart_png=None,
                             skipped=dict(stored.summary.get("skipped", {})),
                             feature_set=stored.summary.get("inputs", {}).get("feature_set", "default"))
    if table.empty:
        (plots / BAR_CHART_FILE).unlink(missing_ok=True)
        return outputs
    outputs.bar_chart_png = drivers_bar_chart(table)
    outputs.bar_chart = atomic_write_bytes(plots / BAR_CHART_FILE, outputs.bar_chart_png)
    for condition in condition_order(stored.conditions):
        values, shap_values, _, expected = stored.reference_shap(condition)
        n = len(values)
        title = f"SHAP, condition {condition} ({n} particles, forest fitted on all of them)"
        png = beeswarm_png(shap_values, values, expected, title=title)
        outputs.beeswarms[condition] = atomic_write_bytes(beeswarm_path(analytics_dir, condition), png)
    return outputs
