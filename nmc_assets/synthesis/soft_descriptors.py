"""Differentiable per-grain section descriptors and a quantile (1-Wasserstein) statistics-matching loss.

The same moment formulas as :func:`nmc_assets.synthesis.sections.section_grain_table` (regionprops'
second-moment ellipse), evaluated on (soft) pixel-to-grain assignments, so that with one-hot
assignments they reproduce the hard descriptors:

- area (um^2) = pixel mass of the grain * pixel^2;
- aspect ratio = sqrt(lambda_max / lambda_min) of the grain's pixel covariance;
- radial angle (deg, 0 = radial, 90 = tangential) between the major axis and the direction from the
  section's mask centroid to the grain centroid.

Grains whose (forward, hard) area is below :data:`sections.MIN_SHAPE_AREA_PX` pixels, or whose minor
variance is ~0, or whose centroid lies within 1 pixel of the centre, are left out of the shape
descriptors (as in the hard table). The forward values are exact; the gradients of ill-conditioned
cases (the angle of near-isotropic grains, the aspect ratio of grains about a pixel thin) are damped,
since their heavy tails otherwise dominate the batch gradient. torch is imported lazily.
"""

from __future__ import annotations

import numpy as np

from nmc_assets.synthesis.sections import MIN_SHAPE_AREA_PX, Section

#: Descriptors matched by :func:`statistics_loss` (grains per section is a count: no gradient).
MATCHED = ("area_um2", "aspect_ratio", "radial_angle_deg")


def grain_moment_descriptors(prob, ids, rows, cols, n_cells: int, pixel_size_um: float) -> dict:
    """Per-grain descriptors from assignments ``prob`` (P, k) of cells ``ids`` (P, k) (-1 = none) at the
    in-particle pixels (``rows``, ``cols``: (P,) pixel indices). Returns torch tensors over the valid
    grains: ``area_um2`` (every grain with mass), ``aspect_ratio`` and ``radial_angle_deg`` (shape-valid grains)."""
    import torch

    dt = prob.dtype
    r = rows.to(dt)
    c = cols.to(dt)
    centre_r, centre_c = r.mean(), c.mean()
    k = prob.shape[1]
    cell = ids.reshape(-1)
    w = prob.reshape(-1)
    keep = cell >= 0
    cell, w = cell[keep], w[keep]
    rr = r[:, None].expand(-1, k).reshape(-1)[keep]
    cc = c[:, None].expand(-1, k).reshape(-1)[keep]

    def acc(v):
        return torch.zeros(n_cells, dtype=dt, device=prob.device).index_add(0, cell, v)

    m = acc(w)
    has = m.detach() > 0.5
    m_safe = torch.where(has, m, torch.ones_like(m))
    mr, mc = acc(w * rr) / m_safe, acc(w * cc) / m_safe
    vrr = acc(w * rr * rr) / m_safe - mr * mr
    vcc = acc(w * cc * cc) / m_safe - mc * mc
    vrc = acc(w * rr * cc) / m_safe - mr * mc
    half_diff = 0.5 * (vrr - vcc)
    root = torch.sqrt(half_diff * half_diff + vrc * vrc + 1e-12)
    lam_max = 0.5 * (vrr + vcc) + root
    lam_min = 0.5 * (vrr + vcc) - root
    dr, dc = mr - centre_r, mc - centre_c
    rnorm = torch.sqrt(dr * dr + dc * dc + 1e-12)
    # 2 (phi - psi) = atan2(root sin 2(phi - psi), root cos 2(phi - psi)); phi: major-axis angle
    # (tan 2phi = vrc / half_diff), psi: radial direction (atan2: bounded gradient at 0 and 90 deg)
    cos2psi, sin2psi = (dr * dr - dc * dc) / (rnorm * rnorm), 2 * dr * dc / (rnorm * rnorm)
    s2 = vrc * cos2psi - half_diff * sin2psi
    c2 = half_diff * cos2psi + vrc * sin2psi
    angle = 0.5 * torch.rad2deg(torch.atan2(torch.abs(s2), c2))
    # the angle of a near-isotropic grain is ill-defined (gradient ~ 1 / root): same forward value,
    # gradient damped by the grain's anisotropy
    trace = vrr + vcc
    damp = (root * root / (root * root + (0.1 * trace) ** 2 + 1e-12)).detach()
    angle = angle.detach() + damp * (angle - angle.detach())
    shape_ok = has & (m.detach() >= MIN_SHAPE_AREA_PX) & (lam_min.detach() > 1e-6)
    aspect = torch.sqrt(lam_max[shape_ok] / lam_min[shape_ok])
    # thin grains (minor variance ~ a pixel^2 or less): gradient ~ 1 / lam_min, damped (forward unchanged)
    lm = lam_min[shape_ok].detach()
    aspect = aspect.detach() + (lm / (lm + 0.5)) * (aspect - aspect.detach())
    angle_ok = shape_ok & (rnorm.detach() >= 1.0)
    return {"area_um2": m[has] * pixel_size_um**2, "aspect_ratio": aspect, "radial_angle_deg": angle[angle_ok]}


