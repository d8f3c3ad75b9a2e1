"""Stereological WGAN-GP calibration of the radial grain model's global parameters.

The generator is the parametric model itself (:mod:`nmc_assets.particles.sections`): each step draws
fresh particles with fixed noise, cuts them like the observed sections
(:class:`.section_geometry.SectionGeometry`: fitted particle radius law, random normal, offset
U(0, 0.5 R), the observed pixel size), and renders soft
sections (softmax over negative cell distances at an annealed temperature, straight-through) as critic
images: boundary map and particle mask, plus by default the radial orientation field (cos 2psi, sin 2psi)
inside the mask, so that local filters can relate boundary orientations to the radial direction. A small
convolutional critic is trained against the observed sections with the Wasserstein loss and a gradient
penalty (lambda 10, 5 critic steps per parameter step, Adam(0, 0.9)).

The parameters (in log space) follow, with Adam, one of two gradients (``critic_params``,
``stats_params``): by default density and elongation follow the critic (-E[critic(fake)]), and the
alignment spread follows a statistics-matching term (as in the ASSB sibling work, method note 2.3): the
quantile 1-Wasserstein distance between the soft sections' radial angles (:mod:`.soft_descriptors`,
differentiable through the same straight-through assignment) and the observed ones, divided by their
standard deviation (``stats_descriptors`` can add grain area and aspect ratio). The split comes from the
robustness benchmark: with the critic alone, density and elongation were recovered within 7 % in 6 of 6
runs but the alignment spread collapsed by 40-66 %; with the statistics term on every parameter the
alignment was right but density and elongation drifted 18-24 % along their section-equivalent ridge.
The calibrated value is the average of the parameters over the last half of the steps (by default:
with 1200 steps the parameters settle within ~500 and then fluctuate by ~10 % around their level).

Checkpoints (``checkpoint.pt``) hold parameters, critic weights, both optimizer states, the RNG states,
the training history and the configuration; training resumes from one. Nothing wall-clock enters a
checkpoint (the history has no timings), so the same data, configuration and seed give the same bytes,
and the checkpoint hash that a published dataset records changes only when the calibration does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np

from nmc_assets.particles.grains import GrainParams
from nmc_assets.particles.sections import soft_section
from nmc_assets.settings import setting
from nmc_assets.synthesis.parameter_space import (
    DEFAULT_LEARNED,
    LEARNABLE,
    from_unconstrained,
    to_unconstrained,
    torch_params,
    unconstrained_bounds,
)
from nmc_assets.synthesis.convergence import stop_if_diverged
from nmc_assets.synthesis.section_geometry import SectionGeometry
from nmc_assets.synthesis.sections import Section, critic_images
from nmc_assets.synthesis.soft_descriptors import StatisticsTarget, soft_section_descriptors


@dataclass
class GanConfig:
    """Settings of one calibration (the ``grain_model`` asset's run config is built from these fields).

    The initial guess is generic (not the reference); the parameters not learned keep their initial values.
    """

    # schedule and optimisers
    steps: int = setting(1200, "parameter updates; a run with more steps resumes the checkpoint of a shorter one")
    batch_size: int = setting(8, "sections per batch")
    n_critic: int = setting(5, "critic updates per parameter update")
    lr_params: float = setting(0.03, "Adam(0.5, 0.9) learning rate of the log-parameters")
    lr_critic: float = setting(1e-3, "Adam(0, 0.9) learning rate of the critic")
    # the critic and its images
    gp_lambda: float = setting(10.0, "weight of the critic's gradient penalty (WGAN-GP)")
    critic_warmup: int = setting(50, "critic updates against the initial guess before the first parameter update")
    critic_channels: int = setting(32, "filters of the critic's first convolution (the last has 4x as many)")
    radial_channels: bool = setting(True, "give the critic the radial orientation field (cos 2psi, sin 2psi) as two more input channels")
    canvas_px: int = setting(64, "side of the critic's images in pixels (sections centred and cropped or padded, at their pixel size)")
    # soft tessellation and the statistics term
    tau_start: float = setting(1.0, "initial temperature of the soft tessellation (units of spacing x pixel size)")
    tau_end: float = setting(0.25, "final temperature (geometric annealing)")
    straight_through: bool = setting(True, "critic images show the hard tessellation; gradients come from the soft one")
    stats_weight: float = setting(1.0, "weight of the statistics term (quantile W1 of the soft sections' radial angles vs the "
                                  "observed ones), which moves the alignment spread; the critic moves density and elongation. "
                                  "0: the critic moves every learned parameter")
    # the initial guess (deliberately wrong) and what is learned
    initial_density_per_um3: float = setting(0.5, "initial grain density (1/um^3)")
    initial_mean_elongation: float = setting(3.45, "initial mean grain elongation (> 1)")
    initial_elongation_log_sd: float = setting(0.35, "elongation log-sd: a prior, kept fixed unless learn_elongation_log_sd. "
                                               "Sections confound it with the alignment spread, so the calibrated alignment is "
                                               "conditional on it; the moment refinement that follows (interval_sections) estimates it")
    initial_alignment_spread_deg: float = setting(22.5, "initial alignment spread of the grains' long axes to the radial direction (deg)")
    weight_spread: float = setting(0.1, "grain weight sd in spacing^2 (not calibrated)")
    hard_core_fraction: float = setting(0.5, "hard-core distance of the grain seeds / spacing (not calibrated)")
    learn_elongation_log_sd: bool = setting(False, "also learn the elongation log-sd (it follows the critic)")
    interval_sections: int = setting(256, "model sections per evaluation of the moment refinement and 90 % intervals that follow the "
                                     "GAN (synthesis.intervals; it estimates the log-sd too); 0 = GAN estimate only, no intervals")
    # runtime
    seed: int = setting(0, "seed of all draws")
    torch_threads: int = setting(1, "torch CPU threads while training (0: torch's default)")

    @classmethod
    def starting_at(cls, params: GrainParams, **kw) -> "GanConfig":
        """A configuration whose initial guess is ``params`` (mean elongation, log-sd, density, alignment,
        weight spread, hard core)."""
        return cls(initial_density_per_um3=params.density_per_um3, initial_mean_elongation=params.mean_elongation,
                   initial_elongation_log_sd=params.elongation_log_sd, initial_alignment_spread_deg=params.alignment_spread_deg,
                   weight_spread=params.weight_spread, hard_core_fraction=params.hard_core_fraction, **kw)

    def initial_params(self) -> GrainParams:
        return GrainParams.with_mean_elongation(
            self.initial_mean_elongation, self.initial_elongation_log_sd, density_per_um3=self.initial_density_per_um3,
            alignment_spread_deg=self.initial_alignment_spread_deg, weight_spread=self.weight_spread, hard_core_fraction=self.hard_core_fraction,
        )

    @property
    def learned(self) -> tuple[str, ...]:
        """The calibrated parameters (in this order)."""
        return DEFAULT_LEARNED + (("elongation_log_sd",) if self.learn_elongation_log_sd else ())

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "GanConfig":
        """A configuration from :meth:`to_dict`, or from a checkpoint written before the settings were
        flattened (an ``initial`` parameter dict and a ``learned`` list); unknown keys are ignored."""
        d = dict(d)
        initial = d.pop("initial", None)
        learned = d.pop("learned", None)
        if isinstance(initial, dict):
            start = GrainParams.from_dict(initial)
            d.update(initial_density_per_um3=start.density_per_um3, initial_mean_elongation=start.mean_elongation,
                     initial_elongation_log_sd=start.elongation_log_sd, weight_spread=start.weight_spread,
                     initial_alignment_spread_deg=start.alignment_spread_deg, hard_core_fraction=start.hard_core_fraction)
        if learned is not None:
            d.setdefault("learn_elongation_log_sd", "elongation_log_sd" in learned)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def make_critic(channels: int = 32, in_channels: int = 2):
    """Small conv critic: 4 stride-2 convs (in -> c -> 2c -> 2c -> 4c), LeakyReLU, no normalisation, linear head."""
    import torch.nn as nn

    c = channels
    return nn.Sequential(
        nn.Conv2d(in_channels, c, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(c, 2 * c, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * c, 2 * c, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * c, 4 * c, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16 * c, 1),
    )


def gradient_penalty(critic, real, fake):
    import torch

    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = critic(mix)
    (grad,) = torch.autograd.grad(out.sum(), mix, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def radial_field(size: int, device=None, dtype=None):
    """(2, S, S) orientation field of the direction from the canvas centre: cos 2psi and sin 2psi.

    Appended (times the particle mask) to the critic's input when ``radial_channels`` is on, so that its
    local filters can compare a boundary's orientation with the radial direction (the alignment signal).
    It depends only on the pixel's position relative to the centre, so it is also the right field for
    every rot90/flip of a section about its centre (the augmentation).
    """
    import torch

    c = torch.arange(size, dtype=dtype or torch.float32, device=device) - (size - 1) / 2
    rr, cc = torch.meshgrid(c, c, indexing="ij")
    n2 = (rr * rr + cc * cc).clamp(min=1e-6)
    return torch.stack([(rr * rr - cc * cc) / n2, 2 * rr * cc / n2])


def with_radial_channels(batch, field):
    """(B, 2, S, S) boundary map + mask -> (B, 4, S, S) with mask * cos 2psi and mask * sin 2psi."""
    import torch

    return torch.cat([batch, batch[:, 1:2] * field[None].to(batch.dtype)], dim=1)


def _augment(batch, rng: np.random.Generator):
    """Random rot90 / flip per image (sections of radially symmetric particles have no preferred in-plane direction)."""
    import torch

    out = []
    for img in batch:
        img = torch.rot90(img, int(rng.integers(4)), dims=(1, 2))
        if rng.random() < 0.5:
            img = torch.flip(img, dims=(2,))
        out.append(img)
    return torch.stack(out)


class StereologicalGan:
    """Training state: unconstrained parameters, critic, optimizers, history; ``train`` runs to ``config.steps``.

    The method's structure is fixed by the class attributes below (a subclass may change them).
    """

    #: Section descriptors matched by the statistics term (:data:`.soft_descriptors.MATCHED` lists all).
    stats_descriptors: tuple[str, ...] = ("radial_angle_deg",)
    #: Learned parameters that follow the critic's gradient, and those that follow the statistics term
    #: (names not learned are ignored; with ``stats_weight`` 0 every learned parameter follows the critic).
    critic_params: tuple[str, ...] = ("density_per_um3", "elongation_log_mean", "elongation_log_sd", "weight_spread")
    stats_params: tuple[str, ...] = ("alignment_spread_deg",)
    #: The calibrated parameters: the average of the parameters over this last fraction of the steps.
    average_last_fraction: float = 0.5

    def __init__(self, sections: list[Section], config: GanConfig, device=None):
        import torch

        if not sections:
            raise ValueError("stereological GAN: no observed sections to calibrate against")
        self.config = config
        self.device = torch.device(device or "cpu")
        self.base = config.initial_params().validate()
        self.names = tuple(config.learned)
        self.geometry = SectionGeometry.fit(sections)
        self.real = torch.as_tensor(critic_images(sections, config.canvas_px), device=self.device)
        torch.manual_seed(config.seed)
        self.z = torch.nn.Parameter(torch.tensor(to_unconstrained(self.base, self.names), dtype=torch.float32, device=self.device))
        self.z_bounds = tuple(torch.tensor(b, dtype=torch.float32, device=self.device) for b in unconstrained_bounds(self.names))
        self.field = radial_field(config.canvas_px, device=self.device) if config.radial_channels else None
        self.critic = make_critic(config.critic_channels, 4 if config.radial_channels else 2).to(self.device)
        self.opt_params = torch.optim.Adam([self.z], lr=config.lr_params, betas=(0.5, 0.9))
        self.opt_critic = torch.optim.Adam(self.critic.parameters(), lr=config.lr_critic, betas=(0.0, 0.9))
        self.rng = np.random.default_rng(config.seed)
        self.stats_target = StatisticsTarget(sections, descriptors=self.stats_descriptors) if config.stats_weight > 0 else None
        self.critic_mask, self.stats_mask = self._gradient_masks()
        self.history: list[dict] = []
        self.step = 0

    # ---------------------------------------------------------------------------------------------
    def current_params(self) -> GrainParams:
        return from_unconstrained(self.z.detach().cpu().numpy(), self.base, self.names)

    def bounds_hit(self) -> list[str]:
        """Learned parameters now at a physical bound."""
        z = self.z.detach()
        at = (z <= self.z_bounds[0] + 1e-4) | (z >= self.z_bounds[1] - 1e-4)
        return [n for n, a in zip(self.names, at.tolist()) if a]

    def calibrated_params(self) -> GrainParams:
        """Average of the unconstrained parameters over the last ``average_last_fraction`` of the history."""
        if not self.history:
            return self.current_params()
        n = max(1, int(round(len(self.history) * self.average_last_fraction)))
        zs = np.array([h["z"] for h in self.history[-n:]])
        return from_unconstrained(zs.mean(0), self.base, self.names)

    def temperature(self, step: int) -> float:
        c = self.config
        frac = step / max(c.steps - 1, 1)
        return float(c.tau_start * (c.tau_end / c.tau_start) ** min(frac, 1.0))

    def learning_rate(self, step: int) -> float:
        """Parameter learning rate at ``step`` (constant; a function of the step only, so resuming is exact)."""
        return float(self.config.lr_params)

    def fake_batch(self, tau_rel: float, with_descriptors: bool = False):
        """Critic images (B, C, S, S) of fresh soft sections; with ``with_descriptors`` also their pooled
        per-grain descriptors (torch, differentiable; see :mod:`.soft_descriptors`)."""
        import torch

        tp = torch_params(self.z, self.base, self.names)
        out = [
            soft_section(tp, self.base, self.geometry.sample_plane(self.rng, self.config.canvas_px), self.rng, tau_rel, device=self.device, straight_through=self.config.straight_through)
            for _ in range(self.config.batch_size)
        ]
        imgs = self._critic_input(torch.stack([o.image for o in out]).float())
        if not with_descriptors:
            return imgs
        per = [soft_section_descriptors(o) for o in out]
        return imgs, {k: torch.cat([d[k] for d in per]) for k in per[0]}

    def real_batch(self):
        idx = self.rng.integers(len(self.real), size=self.config.batch_size)
        return self._critic_input(_augment(self.real[idx], self.rng))

    def _critic_input(self, batch):
        return with_radial_channels(batch, self.field) if self.field is not None else batch

    def train(self, log: Callable[[str], None] | None = None, checkpoint_path: str | Path | None = None, checkpoint_every: int = 0, stop_at: int | None = None) -> list[dict]:
        """Run until ``config.steps`` steps are done (continues a resumed state); ``stop_at`` interrupts
        earlier (the schedule still follows ``config.steps``, so a resumed run continues it exactly)."""
        c = self.config
        last = min(c.steps, stop_at) if stop_at is not None else c.steps
        import torch

        if c.torch_threads:
            torch.set_num_threads(c.torch_threads)
        if self.step == 0 and not self.history and c.critic_warmup:
            # the critic first learns to tell the initial guess from the observations
            self._critic_steps(self.fake_batch(self.temperature(0)).detach(), c.critic_warmup)
        while self.step < last:
            tau = self.temperature(self.step)
            if self.stats_target is not None:
                fake, desc = self.fake_batch(tau, with_descriptors=True)
            else:
                fake, desc = self.fake_batch(tau), None
            w_est, gp = self._critic_steps(fake.detach(), c.n_critic)
            self.opt_params.zero_grad()
            for group in self.opt_params.param_groups:  # resume-safe: a function of the step only
                group["lr"] = self.learning_rate(self.step)
            loss_g = -self.critic(fake).mean()
            loss_stats = self._statistics_loss(desc) if desc is not None else None
            self.z.grad = self._combined_gradient(loss_g, loss_stats)
            self.opt_params.step()
            with torch.no_grad():  # physical bounds (parameter_space.PHYSICAL_BOUNDS)
                self.z.copy_(torch.maximum(torch.minimum(self.z, self.z_bounds[1]), self.z_bounds[0]))
            self.step += 1
            p = self.current_params()
            rec = {
                "step": self.step,
                "tau_rel": tau,
                "wasserstein_estimate": float(w_est.detach()),
                "gradient_penalty": float(gp.detach()),
                "loss_generator": float(loss_g.detach()),
                "loss_statistics": float(loss_stats.detach()) if loss_stats is not None else None,
                "z": [float(v) for v in self.z.detach().cpu()],
                "density_per_um3": p.density_per_um3,
                "mean_elongation": p.mean_elongation,
                "elongation_log_sd": p.elongation_log_sd,
                "alignment_spread_deg": p.alignment_spread_deg,
                "weight_spread": p.weight_spread,
            }
            self.history.append(rec)
            if self.step % max(1, c.steps // 20) == 0:
                stop_if_diverged(self.history, self.base.mean_elongation, c.steps, self.bounds_hit())
            if log and (self.step % max(1, c.steps // 20) == 0 or self.step == c.steps):
                log(
                    f"grain_model step {self.step}/{c.steps} W~{rec['wasserstein_estimate']:.3f} gp={rec['gradient_penalty']:.3f} "
                    f"tau={tau:.2f} stats={rec['loss_statistics'] if rec['loss_statistics'] is not None else float('nan'):.3f} density={p.density_per_um3:.3f}/um3 mean_elong={p.mean_elongation:.3f} "
                    f"log_sd={p.elongation_log_sd:.3f} align={p.alignment_spread_deg:.2f}deg"
                )
            if checkpoint_path and checkpoint_every and self.step % checkpoint_every == 0 and self.step < c.steps:
                self.save(checkpoint_path)
        return self.history

    def _statistics_loss(self, desc):
        """The statistics term of this batch's soft descriptors (differentiable)."""
        return self.stats_target.loss(desc)

    def _gradient_masks(self):
        """0/1 masks over ``self.names``: which learned parameters follow the critic, which the statistics term."""
        import torch

        for key in ("critic_params", "stats_params"):
            unknown = set(getattr(self, key)) - set(LEARNABLE)
            if unknown:
                raise ValueError(f"{key}: unknown parameters {sorted(unknown)} (learnable: {list(LEARNABLE)})")
        if self.stats_target is None:  # no statistics term: the critic moves everything
            critic, stats = [1.0] * len(self.names), [0.0] * len(self.names)
        else:
            critic = [1.0 if n in self.critic_params else 0.0 for n in self.names]
            stats = [1.0 if n in self.stats_params else 0.0 for n in self.names]
        orphans = [n for n, a, b in zip(self.names, critic, stats) if a == 0 and b == 0]
        if orphans:
            raise ValueError(f"learned parameters {orphans} follow neither the critic nor the statistics term (critic_params / stats_params)")
        return (torch.tensor(critic, dtype=self.z.dtype, device=self.device), torch.tensor(stats, dtype=self.z.dtype, device=self.device))

    def _combined_gradient(self, loss_g, loss_stats):
        """critic_mask * d loss_g / dz + stats_weight * stats_mask * d loss_stats / dz."""
        import torch

        (grad,) = torch.autograd.grad(loss_g, self.z, retain_graph=loss_stats is not None)
        grad = grad * self.critic_mask
        if loss_stats is not None:
            (g_stats,) = torch.autograd.grad(loss_stats, self.z)
            grad = grad + self.config.stats_weight * self.stats_mask * g_stats
        return grad

    def _critic_steps(self, fake_d, n: int):
        """``n`` WGAN-GP critic updates against fresh real batches; returns the last (W estimate, GP)."""
        c = self.config
        for _ in range(n):
            real = self.real_batch()
            self.opt_critic.zero_grad()
            w_est = self.critic(real).mean() - self.critic(fake_d).mean()
            gp = gradient_penalty(self.critic, real, fake_d)
            (-w_est + c.gp_lambda * gp).backward()
            self.opt_critic.step()
        return w_est, gp

    # ---------------------------------------------------------------------------------------------
    def state(self) -> dict:
        import torch

        return {
            "format": "nmc_assets.grain_model/1",
            "config": self.config.to_dict(),
            "learned": list(self.names),
            "z": self.z.detach().cpu(),
            "step": self.step,
            "critic": {k: v.cpu() for k, v in self.critic.state_dict().items()},
            "opt_params": self.opt_params.state_dict(),
            "opt_critic": self.opt_critic.state_dict(),
            "history": self.history,
            "rng_state": self.rng.bit_generator.state,
            "torch_rng_state": torch.get_rng_state(),
            "current_params": self.current_params().to_dict(),
            "calibrated_params": self.calibrated_params().to_dict(),
        }

    def save(self, path: str | Path) -> Path:
        import torch

        from nmc_assets.storage import atomic_path

        with atomic_path(path) as tmp:
            torch.save(self.state(), tmp)
        return Path(path)

    def load_state(self, state: dict) -> None:
        import torch

        if state.get("format") != "nmc_assets.grain_model/1":
            raise ValueError(f"not a grain_model checkpoint (format {state.get('format')!r})")
        if list(state["learned"]) != list(self.names):
            raise ValueError(f"checkpoint learns {state['learned']}, config learns {list(self.names)}")
        with torch.no_grad():
            self.z.copy_(state["z"].to(self.device))
        self.critic.load_state_dict(state["critic"])
        self.opt_params.load_state_dict(state["opt_params"])
        self.opt_critic.load_state_dict(state["opt_critic"])
        self.history = list(state["history"])
        self.step = int(state["step"])
        self.rng.bit_generator.state = state["rng_state"]
        torch.set_rng_state(state["torch_rng_state"])

    @classmethod
    def resume(cls, path: str | Path, sections: list[Section], config: GanConfig | None = None, device=None) -> "StereologicalGan":
        """Rebuild from a checkpoint; ``config`` (e.g. with more steps) overrides the stored one."""
        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{path}: cannot read grain_model checkpoint ({exc})") from exc
        cfg = config or GanConfig.from_dict(state["config"])
        gan = cls(sections, cfg, device=device)
        gan.load_state(state)
        return gan
