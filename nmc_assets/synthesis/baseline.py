"""Non-adversarial calibration baseline: match section descriptors directly with Nelder-Mead.

Objective: sum over the four section descriptors of W1(observed, generated) / sd(observed), where the
generated sections are hard-tessellation sections of the current parameters, cut like the observed ones
(:class:`.section_geometry.SectionGeometry` fitted to them). Every evaluation uses the same seed (common
random numbers), so the objective is a deterministic function of the parameters. The optimisation runs
in the same unconstrained (log) coordinates and from the same initial guess as the GAN.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from nmc_assets.particles.grains import GrainParams
from nmc_assets.synthesis.parameter_space import DEFAULT_LEARNED, from_unconstrained, generic_start, to_unconstrained
from nmc_assets.synthesis.section_geometry import SectionGeometry, sections_like_observed
from nmc_assets.synthesis.sections import Section, descriptor_samples, descriptor_scales, normalised_distance


@dataclass
class BaselineConfig:
    max_evaluations: int = 60
    sections_per_evaluation: int = 32
    seed: int = 0
    initial_step: float = 0.3
    learned: tuple[str, ...] = DEFAULT_LEARNED
    initial: dict = field(default_factory=dict)


def calibrate_by_descriptors(sections: list[Section], config: BaselineConfig, log: Callable[[str], None] | None = None) -> dict:
    """Nelder-Mead on the normalised descriptor distance. Returns params, history, evaluations, seconds."""
    from scipy.optimize import minimize

    if not sections:
        raise ValueError("descriptor baseline: no observed sections")
    base = GrainParams.from_dict(config.initial) if config.initial else generic_start()
    names = tuple(config.learned)
    geometry = SectionGeometry.fit(sections)
    observed = descriptor_samples(sections)
    scale = descriptor_scales(observed)
    history: list[dict] = []
    t0 = time.perf_counter()

    def objective(z):
        p = from_unconstrained(z, base, names)
        gen = descriptor_samples(sections_like_observed(p, geometry, config.sections_per_evaluation, config.seed))
        val = normalised_distance(observed, gen, scale)
        history.append({"evaluation": len(history) + 1, "objective": val, "seconds": time.perf_counter() - t0, **p.to_dict()})
        if log and len(history) % 10 == 0:
            log(f"baseline eval {len(history)} objective={val:.4f} density={p.density_per_um3:.3f} mean_elong={p.mean_elongation:.3f} align={p.alignment_spread_deg:.2f}")
        return val

    z0 = to_unconstrained(base, names)
    simplex = np.vstack([z0] + [z0 + config.initial_step * np.eye(len(z0))[i] for i in range(len(z0))])
    res = minimize(objective, z0, method="Nelder-Mead", options={"maxfev": config.max_evaluations, "initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-4})
    best = from_unconstrained(res.x, base, names)
    return {"params": best, "history": history, "evaluations": len(history), "seconds": time.perf_counter() - t0, "objective": float(res.fun)}
