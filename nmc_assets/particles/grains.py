"""Inner grain architecture: a radial generalized balanced power diagram (GBPD) inside the shell
(docs/design.md §4, "Grain model"). The one grain model of the virtual beamline, the
calibration sections and the synthetic particles.

Grain i has a seed ``s_i`` (um, relative to the particle centre, axes (z, y, x)), a symmetric positive
definite metric ``M_i`` with ``det M_i = 1`` and a weight ``w_i`` (um^2). A point x belongs to the grain
minimising ``d_i(x) = (x - s_i)^T M_i (x - s_i) - w_i`` (:mod:`.tessellation`). Radial architecture:
``M_i = e_i^(-4/3) u_i u_i^T + e_i^(2/3) (I - u_i u_i^T)`` with ``u_i`` the (perturbed) radial
direction of the seed and ``e_i >= 1`` the elongation (length ratio along u to across u), so cells are
stretched along the radius.

Sampling is split into fixed noise (:func:`sample_grain_noise`: seed positions from a hard-core process,
standard normals; numpy generator) and a differentiable map from noise and parameters to the marks
(:func:`grain_geometry`, torch, any device), so that sections are differentiable in the parameters
(reparameterisation). :func:`sample_grains` is the numpy-in, numpy-out path of the beamline.
numpy-only at import; torch and scipy are imported inside the functions that need them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = [
    "GrainParams",
    "Grains",
    "GrainNoise",
    "RENAMED_FIELDS",
    "TENSOR_PARAMETERS",
    "CALIBRATION_MARGIN_CELLS",
    "mean_clipped_elongation",
    "sample_grain_noise",
    "grain_geometry",
    "radial_metrics",
    "sample_grains",
]

#: Former parameter names still read by :meth:`GrainParams.from_dict` (old name -> field). The beamline's
#: scan sidecars keep writing the old name (their format predates the merge of the two parameter classes).
RENAMED_FIELDS = {"number_density_per_um3": "density_per_um3"}
#: Parameters that :func:`grain_geometry` takes as torch scalars (differentiable; the calibration learns
#: among these). The hard-core fraction and the radial profile shape the noise, not the geometry.
TENSOR_PARAMETERS = ("density_per_um3", "elongation_log_mean", "elongation_log_sd", "alignment_spread_deg",
                     "weight_spread")
#: Seed window margin (in mean spacings beyond the particle's ball) of the calibrated model's sections and
#: synthetic particles: surface grains are cut by the shell rather than grown to fill it, and a change of
#: density moves seeds across the surface smoothly (needed for the reparameterised gradient). The
#: beamline samples with no margin (seeds inside the ball).
CALIBRATION_MARGIN_CELLS = 1.5


def mean_clipped_elongation(mu: float, sigma: float) -> float:
    """E[max(1, e)] for ln e ~ N(mu, sigma^2) (dimensionless, closed form)."""
    from scipy.stats import norm

    if sigma <= 0:
        return float(max(1.0, math.exp(mu)))
    return float(norm.cdf(-mu / sigma) + math.exp(mu + 0.5 * sigma**2) * norm.cdf((mu + sigma**2) / sigma))


@dataclass(frozen=True)
class GrainParams:
    """Global parameters of the radial GBPD (each one number).

    density_per_um3: mean grain (seed) intensity, grains per um^3 of the window the seeds fill (formerly
        ``number_density_per_um3``, still read by :meth:`from_dict`).
    hard_core_fraction: minimum seed distance as a fraction of the mean spacing
        ``density_per_um3 ** (-1/3)``, dimensionless, in [0, 0.9) (0 = Poisson seeds).
    elongation_log_mean, elongation_log_sd: ln(e_i) ~ Normal(log_mean, log_sd), e_i clipped at 1; e_i = ratio
        of the cell's length along its axis to its width (dimensionless; e = 1 is an isotropic cell).
    alignment_spread_deg: angular spread (degrees, sd of the tilt angle of a 3D Gaussian perturbation)
        of each cell's elongation axis around the radial direction of its seed; 0 = perfectly radial.
    weight_spread: sd of the weights w_i in units of (mean spacing)^2, dimensionless (0 = no power shift).
    core_density_ratio: optional radial intensity profile; seed intensity at the particle centre relative
        to the surface, linear in the normalised radius rho: lambda(rho) ~ 1 + (ratio - 1) (1 - rho).
        1.0 = uniform. > 1 puts more (smaller) grains in the core.
    """

    density_per_um3: float = 1.0
    hard_core_fraction: float = 0.5
    elongation_log_mean: float = 0.8
    elongation_log_sd: float = 0.25
    alignment_spread_deg: float = 15.0
    weight_spread: float = 0.1
    core_density_ratio: float = 1.0

    def __post_init__(self) -> None:
        if not self.density_per_um3 > 0:
            raise ValueError(f"GrainParams.density_per_um3 must be > 0, got {self.density_per_um3}")
        if not 0 <= self.hard_core_fraction < 0.9:
            raise ValueError(f"GrainParams.hard_core_fraction must be in [0, 0.9), got {self.hard_core_fraction}")
        if self.elongation_log_sd < 0 or self.alignment_spread_deg < 0 or self.weight_spread < 0:
            raise ValueError(f"GrainParams spreads must be >= 0: {self}")
        if not self.core_density_ratio > 0:
            raise ValueError(f"GrainParams.core_density_ratio must be > 0, got {self.core_density_ratio}")

    def validate(self) -> "GrainParams":
        """``self`` if inside the ranges the calibration supports (alignment spread < 85 deg, hard-core
        fraction <= 0.6), else ``ValueError``."""
        if not self.alignment_spread_deg < 85:
            raise ValueError(f"alignment_spread_deg must be in [0, 85), got {self.alignment_spread_deg}")
        if not self.hard_core_fraction <= 0.6:
            raise ValueError(f"hard_core_fraction must be in [0, 0.6], got {self.hard_core_fraction}")
        return self

    @property
    def mean_spacing_um(self) -> float:
        """Mean seed spacing ``density ** (-1/3)`` (um)."""
        return float(self.density_per_um3 ** (-1.0 / 3.0))

    @property
    def mean_elongation(self) -> float:
        """E[max(1, e)] for ln e ~ N(elongation_log_mean, elongation_log_sd^2) (closed form)."""
        return mean_clipped_elongation(self.elongation_log_mean, self.elongation_log_sd)

    @classmethod
    def with_mean_elongation(cls, mean_elongation: float, elongation_log_sd: float, **kw) -> "GrainParams":
        """Parameters whose E[max(1, e)] equals ``mean_elongation`` (> 1); others from ``kw`` or defaults."""
        from scipy.optimize import brentq

        if not mean_elongation > 1:
            raise ValueError(f"mean_elongation must be > 1, got {mean_elongation}")
        mu = brentq(lambda m: mean_clipped_elongation(m, elongation_log_sd) - mean_elongation, -10, 10)
        return cls(elongation_log_mean=float(mu), elongation_log_sd=elongation_log_sd, **kw)

    def to_dict(self) -> dict:
        """Fields plus the derived ``mean_elongation``. ``core_density_ratio`` only when not 1 (uniform),
        so that stored parameter sets, and the calibration versions hashed from them, keep their bytes."""
        d = asdict(self)
        if d["core_density_ratio"] == 1.0:
            del d["core_density_ratio"]
        d["mean_elongation"] = self.mean_elongation
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GrainParams":
        """From a dict of :meth:`to_dict`, a scan sidecar's ``grain_params`` or a ``params.json``: reads the
        former names of :data:`RENAMED_FIELDS`, ignores derived and unknown keys."""
        names = {f.name for f in fields(cls)}
        vals = {RENAMED_FIELDS.get(k, k): float(v) for k, v in d.items() if RENAMED_FIELDS.get(k, k) in names}
        return cls(**vals)

    def tensors(self, dtype=None, device=None) -> dict:
        """The :data:`TENSOR_PARAMETERS` as 0-d torch tensors (float64 unless ``dtype``), for :func:`grain_geometry`."""
        import torch

        return {k: torch.tensor(getattr(self, k), dtype=dtype or torch.float64, device=device) for k in TENSOR_PARAMETERS}


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


@dataclass
class GrainNoise:
    """Fixed random draws for one particle's grains (numpy, n grains).

    points_um (n, 3): seed positions (um, centre at 0, axes (z, y, x)) drawn at ``density_per_um3``;
    radial (n, 3): unit radial directions of the seeds; tilt_normal (n, 3), eps_elongation (n,),
    z_weight (n,): standard normals of the axis tilt, the log-elongation and the weight.
    """

    points_um: np.ndarray
    radial: np.ndarray
    tilt_normal: np.ndarray
    eps_elongation: np.ndarray
    z_weight: np.ndarray
    density_per_um3: float

    def select(self, idx: np.ndarray) -> "GrainNoise":
        """The noise of the grains ``idx`` only."""
        return GrainNoise(self.points_um[idx], self.radial[idx], self.tilt_normal[idx], self.eps_elongation[idx],
                          self.z_weight[idx], self.density_per_um3)

    @property
    def spacing_um(self) -> float:
        """Mean seed spacing (um) at the density the points were drawn at."""
        return float(self.density_per_um3 ** (-1.0 / 3.0))

    def __len__(self) -> int:
        return len(self.points_um)


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


def sample_grain_noise(rng: np.random.Generator, params: GrainParams, radius_um: float,
                       margin_cells: float = 0.0) -> GrainNoise:
    """Noise for the grains of a particle whose shell fits in a ball of ``radius_um`` (um).

    Seeds fill a ball of radius ``radius_um + margin_cells * spacing``: count ~ Poisson(density x ball
    volume), positions from sequential inhibition with hard-core distance ``hard_core_fraction * spacing``
    thinned by the radial profile. Then per grain, in this order: tilt normals (3), log-elongation normal,
    weight normal.
    """
    if radius_um <= 0:
        raise ValueError(f"radius_um must be > 0, got {radius_um}")
    spacing = params.mean_spacing_um
    window = radius_um + margin_cells * spacing
    volume = 4.0 / 3.0 * np.pi * window ** 3
    n_target = max(1, int(rng.poisson(params.density_per_um3 * volume)))
    points = _hard_core_points(rng, n_target, window, params.hard_core_fraction * spacing, params.core_density_ratio)
    n = len(points)
    radial = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    near_centre = np.linalg.norm(points, axis=1) < 1e-9
    if near_centre.any():
        radial[near_centre] = [1.0, 0.0, 0.0]
    tilt = rng.standard_normal((n, 3))
    eps = rng.standard_normal(n)
    z = rng.standard_normal(n)
    return GrainNoise(points, radial, tilt, eps, z, float(params.density_per_um3))


def _row_dot(a, b):
    """Per-row dot product of (n, 3) tensors, summed in index order (as numpy's sum over a row)."""
    return (a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1]) + a[:, 2] * b[:, 2]


