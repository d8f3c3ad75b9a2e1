"""PNG plots of the damage drivers (matplotlib, Agg backend; no display needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nmc_assets.previews import figure_png, pyplot


def condition_order(conditions) -> list[str]:
    """Numeric cycle conditions in increasing order, then ``"all"`` (and anything else) last."""

    def key(c: str):
        try:
            return (0, float(c), c)
        except ValueError:
            return (1, 0.0, c)

    return sorted(set(conditions), key=key)


def drivers_bar_chart(table: pd.DataFrame, *, dpi: int = 110, title: str | None = None) -> bytes:
    """Grouped horizontal bars: mean |SHAP| per attribute (rows) and condition (bars), +-1 std over repeats.

    Attributes are ordered by their largest mean |SHAP| over the conditions (strongest on top), like the
    study's 10 vs 50 cycles figure. Returns PNG bytes.
    """
    plt = pyplot()
    if table.empty:
        raise ValueError("drivers table is empty: nothing to plot")
    conditions = condition_order(table["condition"].unique())
    order = table.groupby("attribute")["mean_abs_shap"].max().sort_values(ascending=True).index.tolist()
    mean = table.pivot(index="attribute", columns="condition", values="mean_abs_shap").reindex(index=order, columns=conditions)
    std = table.pivot(index="attribute", columns="condition", values="std_abs_shap").reindex(index=order, columns=conditions)
    n_attr, n_cond = len(order), len(conditions)
    height = 0.8 / n_cond
    fig, ax = plt.subplots(figsize=(7.0, 1.2 + 0.32 * n_attr * max(1, n_cond) ** 0.5))
    colors = plt.get_cmap("tab10")
    y = np.arange(n_attr)
    for k, cond in enumerate(conditions):
        offset = (k - (n_cond - 1) / 2) * height
        label = f"{cond} cycles" if cond != "all" else "all scans"
        ax.barh(y + offset, mean[cond].fillna(0).to_numpy(), height=height, xerr=std[cond].fillna(0).to_numpy(),
                color=colors(k % 10), label=label, error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "0.3"})
    ax.set_yticks(y, order)
    ax.set_xlabel("mean |SHAP| (damage, volume fraction)")
    scores = table.drop_duplicates("condition").set_index("condition")
    subtitle = ", ".join(
        f"{c}: R²oof {scores.loc[c, 'r2_oof_mean']:.2f}±{scores.loc[c, 'r2_oof_std']:.2f}" for c in conditions
    )
    ax.set_title((title or "Damage drivers by condition") + "\n" + subtitle, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return figure_png(fig, dpi)


def beeswarm_png(
    shap_values: np.ndarray,
    values: pd.DataFrame,
    expected_value: float,
    *,
    title: str,
    max_display: int = 12,
    dpi: int = 100,
) -> bytes:
    """SHAP beeswarm (``shap.plots.beeswarm``) of one condition; returns PNG bytes."""
    import shap  # lazy: 3-4 s import

    plt = pyplot()
    explanation = shap.Explanation(
        values=np.asarray(shap_values, dtype=float),
        base_values=np.full(len(values), float(expected_value)),
        data=values.to_numpy(dtype=float),
        feature_names=list(values.columns),
    )
    fig = plt.figure(figsize=(7.0, 0.4 * min(max_display, values.shape[1]) + 1.5))
    ax = fig.add_subplot(111)
    shap.plots.beeswarm(explanation, max_display=max_display, show=False, ax=ax, plot_size=None,
                        color_bar_label="attribute value")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("SHAP value (impact on damage, volume fraction)")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.tick_params(axis="x", labelsize=9)
    return figure_png(fig, dpi)

