"""Plots of the synthesis steps (matplotlib, Agg backend)."""

from __future__ import annotations

from nmc_assets.previews import figure_png, pyplot

#: Training-history panels of a grain-model calibration (keys of ``StereologicalGan.history``).
HISTORY_PANELS = ("wasserstein_estimate", "density_per_um3", "mean_elongation", "alignment_spread_deg")


def history_png(history: list[dict], dpi: int = 70) -> bytes:
    """The critic's Wasserstein estimate and the parameters against the step, one panel each."""
    plt = pyplot()
    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, len(HISTORY_PANELS), figsize=(12, 2.6))
    for ax, key in zip(axes, HISTORY_PANELS):
        ax.plot(steps, [h[key] for h in history])
        ax.set_title(key, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return figure_png(fig, dpi)