def grain_geometry(noise: GrainNoise, tp: dict, device=None):
    """Seeds (n, 3) um, unit axes (n, 3), elongations (n,) and weights (n,) um^2 as torch tensors.

    ``tp``: the :data:`TENSOR_PARAMETERS` as torch scalars (:meth:`GrainParams.tensors`), differentiable.
    Seeds are the noise's points rescaled from the density they were drawn at to ``tp``'s (exactly the
    points at that density); each axis is the radial direction plus a tangential Gaussian tilt of sd
    tan(alignment spread) per component; e = max(1, exp(mu + sigma eps)); w = weight_spread spacing^2 z.
    """
    import torch

    dens = tp["density_per_um3"]
    dt = dens.dtype
    dev = device or dens.device

    def t(a):
        return torch.as_tensor(a, dtype=dt, device=dev)

    seeds = t(noise.points_um) * (noise.density_per_um3 / dens) ** (1.0 / 3.0)
    spacing = dens ** (-1.0 / 3.0)
    radial = t(noise.radial)
    tilt = t(noise.tilt_normal) * torch.tan(torch.deg2rad(tp["alignment_spread_deg"]))
    tilt = tilt - _row_dot(tilt, radial)[:, None] * radial
    axes = radial + tilt
    axes = axes / torch.sqrt(_row_dot(axes, axes))[:, None]
    elong = torch.exp(tp["elongation_log_mean"] + tp["elongation_log_sd"] * t(noise.eps_elongation))
    elong = torch.clamp(elong, min=1.0)  # cells are never stretched across the radius
    weights = tp["weight_spread"] * spacing ** 2 * t(noise.z_weight)
    return seeds, axes, elong, weights


