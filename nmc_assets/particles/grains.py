"""Inner grain architecture: a radial generalized balanced power diagram (GBPD) inside the shell
(DESIGN 4 "Grain model", method notes 1.3 and 6).

Grain i has a seed ``s_i`` (um, relative to the particle centre, axes (z, y, x)), a symmetric positive
definite metric ``M_i`` with ``det M_i = 1`` and a weight ``w_i`` (um^2). A point x belongs to the grain
minimising ``d_i(x) = (x - s_i)^T M_i (x - s_i) - w_i``. Radial architecture:
``M_i = e_i^(-4/3) u_i u_i^T + e_i^(2/3) (I - u_i u_i^T)`` with ``u_i`` the (perturbed) radial
direction of the seed and ``e_i > 1`` the elongation (length ratio along u to across u), so cells are
stretched along the radius.

The hard tessellation (cell distances, labels) is :mod:`.tessellation`, the soft one :mod:`.soft_tessellation`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "GrainParams",
    "Grains",
    "sample_grains",
    "radial_metrics",
]


@dataclass(frozen=True)
class GrainParams:
    """Global parameters of the radial GBPD (each one number; about 7 in all).

    number_density_per_um3: mean grain (seed) intensity, grains per um^3 of the ball the seeds fill.
    hard_core_fraction: minimum seed distance as a fraction of the mean spacing
        ``number_density_per_um3 ** (-1/3)``, dimensionless, in [0, 0.9) (0 = Poisson seeds).
    elongation_log_mean, elongation_log_sd: ln(e_i) ~ Normal(log_mean, log_sd); e_i = ratio of the cell's
        length along its axis to its width (dimensionless; e = 1 is an isotropic cell).
    alignment_spread_deg: angular spread (degrees, sd of the tilt angle of a 3D Gaussian perturbation)
        of each cell's elongation axis around the radial direction of its seed; 0 = perfectly radial.
    weight_spread: sd of the weights w_i in units of (mean spacing)^2, dimensionless (0 = no power shift).
    core_density_ratio: optional radial intensity profile; seed intensity at the particle centre relative
        to the surface, linear in the normalised radius rho: lambda(rho) ~ 1 + (ratio - 1) (1 - rho).
        1.0 = uniform. > 1 puts more (smaller) grains in the core.
    """

    number_density_per_um3: float = 1.0
    hard_core_fraction: float = 0.5
    elongation_log_mean: float = 0.8
    elongation_log_sd: float = 0.25
    alignment_spread_deg: float = 15.0
    weight_spread: float = 0.1
    core_density_ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.number_density_per_um3 <= 0:
            raise ValueError(f"GrainParams.number_density_per_um3 must be > 0, got {self.number_density_per_um3}")
        if not 0 <= self.hard_core_fraction < 0.9:
            raise ValueError(f"GrainParams.hard_core_fraction must be in [0, 0.9), got {self.hard_core_fraction}")
        if self.elongation_log_sd < 0 or self.alignment_spread_deg < 0 or self.weight_spread < 0:
            raise ValueError(f"GrainParams spreads must be >= 0: {self}")
        if self.core_density_ratio <= 0:
            raise ValueError(f"GrainParams.core_density_ratio must be > 0, got {self.core_density_ratio}")

    @property
    def mean_spacing_um(self) -> float:
        return float(self.number_density_per_um3 ** (-1.0 / 3.0))


@dataclass(frozen=True)
class Grains:
    """Marks of one particle's grains. seeds (n, 3) um relative to the centre (z, y, x); metrics (n, 3, 3)
    SPD with det 1; weights (n,) um^2; axes (n, 3) unit elongation axes; elongations (n,) >= 1."""

    seeds: np.ndarray
    metrics: np.ndarray
    weights: np.ndarray
    axes: np.ndarray
    elongations: np.ndarray

    def __len__(self) -> int:
        return int(self.seeds.shape[0])


def _hard_core_points(rng: np.random.Generator, n_target: int, radius_um: float, min_dist: float,
                      core_density_ratio: float, max_rounds: int = 60) -> np.ndarray:
    """Sequential inhibition in a ball, vectorised in batches: candidates (thinned by the radial profile)
    are accepted when farther than ``min_dist`` from every accepted point and from earlier candidates
    of the same batch."""
    from scipy.spatial import cKDTree

    accepted = np.zeros((0, 3))
    lam_max = max(1.0, core_density_ratio)
    for _ in range(max_rounds):
        need = n_target - len(accepted)
        if need <= 0:
            break
        m = int(need * 2 * lam_max) + 16
        # uniform in the ball: direction x radius^(1/3)
        v = rng.standard_normal((m, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        rho = rng.random(m) ** (1.0 / 3.0)
        u = rng.random(m)
        lam = 1.0 + (core_density_ratio - 1.0) * (1.0 - rho)
        keep = u * lam_max < lam
        cand = (v * (rho * radius_um)[:, None])[keep]
        if min_dist > 0 and len(cand):
            if len(accepted):
                d, _ = cKDTree(accepted).query(cand, k=1)
                cand = cand[d >= min_dist]
            if len(cand) > 1:
                pairs = cKDTree(cand).query_pairs(min_dist, output_type="ndarray")
                if len(pairs):
                    # greedy in candidate order: drop the later point of each conflicting pair, in order
                    bad = np.zeros(len(cand), bool)
                    for i, j in pairs[np.argsort(pairs[:, 0] * len(cand) + pairs[:, 1])]:
                        if not bad[i]:
                            bad[j] = True
                    cand = cand[~bad]
        accepted = np.concatenate([accepted, cand[:need]])
    return accepted


def radial_metrics(axes: np.ndarray, elongations: np.ndarray) -> np.ndarray:
    """``M = e^(-4/3) u u^T + e^(2/3) (I - u u^T)`` per grain: det 1, cell length ratio e along u."""
    u = np.asarray(axes, dtype=np.float64)
    e = np.asarray(elongations, dtype=np.float64)[:, None, None]
    uu = u[:, :, None] * u[:, None, :]
    return e ** (-4.0 / 3.0) * uu + e ** (2.0 / 3.0) * (np.eye(3)[None] - uu)


def sample_grains(rng: np.random.Generator, params: GrainParams, radius_um: float) -> Grains:
    """Seeds and marks of the grains of one particle whose shell fits in a ball of ``radius_um`` (um).

    Count ~ Poisson(density x ball volume); seeds from sequential inhibition with hard-core distance
    ``hard_core_fraction * mean spacing`` (thinned by the radial profile); axes = radial direction tilted
    by a Gaussian angle of sd ``alignment_spread_deg``; elongation log-normal; weights normal.
    """
    if radius_um <= 0:
        raise ValueError(f"radius_um must be > 0, got {radius_um}")
    volume = 4.0 / 3.0 * np.pi * radius_um ** 3
    n_target = max(1, int(rng.poisson(params.number_density_per_um3 * volume)))
    spacing = params.mean_spacing_um
    seeds = _hard_core_points(rng, n_target, radius_um, params.hard_core_fraction * spacing,
                              params.core_density_ratio)
    n = len(seeds)
    radial = seeds / np.maximum(np.linalg.norm(seeds, axis=1, keepdims=True), 1e-12)
    near_centre = np.linalg.norm(seeds, axis=1) < 1e-9
    if near_centre.any():
        radial[near_centre] = [1.0, 0.0, 0.0]
    # tilt: add an isotropic tangential Gaussian perturbation of sd tan(spread)
    tilt = rng.standard_normal((n, 3)) * np.tan(np.deg2rad(params.alignment_spread_deg))
    tilt -= np.sum(tilt * radial, axis=1, keepdims=True) * radial
    axes = radial + tilt
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    elong = np.exp(params.elongation_log_mean + params.elongation_log_sd * rng.standard_normal(n))
    elong = np.maximum(elong, 1.0)
    weights = params.weight_spread * spacing ** 2 * rng.standard_normal(n)
    return Grains(seeds=seeds, metrics=radial_metrics(axes, elong), weights=weights, axes=axes,
                  elongations=elong)
