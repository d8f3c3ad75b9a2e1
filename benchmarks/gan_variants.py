"""Calibration variants that only the synthesis benchmarks run (the ``grain_model`` asset never does).

``VariantConfig`` adds to the core :class:`~nmc_assets.synthesis.gan.GanConfig` the options of the recorded
variants (``benchmarks/README.md``, "Grain model and generation"); ``VariantGan`` applies them to the core
:class:`~nmc_assets.synthesis.gan.StereologicalGan`:

- ``learned_params``: calibrate these parameters instead of the core's (e.g. only three, or the log-sd with
  its own routing);
- ``stats_descriptors``, ``critic_params``, ``stats_params``: which descriptors the statistics term matches
  and which parameters follow which gradient;
- ``average_last_fraction``: the calibrated parameters average this last fraction of the steps;
- ``lr_final_fraction``: the parameter learning rate decays exponentially over the second half of the
  steps to this fraction;
- ``stats_pool_batches``: the statistics term pools the (detached) descriptors of this many earlier
  batches with the current one (kept in the checkpoint, so a resumed run continues exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

from nmc_assets.synthesis.gan import GanConfig, StereologicalGan


@dataclass
class VariantConfig(GanConfig):
    learned_params: tuple[str, ...] | None = None
    stats_descriptors: tuple[str, ...] = StereologicalGan.stats_descriptors
    critic_params: tuple[str, ...] = StereologicalGan.critic_params
    stats_params: tuple[str, ...] = StereologicalGan.stats_params
    average_last_fraction: float = StereologicalGan.average_last_fraction
    lr_final_fraction: float = 1.0
    stats_pool_batches: int = 0

    @property
    def learned(self) -> tuple[str, ...]:
        return tuple(self.learned_params) if self.learned_params else super().learned


class VariantGan(StereologicalGan):
    """The core calibration with a :class:`VariantConfig`'s options."""

    def __init__(self, sections, config: VariantConfig, device=None):
        self.stats_descriptors = tuple(config.stats_descriptors)
        self.critic_params, self.stats_params = tuple(config.critic_params), tuple(config.stats_params)
        self.average_last_fraction = config.average_last_fraction
        self._pool: list[dict] = []
        super().__init__(sections, config, device)

    def learning_rate(self, step: int) -> float:
        """Constant for the first half of the steps, then exponential decay to ``lr_final_fraction`` x."""
        c = self.config
        frac = max(0.0, (step / max(c.steps - 1, 1) - 0.5) / 0.5)
        return float(c.lr_params * c.lr_final_fraction ** min(frac, 1.0))

    def _statistics_loss(self, desc):
        import torch

        n = self.config.stats_pool_batches
        if n <= 0:
            return super()._statistics_loss(desc)
        pool = {k: torch.cat([b[k] for b in self._pool]) for k in desc} if self._pool else None
        self._pool.append({k: v.detach() for k, v in desc.items()})
        del self._pool[:-n]
        return self.stats_target.loss(desc, pool)

    def state(self) -> dict:
        return {**super().state(), "stats_pool": [{k: v.cpu() for k, v in b.items()} for b in self._pool]}

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self._pool = [{k: v.to(self.device) for k, v in b.items()} for b in state.get("stats_pool", [])]