def soft_section_descriptors(section) -> dict:
    """:func:`grain_moment_descriptors` of a :class:`nmc_assets.particles.sections.SoftSection` (torch,
    differentiable through its assignment; empty tensors when the section has fewer than 2 cells)."""
    import torch

    if section.n_cells < 2 or section.prob.shape[0] == 0:
        return {k: torch.zeros(0, dtype=section.image.dtype, device=section.image.device) for k in MATCHED}
    return grain_moment_descriptors(section.prob, section.ids, section.rows, section.cols, section.n_cells, section.pixel_size_um)


def section_moment_descriptors(section: Section) -> dict[str, np.ndarray]:
    """:func:`grain_moment_descriptors` of a hard label section (numpy arrays)."""
    import torch

    labels = section.labels
    rc = np.argwhere(labels > 0)
    if len(rc) == 0:
        return {k: np.zeros(0) for k in MATCHED}
    _, inv = np.unique(labels[rc[:, 0], rc[:, 1]], return_inverse=True)
    ids = torch.as_tensor(inv.reshape(-1, 1), dtype=torch.int64)
    prob = torch.ones((len(rc), 1), dtype=torch.float64)
    out = grain_moment_descriptors(prob, ids, torch.as_tensor(rc[:, 0]), torch.as_tensor(rc[:, 1]), int(inv.max()) + 1, section.pixel_size_um)
    return {k: v.numpy() for k, v in out.items()}


def pooled_moment_descriptors(sections: list[Section]) -> dict[str, np.ndarray]:
    """Per-grain descriptors pooled over ``sections``."""
    per = [section_moment_descriptors(s) for s in sections]
    return {k: np.concatenate([p[k] for p in per]) if per else np.zeros(0) for k in MATCHED}


def quantile_w1(generated, observed_quantiles: np.ndarray):
    """1-Wasserstein distance between a torch sample and a distribution given by its quantiles at the
    levels (i + 0.5) / n, n = len(observed_quantiles) (differentiable in the sample)."""
    import torch

    n = len(observed_quantiles)
    levels = torch.as_tensor((np.arange(n) + 0.5) / n, dtype=generated.dtype, device=generated.device)
    q = torch.quantile(generated, levels)
    return (q - torch.as_tensor(observed_quantiles, dtype=generated.dtype, device=generated.device)).abs().mean()


class StatisticsTarget:
    """Observed quantiles and scales (standard deviations) of the matched descriptors."""

    def __init__(self, sections: list[Section], n_quantiles: int = 64, descriptors=MATCHED):
        unknown = set(descriptors) - set(MATCHED)
        if unknown:
            raise ValueError(f"statistics matching: unknown descriptors {sorted(unknown)} (known: {MATCHED})")
        obs = pooled_moment_descriptors(sections)
        levels = (np.arange(n_quantiles) + 0.5) / n_quantiles
        self.quantiles = {k: np.quantile(obs[k], levels) for k in descriptors if len(obs[k]) > 1}
        self.scales = {k: max(float(np.std(obs[k])), 1e-9) for k in self.quantiles}

    def loss(self, generated: dict, pool: dict | None = None):
        """Sum over matched descriptors of W1(generated, observed) / observed sd (dimensionless).

        ``pool``: detached descriptor samples of earlier batches, joined to ``generated`` before the
        quantiles are taken (the gradient flows through the current batch only). The W1 of a small
        batch carries its own sampling spread, so minimising its expectation favours parameters that
        give narrower distributions than the observed one; a larger pooled sample shrinks that bias."""
        import torch

        total = None
        for k, q in self.quantiles.items():
            g = generated[k]
            if pool and k in pool and len(pool[k]):
                g = torch.cat([g, pool[k].to(g.dtype)])
            if g.numel() < 2:
                continue
            term = quantile_w1(g, q) / self.scales[k]
            total = term if total is None else total + term
        return total
