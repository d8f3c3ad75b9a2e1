"""Planar sections of model particles: hard (grain labels) and soft (differentiable boundary maps).

A particle of radius R (um, centre at the origin, axes (z, y, x)) with grains from the calibrated law
(:func:`.grains.sample_grain_noise` with :data:`.grains.CALIBRATION_MARGIN_CELLS`) is cut by a plane
(:class:`SectionPlane`: unit normal, in-plane axes e1 (columns) and e2 (rows), offset from the centre);
its pixels are assigned to grains by the hard tessellation (:func:`hard_section`, labels 1..K) or by the
soft one (:func:`soft_section`, top-k softmax at a temperature, straight-through by default). Only seeds
within a few stretched spacings of the plane take part (:func:`near_plane`). torch is imported lazily.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from nmc_assets.particles.grains import (
    CALIBRATION_MARGIN_CELLS,
    GrainNoise,
    GrainParams,
    grain_geometry,
    radial_metrics,
    sample_grain_noise,
)
from nmc_assets.particles.soft_tessellation import sparse_boundary_map, top_k_assignment
from nmc_assets.particles.tessellation import cell_distances

if TYPE_CHECKING:
    import torch

__all__ = ["MAX_OFFSET_FRACTION", "Section", "SectionPlane", "SoftSection", "random_plane", "near_plane",
           "hard_section", "hard_sections", "soft_section"]

#: Offsets of section planes from the particle centre: uniform in [0, MAX_OFFSET_FRACTION * R].
MAX_OFFSET_FRACTION = 0.5


@dataclass
class Section:
    """One 2D grain-label section; ``labels`` (row, col) uint16, 0 = outside the particle; pixel size in um."""

    labels: np.ndarray
    pixel_size_um: float
    name: str = ""

    @property
    def mask(self) -> np.ndarray:
        return self.labels > 0

    def equivalent_radius_um(self) -> float:
        """Radius (um) of the disc with the particle section's area."""
        return float(np.sqrt(self.mask.sum() / np.pi) * self.pixel_size_um)


@dataclass
class SectionPlane:
    """A cutting plane through a particle of radius ``radius_um`` centred at the origin (lengths in um)."""

    normal: np.ndarray
    e1: np.ndarray
    e2: np.ndarray
    offset_um: float
    radius_um: float
    pixel_size_um: float
    size_px: int

    def points(self) -> np.ndarray:
        """Pixel-centre coordinates (size*size, 3) in um, row-major (row along e2, col along e1)."""
        c = (np.arange(self.size_px) - (self.size_px - 1) / 2) * self.pixel_size_um
        rr, cc = np.meshgrid(c, c, indexing="ij")
        return self.offset_um * self.normal[None] + cc.reshape(-1, 1) * self.e1[None] + rr.reshape(-1, 1) * self.e2[None]

    def mask(self) -> np.ndarray:
        """(size, size) bool: pixels inside the particle's ball."""
        return (np.linalg.norm(self.points(), axis=1) <= self.radius_um).reshape(self.size_px, self.size_px)


def random_plane(rng: np.random.Generator, radius_um: float, pixel_size_um: float, size_px: int | None = None,
                 offset_fraction: float | None = None) -> SectionPlane:
    """Random orientation (uniform on the sphere), in-plane rotation and offset ~ U(0, 0.5 R).

    ``size_px`` defaults to a canvas that holds the whole section disc.
    """
    n = rng.normal(size=3)
    n /= np.linalg.norm(n)
    a = rng.normal(size=3)
    e1 = a - a.dot(n) * n
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    f = rng.uniform(0, MAX_OFFSET_FRACTION) if offset_fraction is None else offset_fraction
    offset = f * radius_um
    if size_px is None:
        r_sec = math.sqrt(max(radius_um**2 - offset**2, 0.0))
        size_px = 2 * int(math.ceil(r_sec / pixel_size_um)) + 3
    return SectionPlane(n, e1, e2, offset, radius_um, pixel_size_um, int(size_px))


def near_plane(noise: GrainNoise, plane: SectionPlane, max_elongation: float) -> np.ndarray:
    """Indices of seeds that can own pixels of the plane (within 2.5 spacings x max_elongation^(2/3) of it)."""
    spacing = noise.spacing_um
    cutoff = 2.5 * spacing * max(max_elongation, 1.0) ** (2 / 3)
    dist = np.abs(noise.points_um @ plane.normal - plane.offset_um)
    rad = np.linalg.norm(noise.points_um, axis=1)
    return np.flatnonzero((dist <= cutoff) & (rad <= plane.radius_um + cutoff))


def _plane_grains(rng: np.random.Generator, params: GrainParams, plane: SectionPlane, log_mean: float, log_sd: float) -> GrainNoise:
    """Noise of a fresh particle of the plane's radius, restricted to the seeds near the plane."""
    noise = sample_grain_noise(rng, params, plane.radius_um, CALIBRATION_MARGIN_CELLS)
    return noise.select(near_plane(noise, plane, math.exp(log_mean + 3 * log_sd)))


