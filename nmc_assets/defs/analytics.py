"""Damage analytics assets: random forests of damage per cycling condition, and their SHAP drivers."""


import time

import dagster as dg

from nmc_assets.analytics.damage_model import DamageModelConfig
from nmc_assets.defs.config import CoreSettingsConfig, core_settings
from nmc_assets.defs.resources import DataRootResource

ANALYTICS_CODE_VERSION = "analytics-v1"


@core_settings(DamageModelConfig)
class DamageModelAssetConfig(CoreSettingsConfig):
    """Random-forest settings (:class:`nmc_assets.analytics.damage_model.DamageModelConfig`); the defaults
    are Li et al. 2022's (40 trees, absolute_error, 30 leaves)."""


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _scores_markdown(conditions: dict) -> str:
    if not conditions:
        return "no condition fitted"
    lines = [
        "| condition | particles | repeats | R² OOF | MAE OOF | R² held-out 5 % | time s | ranking |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, c in conditions.items():
        lines.append(
            f"| {label} | {c['n_particles']} | {c['n_repeats']} | {_fmt(c['r2_oof_mean'])} ± {_fmt(c['r2_oof_std'])} "
            f"| {_fmt(c['mae_oof_mean'], 4)} ± {_fmt(c['mae_oof_std'], 4)} "
            f"| {_fmt(c['r2_test_mean'])} ± {_fmt(c['r2_test_std'])} | {c['seconds']:.1f} | {ranking_note(c)} |"
        )
    return "\n".join(lines)


def ranking_note(scores: dict) -> str:
    """'informative' when the OOF R² is clearly above 0 (mean - 2 std > 0), else a warning."""
    mean, std = scores.get("r2_oof_mean"), scores.get("r2_oof_std") or 0.0
    if mean is None:
        return "no score"
    return "informative" if mean - 2 * std > 0 else "noise: the forest does not beat the mean damage"


def _skipped_markdown(skipped: dict) -> str:
    return "\n".join(f"- **{k}**: {v}" for k, v in skipped.items()) or "none"


@dg.asset(
    group_name="analytics",
    kinds={"scikitlearn", "parquet"},
    code_version=ANALYTICS_CODE_VERSION,
    deps=[dg.AssetKey("particle_features")],
)
def damage_model(
    context: dg.AssetExecutionContext, config: DamageModelAssetConfig, data_root: DataRootResource
) -> dg.MaterializeResult:
    """Random forests regressing particle damage on the other attributes, per cycling condition.

    One condition per ``cycles`` value of the scans, plus ``all`` (every particle; ``cycles`` is then
    an attribute). Per condition: subsamples x seeds repeats with a 5 % held-out split, a K-fold
    out-of-fold score per subsample, and mean |SHAP| per attribute and repeat. Conditions with too
    few particles are skipped with the reason. Attributes that restate damage are excluded by default.
    Writes ``warehouse/analytics/damage_model/`` (summary.json, per-repeat Parquet tables, SHAP of
    every particle, the reference forests as joblib).
    """
    from nmc_assets.analytics.pipeline import build_damage_model, model_dir

    layout = data_root.layout
    t0 = time.perf_counter()
    results = build_damage_model(layout.particle_features_glob, layout.analytics, config.to_core())
    seconds = time.perf_counter() - t0
    from nmc_assets.analytics.store import summary_dict

    summary = summary_dict(results)
    for name, reason in results.skipped.items():
        context.log.warning(f"damage_model: skipped {name}: {reason}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(model_dir(layout.analytics))),
            "scores": dg.MetadataValue.md(_scores_markdown(summary["conditions"])),
            "skipped": dg.MetadataValue.md(_skipped_markdown(results.skipped)),
            "conditions": dg.MetadataValue.json(list(results.conditions)),
            "feature_set": str(results.inputs.get("feature_set", "default")),
            "particles_used": dg.MetadataValue.int(int(results.inputs.get("rows_used", 0))),
            "attributes_used": dg.MetadataValue.json(results.inputs.get("attributes_used", [])),
            "attributes_excluded": dg.MetadataValue.json(results.inputs.get("attributes_excluded", {})),
            "inputs": dg.MetadataValue.json({k: v for k, v in results.inputs.items() if k.startswith("rows_")}),
            "wall_time_s": dg.MetadataValue.float(round(seconds, 2)),
        }
    )


