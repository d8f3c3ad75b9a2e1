"""Soft (differentiable) tessellation of the radial GBPD: softmax assignments of points to cells at a
temperature ``tau`` (um^2) over the cell distances of :func:`.tessellation.cell_distances`, and the
boundary maps of soft assignments on a 2D pixel grid (axes (row, col)). As ``tau -> 0`` the assignments
approach the one-hot of :func:`.tessellation.hard_labels`. torch is imported inside the functions.
"""

from __future__ import annotations

from nmc_assets.particles.grains import Grains
from nmc_assets.particles.tessellation import cell_distances

__all__ = ["soft_assignment", "top_k_assignment", "soft_boundary_map", "sparse_boundary_map"]


def soft_assignment(points, grains_or_tensors, temperature: float):
    """Softmax over grains of ``-d / temperature`` (torch (P, n)); ``temperature`` in um^2.

    ``grains_or_tensors``: a :class:`Grains` or a tuple ``(seeds, metrics, weights)`` of torch tensors
    (for gradients). As temperature -> 0 the rows approach the one-hot of the hard labels.
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


def top_k_assignment(d, temperature, k: int, straight_through: bool = True):
    """Softmax of ``-d / temperature`` over the ``k`` nearest cells of each point: ``(prob, ids)``, both (P, k),
    column 0 the hard owner. ``d`` (P, n) cell distances (um^2), ``temperature`` in um^2.

    The few nearest cells carry all the probability mass. With ``straight_through`` the forward value is
    the one-hot of the hard owner and the gradient that of the softmax.
    """
    import torch

    neg, ids = torch.topk(-d, min(k, d.shape[1]), dim=1)
    prob = torch.softmax((neg - neg[:, :1].detach()) / temperature, dim=1)
    if straight_through:
        hard = torch.zeros_like(prob)
        hard[:, 0] = 1.0
        prob = hard + prob - prob.detach()
    return prob, ids


def soft_boundary_map(prob, mask):
    """Boundary map of soft assignments: ``prob`` (K, H, W) grain probabilities (0 outside the particle),
    ``mask`` (H, W) bool/float. Returns (H, W): mean over in-particle 4-neighbours of 1 - <p(x), p(x')>
    (for one-hot assignments the map of :func:`nmc_assets.synthesis.sections.label_boundary_map`)."""
    import torch.nn.functional as F

    m = mask.to(prob.dtype)
    pp = F.pad(prob, (1, 1, 1, 1))
    mp = F.pad(m, (1, 1, 1, 1))
    H, W = m.shape
    diff = prob.new_zeros((H, W))
    count = prob.new_zeros((H, W))
    for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        nb = pp[:, 1 + dr : 1 + dr + H, 1 + dc : 1 + dc + W]
        nm = mp[1 + dr : 1 + dr + H, 1 + dc : 1 + dc + W]
        valid = m * nm
        same = (prob * nb).sum(0)
        diff = diff + valid * (1 - same)
        count = count + valid
    return diff / count.clamp(min=1)


def sparse_boundary_map(prob, ids, mask):
    """:func:`soft_boundary_map` for top-k assignments: ``prob`` (H, W, k) probabilities of the cells ``ids``
    (H, W, k) (-1 = none). <p(x), p(x')> sums the products of matching cell ids."""
    import torch.nn.functional as F

    m = mask.to(prob.dtype)
    H, W, _ = prob.shape
    pp = F.pad(prob.permute(2, 0, 1), (1, 1, 1, 1)).permute(1, 2, 0)
    ip = F.pad(ids.permute(2, 0, 1), (1, 1, 1, 1), value=-1).permute(1, 2, 0)
    mp = F.pad(m, (1, 1, 1, 1))
    diff = prob.new_zeros((H, W))
    count = prob.new_zeros((H, W))
    for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        nb_p = pp[1 + dr : 1 + dr + H, 1 + dc : 1 + dc + W]
        nb_i = ip[1 + dr : 1 + dr + H, 1 + dc : 1 + dc + W]
        nm = mp[1 + dr : 1 + dr + H, 1 + dc : 1 + dc + W]
        match = (ids[:, :, :, None] == nb_i[:, :, None, :]) & (ids[:, :, :, None] >= 0)
        same = (match.to(prob.dtype) * prob[:, :, :, None] * nb_p[:, :, None, :]).sum((2, 3))
        valid = m * nm
        diff = diff + valid * (1 - same)
        count = count + valid
    return diff / count.clamp(min=1)