def _cell_distances(points, noise: GrainNoise, tp: dict, device=None):
    """(P, n) cell distances (um^2) of the points (torch (P, 3) um) to the cells of ``noise`` at ``tp``."""
    seeds, axes, elong, weights = grain_geometry(noise, tp, device=device)
    return cell_distances(points, seeds, radial_metrics(axes, elong), weights)


def hard_section(params: GrainParams, plane: SectionPlane, rng: np.random.Generator) -> Section:
    """One hard-tessellation section (float64 distances) of a freshly sampled particle (labels 1..K, consecutive)."""
    import torch

    sel = _plane_grains(rng, params, plane, params.elongation_log_mean, params.elongation_log_sd)
    mask = plane.mask()
    labels = np.zeros(mask.shape, np.uint16)
    if len(sel) == 0:
        return Section(labels, plane.pixel_size_um)
    with torch.no_grad():
        pts = torch.as_tensor(plane.points()[mask.ravel()], dtype=torch.float64)
        owner = _cell_distances(pts, sel, params.tensors()).argmin(1).numpy()
    _, consecutive = np.unique(owner, return_inverse=True)
    labels[mask] = (consecutive + 1).astype(np.uint16)
    return Section(labels, plane.pixel_size_um)


def hard_sections(params: GrainParams, radii_um, pixel_sizes_um, seed: int) -> list[Section]:
    """One hard section per (particle radius, pixel size) pair, random planes; deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (r, p) in enumerate(zip(radii_um, pixel_sizes_um)):
        plane = random_plane(rng, float(r), float(p))
        sec = hard_section(params, plane, rng)
        sec.name = f"section_{i:04d}"
        out.append(sec)
    return out


@dataclass
class SoftSection:
    """A soft section: ``image`` (2, S, S) torch, boundary map and particle mask; the top-k assignment
    ``prob``/``ids`` (P, k) of the P in-particle pixels at (``rows``, ``cols``) to ``n_cells`` cells
    (P = 0 when the section has fewer than 2 cells); ``pixel_size_um``."""

    image: torch.Tensor
    prob: torch.Tensor
    ids: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    n_cells: int
    pixel_size_um: float


def soft_section(tp: dict, base: GrainParams, plane: SectionPlane, rng: np.random.Generator, tau_rel: float,
                 device=None, straight_through: bool = True, top_k: int = 4) -> SoftSection:
    """One soft section of a freshly sampled particle, differentiable in the torch parameters ``tp``
    (:data:`.grains.TENSOR_PARAMETERS`; the noise is drawn at their current values, the hard-core fraction
    and radial profile from ``base``).

    With ``straight_through`` (default) the forward value is the hard tessellation's boundary map and the
    gradient is that of the soft one (softmax at ``tau_rel``): compared with observed hard sections, like
    is compared with like (a purely soft map has wider, heavier boundaries than any hard label image),
    while the temperature sets how far from a boundary gradients reach. Only the ``top_k`` nearest cells of
    each pixel enter the softmax. ``tau_rel`` is the temperature in units of spacing * pixel size (um^2;
    distance differences grow by about 2 spacings * pixel per pixel away from a boundary, so tau_rel ~ 0.2
    is nearly hard).
    """
    import torch

    dens = float(tp["density_per_um3"].detach())
    mu, sd = float(tp["elongation_log_mean"].detach()), float(tp["elongation_log_sd"].detach())
    sel = _plane_grains(rng, replace(base, density_per_um3=dens), plane, mu, sd)
    dev = device or tp["density_per_um3"].device
    dt = tp["density_per_um3"].dtype
    mask_np = plane.mask()
    mask = torch.as_tensor(mask_np, device=dev)
    S = plane.size_px
    img = torch.zeros((2, S, S), dtype=dt, device=dev)
    img[1] = mask.to(dt)
    if len(sel) < 2 or not mask_np.any():
        none = torch.zeros((0, 1), dtype=torch.int64, device=dev)
        return SoftSection(img, none.to(dt), none, none[:, 0], none[:, 0], len(sel), plane.pixel_size_um)
    pts = torch.as_tensor(plane.points()[mask_np.ravel()], dtype=dt, device=dev)
    d = _cell_distances(pts, sel, tp, device=dev)
    p, idx = top_k_assignment(d, tau_rel * dens ** (-1 / 3) * plane.pixel_size_um, top_k, straight_through)
    k = p.shape[1]
    flat = torch.as_tensor(np.flatnonzero(mask_np.ravel()), device=dev)
    prob = torch.zeros((S * S, k), dtype=p.dtype, device=dev).index_copy(0, flat, p).reshape(S, S, k)
    ids = torch.full((S * S, k), -1, dtype=idx.dtype, device=dev).index_copy(0, flat, idx).reshape(S, S, k)
    img = img.clone()
    img[0] = sparse_boundary_map(prob, ids, mask)
    rows, cols = torch.div(flat, S, rounding_mode="floor"), flat % S
    return SoftSection(img, p, idx, rows, cols, len(sel), plane.pixel_size_um)