def radial_metrics(axes, elongations):
    """``M = e^(-4/3) u u^T + e^(2/3) (I - u u^T)`` per grain, (n, 3, 3): det 1, cell length ratio e along u.

    Torch tensors in, torch out (differentiable, on their device); numpy arrays in, float64 numpy out.
    """
    import torch

    as_numpy = not isinstance(axes, torch.Tensor)
    u = torch.as_tensor(np.asarray(axes, dtype=np.float64)) if as_numpy else axes
    e = torch.as_tensor(elongations, dtype=u.dtype, device=u.device)[:, None, None]
    uu = u[:, :, None] * u[:, None, :]
    m = e ** (-4.0 / 3.0) * uu + e ** (2.0 / 3.0) * (torch.eye(3, dtype=u.dtype, device=u.device)[None] - uu)
    return m.numpy() if as_numpy else m


def sample_grains(rng: np.random.Generator, params: GrainParams, radius_um: float, margin_cells: float = 0.0) -> Grains:
    """Seeds and marks (numpy, float64) of the grains of one particle whose shell fits in a ball of
    ``radius_um`` (um): :func:`sample_grain_noise` then :func:`grain_geometry` at ``params``.

    ``margin_cells`` 0 (the beamline): seeds inside the ball, grains grown to fill the shell;
    :data:`CALIBRATION_MARGIN_CELLS`: the calibrated model's law (its sections, synthetic particles).
    """
    import torch

    noise = sample_grain_noise(rng, params, radius_um, margin_cells)
    with torch.no_grad():
        seeds, axes, elong, weights = grain_geometry(noise, params.tensors(), device="cpu")
        metrics = radial_metrics(axes, elong)
    return Grains(seeds=seeds.numpy(), metrics=metrics.numpy(), weights=weights.numpy(), axes=axes.numpy(),
                  elongations=elong.numpy())
