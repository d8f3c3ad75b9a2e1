"""Inner grain architecture: a radial generalized balanced power diagram (GBPD) inside the shell
(DESIGN 4 "Grain model", method notes 1.3 and 6).

Grain i has a seed ``s_i`` (um, relative to the particle centre, axes (z, y, x)), a symmetric positive
definite metric ``M_i`` with ``det M_i = 1`` and a weight ``w_i`` (um^2). A point x belongs to the grain
minimising ``d_i(x) = (x - s_i)^T M_i (x - s_i) - w_i``. Radial architecture:
``M_i = e_i^(-4/3) u_i u_i^T + e_i^(2/3) (I - u_i u_i^T)`` with ``u_i`` the (perturbed) radial
direction of the seed and ``e_i > 1`` the elongation (length ratio along u to across u), so cells are
stretched along the radius.

The distance computation is torch (any device, differentiable in seeds, metrics and weights): the
quadratic form is written as one matmul of per-point monomials ``[z^2, y^2, x^2, 2zy, 2zx, 2yx, z, y, x, 1]``
with a per-grain ``(10, n)`` coefficient matrix. :func:`hard_labels` is the argmin (chunked),
:func:`soft_assignment` the softmax of ``-d / T`` used for calibration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nmc_assets.particles.shell import Shell, shell_normalised_distance

__all__ = [
    "GrainParams",
    "Grains",
    "sample_grains",
    "radial_metrics",
    "cell_distances",
    "hard_labels",
    "soft_assignment",
    "render_grain_labels",
    "grain_principal_axes",
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


def _as_tensor(a, device=None, dtype=None):
    import torch

    if isinstance(a, torch.Tensor):
        return a.to(device=device if device is not None else a.device, dtype=dtype or a.dtype)
    return torch.as_tensor(np.asarray(a), device=device, dtype=dtype or torch.float32)


def _grain_coefficients(seeds, metrics, weights):
    """(10, n) matrix C with d(x) = phi(x) @ C, phi = [z^2, y^2, x^2, 2zy, 2zx, 2yx, z, y, x, 1]."""
    import torch

    m = metrics
    ms = torch.einsum("nij,nj->ni", m, seeds)  # M s
    const = torch.einsum("ni,ni->n", seeds, ms) - weights  # s^T M s - w
    quad = torch.stack([m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], m[:, 0, 1], m[:, 0, 2], m[:, 1, 2]], dim=0)
    return torch.cat([quad, -2.0 * ms.T, const[None]], dim=0)


def _monomials(points):
    import torch

    z, y, x = points[:, 0], points[:, 1], points[:, 2]
    one = torch.ones_like(z)
    return torch.stack([z * z, y * y, x * x, 2 * z * y, 2 * z * x, 2 * y * x, z, y, x, one], dim=1)


def cell_distances(points, seeds, metrics, weights):
    """``d[p, i] = (x_p - s_i)^T M_i (x_p - s_i) - w_i`` as a torch tensor (P, n), um^2.

    Inputs are torch tensors (or arrays, converted to float32 on the points' device); the result is
    differentiable in all of them. Points and seeds in um, same frame, axes (z, y, x).
    """
    import torch

    pts = _as_tensor(points)
    dev, dt = pts.device, pts.dtype
    s = _as_tensor(seeds, dev, dt)
    m = _as_tensor(metrics, dev, dt)
    w = _as_tensor(weights, dev, dt)
    if pts.ndim != 2 or pts.shape[1] != 3 or s.ndim != 2 or s.shape[1] != 3:
        raise ValueError(f"points and seeds must be (P, 3) and (n, 3), got {tuple(pts.shape)}, {tuple(s.shape)}")
    if m.shape != (s.shape[0], 3, 3) or w.shape != (s.shape[0],):
        raise ValueError(f"metrics (n,3,3) and weights (n,) expected for n={s.shape[0]}, got "
                         f"{tuple(m.shape)}, {tuple(w.shape)}")
    return torch.matmul(_monomials(pts), _grain_coefficients(s, m, w).to(dt))


def _device(device):
    import torch

    from nmc_assets.device import resolve_torch_device

    if isinstance(device, torch.device):
        return device
    return resolve_torch_device(str(device))


def hard_labels(points, grains: Grains, chunk: int = 1 << 16, device="cpu") -> np.ndarray:
    """Index (0..n-1, int64 numpy) of the grain minimising d_i for each point ((P, 3) um, centre frame).

    Points are processed in chunks of ``chunk`` so the (chunk, n) distance block bounds memory. On the
    CPU torch runs single-threaded here: the (chunk, 10) x (10, n) products are too thin to gain from
    threads, and on a shared machine extra threads only contend (measured 1.2-30x slower with 2).
    """
    import torch

    dev = _device(device)
    pts_all = np.asarray(points, dtype=np.float32)
    out = np.empty(len(pts_all), dtype=np.int64)
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)
    try:
        _hard_labels_chunks(pts_all, grains, chunk, dev, out)
    finally:
        torch.set_num_threads(threads)
    return out


def _hard_labels_chunks(pts_all, grains, chunk, dev, out) -> None:
    import torch

    with torch.no_grad():
        coeff = _grain_coefficients(torch.as_tensor(grains.seeds, device=dev, dtype=torch.float64),
                                    torch.as_tensor(grains.metrics, device=dev, dtype=torch.float64),
                                    torch.as_tensor(grains.weights, device=dev, dtype=torch.float64)).float()
        for start in range(0, len(pts_all), chunk):
            p = torch.as_tensor(pts_all[start:start + chunk], device=dev)
            out[start:start + chunk] = torch.argmin(_monomials(p) @ coeff, dim=1).cpu().numpy()


def soft_assignment(points, grains_or_tensors, temperature: float):
    """Softmax over grains of ``-d / temperature`` (torch (P, n)); ``temperature`` in um^2.

    ``grains_or_tensors``: a :class:`Grains` or a tuple ``(seeds, metrics, weights)`` of torch tensors
    (for gradients). As temperature -> 0 the rows approach the one-hot of :func:`hard_labels`.
    """
    import torch

    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if isinstance(grains_or_tensors, Grains):
        seeds, metrics, weights = grains_or_tensors.seeds, grains_or_tensors.metrics, grains_or_tensors.weights
    else:
        seeds, metrics, weights = grains_or_tensors
    d = cell_distances(points, seeds, metrics, weights)
    return torch.softmax(-d / temperature, dim=1)


def render_grain_labels(shell: Shell, grains: Grains, voxel_size_um: float, device="cpu",
                        shape: tuple[int, int, int] | None = None,
                        center_vox: tuple[float, float, float] | None = None,
                        chunk: int = 1 << 16) -> np.ndarray:
    """uint16 (z, y, x) grain label volume of one particle: 0 outside the shell, 1..n inside.

    Labels are the grain index + 1, renumbered consecutively over the grains that own at least one
    voxel (in grain-index order). By default the grid is the shell's bounding cube centred on the particle.
    """
    if shape is None:
        half = int(np.ceil(shell.max_radius_um() / voxel_size_um)) + 1
        shape = (2 * half + 1,) * 3
    if center_vox is None:
        center_vox = tuple((n - 1) / 2.0 for n in shape)
    inside = shell_normalised_distance(shell, shape, voxel_size_um, center_vox) <= 1.0
    idx = np.nonzero(inside)
    pts = (np.stack(idx, axis=1).astype(np.float32) - np.asarray(center_vox, np.float32)) * np.float32(voxel_size_um)
    lab = hard_labels(pts, grains, chunk=chunk, device=device)
    present = np.zeros(len(grains) + 1, dtype=np.int64)
    present[lab + 1] = 1
    relabel = np.cumsum(present)  # grain index + 1 -> consecutive label
    if relabel[-1] > np.iinfo(np.uint16).max:
        raise ValueError(f"{relabel[-1]} grains exceed the uint16 label range")
    out = np.zeros(shape, dtype=np.uint16)
    out[idx] = relabel[lab + 1].astype(np.uint16)
    return out


def grain_principal_axes(labels: np.ndarray, voxel_size_um: float = 1.0,
                         center_vox: tuple[float, float, float] | None = None,
                         min_voxels: int = 20) -> dict[str, np.ndarray]:
    """Per grain of a label volume: major principal axis, its |cos| with the radial direction of the grain
    centroid, and the ratio of largest to smallest principal sd. Grains under ``min_voxels`` are skipped.

    Returns arrays ``label, n_voxels, radial_cos, aspect, centroid_um`` (centroid relative to the centre).
    """
    from scipy import ndimage as ndi

    if center_vox is None:
        center_vox = tuple((n - 1) / 2.0 for n in labels.shape)
    n = int(labels.max())
    rows = {"label": [], "n_voxels": [], "radial_cos": [], "aspect": [], "centroid_um": []}
    slices = ndi.find_objects(labels)
    for k, sl in enumerate(slices, start=1):
        if sl is None:
            continue
        m = labels[sl] == k
        cnt = int(m.sum())
        if cnt < min_voxels:
            continue
        p = np.stack(np.nonzero(m), axis=1).astype(np.float64) + np.array([s.start for s in sl])
        p = (p - np.asarray(center_vox)) * voxel_size_um
        c = p.mean(0)
        cov = np.cov((p - c).T)
        ev, evec = np.linalg.eigh(cov)
        major = evec[:, -1]
        radial = c / max(np.linalg.norm(c), 1e-12)
        rows["label"].append(k)
        rows["n_voxels"].append(cnt)
        rows["radial_cos"].append(abs(float(major @ radial)))
        rows["aspect"].append(float(np.sqrt(max(ev[-1], 1e-12) / max(ev[0], 1e-12))))
        rows["centroid_um"].append(c)
    del n
    return {k: np.asarray(v) for k, v in rows.items()}