@dg.asset(
    group_name="analytics",
    kinds={"parquet", "matplotlib"},
    code_version=ANALYTICS_CODE_VERSION,
    deps=[damage_model],
)
def damage_drivers(context: dg.AssetExecutionContext, data_root: DataRootResource) -> dg.MaterializeResult:
    """Mean |SHAP| per attribute and condition, with its spread over the repeats (the damage drivers).

    Metadata ``feature_set`` says which attribute definitions were ranked (docs/features.md).
    Writes ``warehouse/analytics/damage_drivers.parquet`` (``particle_catalog``, downstream, copies it
    into the DuckDB table ``damage_drivers``), a grouped bar chart of attributes by condition and one
    SHAP beeswarm per condition under ``warehouse/analytics/plots/``.
    """
    from nmc_assets.analytics.pipeline import build_damage_drivers
    from nmc_assets.previews import png_markdown

    layout = data_root.layout
    outputs = build_damage_drivers(layout.analytics)
    metadata = {
        "path": dg.MetadataValue.path(str(outputs.table_path)),
        "dagster/row_count": dg.MetadataValue.int(len(outputs.table)),
        "skipped": dg.MetadataValue.md(_skipped_markdown(outputs.skipped)),
        "feature_set": outputs.feature_set,  # the attribute definitions ranked (docs/features.md)
    }
    if not outputs.table.empty:
        metadata["bar_chart"] = dg.MetadataValue.md(png_markdown(outputs.bar_chart_png, "damage drivers by condition", 520))
        metadata["bar_chart_path"] = dg.MetadataValue.path(str(outputs.bar_chart))
        metadata["beeswarm_paths"] = dg.MetadataValue.json({k: str(v) for k, v in outputs.beeswarms.items()})
        for condition, path in outputs.beeswarms.items():
            metadata[f"beeswarm_{condition}"] = dg.MetadataValue.md(
                png_markdown(path.read_bytes(), f"SHAP beeswarm {condition}", 420)
            )
        top = outputs.table[outputs.table["rank"] <= 5]
        lines = ["| condition | rank | attribute | mean abs SHAP | std | top-3 share |", "| --- | --- | --- | --- | --- | --- |"]
        for row in top.itertuples():
            lines.append(
                f"| {row.condition} | {row.rank} | {row.attribute} | {row.mean_abs_shap:.4f} | {row.std_abs_shap:.4f} | {row.top3_fraction:.2f} |"
            )
        metadata["top_drivers"] = dg.MetadataValue.md("\n".join(lines))
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=damage_drivers, blocking=False)
def damage_law_recovery(data_root: DataRootResource) -> dg.AssetCheckResult:
    """On virtual scans (known damage law): the law's drivers lead the mean |SHAP| ranking.

    Per cycling condition: size (volume_um3 or surface_outer_um2) and depth (z_um) rank in the top 3,
    contact in the top 6 (shape measures are size proxies in virtual particles), and yaw/pitch/roll,
    orien_iso and elong_std rank below the lowest of them (nmc_assets.analytics.validation). Not applicable
    (passes, says so) when a scan has no simulator damage law in its sidecar, or nothing was fitted.
    """
    import json

    import pandas as pd

    from nmc_assets.analytics.pipeline import drivers_path, model_dir
    from nmc_assets.analytics.validation import law_recovery_report, virtual_scan_laws

    layout = data_root.layout
    summary = json.loads((model_dir(layout.analytics) / "summary.json").read_text())
    table = pd.read_parquet(drivers_path(layout.analytics))
    scan_ids = summary.get("inputs", {}).get("scan_ids", [])
    laws = virtual_scan_laws(layout.incoming, scan_ids)
    real = [s for s, law in laws.items() if law is None]
    if table.empty or not scan_ids or real:
        why = "no condition was fitted" if table.empty or not scan_ids else f"scans without a known damage law: {real}"
        return dg.AssetCheckResult(passed=True, description=f"not applicable: {why}",
                                   metadata={"applicable": False, "reason": why})
    report = law_recovery_report(table)
    lines = ["| condition | size | depth | contact | best unrelated | top 5 |", "| --- | --- | --- | --- | --- | --- |"]
    for c, r in report["conditions"].items():
        g = r["group_ranks"]
        lines.append(f"| {c} | {g.get('size')} | {g.get('depth')} | {g.get('contact')} | {r['best_unrelated_rank']} "
                     f"| {', '.join(r['ranking'][:5])} |")
    failures = [f"{c}: {f}" for c, r in report["conditions"].items() for f in r["failures"]]
    return dg.AssetCheckResult(
        passed=bool(report["passed"]),
        severity=dg.AssetCheckSeverity.WARN,
        description="law drivers recovered" if report["passed"] else "; ".join(failures),
        metadata={"applicable": True, "ranks": dg.MetadataValue.md("\n".join(lines)),
                  "failures": dg.MetadataValue.json(failures)},
    )
