"""Packing of star-shaped particles into an electrode volume, and voxel labelling of the packing.

Packing is a collective rearrangement (force-biased, vectorised over contact pairs): particle sizes are
drawn from the shell size law, centres start uniformly at random in an extended box (the scan box grown
by ``pad_um`` on each side, so particles are cut by the scan borders as in a real scan), and overlapping
pairs are pushed apart until no two equivalent-radius balls overlap by more than ``overlap`` (fraction of
the sum of radii). Particles are added in rounds until the balls cover ``target_fraction`` of the scan
box (Monte-Carlo estimate). Pairs that end at the limit touch, so neighbours share contact faces.

Labelling: a voxel inside several shells goes to the particle with the smallest normalised radius
``|x - c| / r_i(direction)`` (a curved "power"-like split, flat contact faces between equal particles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nmc_assets.particles.shell import Shell, ShellParams, sample_shell, shell_normalised_distance

__all__ = ["Packing", "pack_particles", "ball_union_fraction", "label_packing", "contact_fractions"]


@dataclass
class Packing:
    """centres_um (n, 3) in scan coordinates (z, y, x; the scan box spans [0, extent]); shells (n,)."""

    centres_um: np.ndarray
    shells: list[Shell]
    extent_um: np.ndarray
    iterations: int
    max_overlap: float
    ball_fraction: float = float("nan")


def _relax(rng, x, radii, lo, hi, overlap, max_iterations):
    """Push overlapping equivalent-radius balls apart until no pair overlaps by more than ``overlap``."""
    from scipy.spatial import cKDTree

    limit = 1.0 - overlap
    rmax = radii.max()
    worst, it = 1.0, 0
    for it in range(1, max_iterations + 1):
        pairs = cKDTree(x).query_pairs(2 * rmax * limit, output_type="ndarray")
        if len(pairs) == 0:
            return x, it, 0.0
        i, j = pairs[:, 0], pairs[:, 1]
        v = x[j] - x[i]
        dist = np.linalg.norm(v, axis=1)
        want = limit * (radii[i] + radii[j])
        bad = dist < want
        if not bad.any():
            return x, it, float(np.max(1.0 - dist / (radii[i] + radii[j])))
        i, j, v, dist, want = i[bad], j[bad], v[bad], dist[bad], want[bad]
        worst = float(np.max(1.0 - dist / (radii[i] + radii[j])))
        if worst <= overlap + 0.01:
            break
        u = v / np.maximum(dist, 1e-9)[:, None]
        same = dist < 1e-9
        if same.any():
            u[same] = rng.standard_normal((int(same.sum()), 3))
            u[same] /= np.linalg.norm(u[same], axis=1, keepdims=True)
        push = (want - dist) * 1.05  # a little over-relaxation
        wi = radii[j] ** 3 / (radii[i] ** 3 + radii[j] ** 3)  # the smaller particle moves more
        disp = np.zeros_like(x)
        np.add.at(disp, i, -(push * wi)[:, None] * u)
        np.add.at(disp, j, (push * (1 - wi))[:, None] * u)
        x = np.clip(x + disp, lo, hi)
    return x, it, worst


def ball_union_fraction(centres: np.ndarray, radii: np.ndarray, extent_um, n_points: int = 20000,
                        seed: int = 0) -> float:
    """Monte-Carlo volume fraction of the box [0, extent] covered by the balls (deterministic points)."""
    from scipy.spatial import cKDTree

    pts = np.random.default_rng(seed).random((n_points, 3)) * np.asarray(extent_um, float)
    tree = cKDTree(centres)
    k = min(16, len(centres))
    d, j = tree.query(pts, k=k)
    if k == 1:
        d, j = d[:, None], j[:, None]
    covered = np.any(d <= radii[j], axis=1)
    return float(covered.mean())


def pack_particles(rng: np.random.Generator, extent_um, shell_params: ShellParams, *,
                   target_fraction: float = 0.54, overlap: float = 0.06, pad_um: float | None = None,
                   max_iterations: int = 300, max_rounds: int = 6) -> Packing:
    """Collective-rearrangement packing of shells in the box ``[0, extent_um]`` (z, y, x).

    Centres live in the box grown by ``pad_um`` (default: the largest possible radius) so the scan borders
    cut particles. Particles are added and the packing relaxed until the equivalent balls cover
    ``target_fraction`` of the scan box (Monte-Carlo estimate) or ``max_rounds`` is reached.
    """
    extent = np.asarray(extent_um, dtype=np.float64)
    if extent.shape != (3,) or np.any(extent <= 0):
        raise ValueError(f"extent_um must be three positive lengths, got {extent_um}")
    if not 0 < target_fraction < 0.7:
        raise ValueError(f"target_fraction must be in (0, 0.7), got {target_fraction}")
    pad = 0.5 * shell_params.max_diameter_um if pad_um is None else float(pad_um)
    lo, hi = -pad, extent + pad
    box_volume = float(np.prod(hi - lo))
    shells: list[Shell] = []
    x = np.zeros((0, 3))
    budget = target_fraction * 1.15 * box_volume
    total = 0.0
    it, worst, frac = 0, 0.0, 0.0
    for _ in range(max_rounds):
        new = []
        while total < budget:
            s = sample_shell(rng, shell_params)
            new.append(s)
            total += 4.0 / 3.0 * np.pi * s.equivalent_radius_um ** 3
        shells += new
        x = np.concatenate([x, lo + rng.random((len(new), 3)) * (hi - lo)])
        radii = np.array([s.equivalent_radius_um for s in shells])
        x, it, worst = _relax(rng, x, radii, lo, hi, overlap, max_iterations)
        frac = ball_union_fraction(x, radii, extent)
        if frac >= target_fraction - 0.005:
            break
        budget = total * min(target_fraction / max(frac, 1e-3), 1.15)
    return Packing(centres_um=x, shells=shells, extent_um=extent, iterations=it, max_overlap=worst,
                   ball_fraction=frac)


def label_packing(packing: Packing, shape: tuple[int, int, int], voxel_size_um: float,
                  min_voxels: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Instance labels (uint32, (z, y, x)) of the packed shells on the scan grid (voxel i centred at
    i * voxel_size_um, the convention of centroids in the truth table). Returns (labels, particle index per label value: ``index[label-1]``).

    Particles owning fewer than ``min_voxels`` voxels in the scan are dropped (set to 0). Labels are
    consecutive, in packing order.
    """
    shape = tuple(int(s) for s in shape)
    best = np.full(shape, np.inf, dtype=np.float32)
    owner = np.zeros(shape, dtype=np.int32)  # packing index + 1
    vs = float(voxel_size_um)
    for k, (c, s) in enumerate(zip(packing.centres_um, packing.shells)):
        cv = c / vs  # centre in voxel index coordinates
        r = s.max_radius_um() / vs + 1
        lo = np.maximum(np.floor(cv - r).astype(int), 0)
        hi = np.minimum(np.ceil(cv + r).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        q = shell_normalised_distance(s, tuple(hi - lo), vs, tuple(cv - lo))
        take = (q <= 1.0) & (q < best[sl])
        best[sl][take] = q[take]
        owner[sl][take] = k + 1
    counts = np.bincount(owner.ravel(), minlength=len(packing.shells) + 1)
    keep = np.nonzero(counts[1:] >= max(min_voxels, 1))[0]
    lut = np.zeros(len(packing.shells) + 1, dtype=np.uint32)
    lut[keep + 1] = np.arange(1, len(keep) + 1, dtype=np.uint32)
    return lut[owner], keep


def contact_fractions(labels: np.ndarray, n_labels: int | None = None) -> np.ndarray:
    """Per label (index = label - 1): fraction of the particle's outer voxel faces that touch another
    particle (faces on the scan border are not counted). Face-adjacency over the three axes."""
    n = int(labels.max()) if n_labels is None else int(n_labels)
    touching = np.zeros(n + 1, dtype=np.int64)
    surface = np.zeros(n + 1, dtype=np.int64)
    for axis in range(3):
        a = np.moveaxis(labels, axis, 0)
        lo, hi = a[:-1], a[1:]
        diff = lo != hi
        la, lb = lo[diff], hi[diff]
        for own, other in ((la, lb), (lb, la)):
            surface += np.bincount(own, minlength=n + 1)
            touching += np.bincount(own[other > 0], minlength=n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(surface > 0, touching / np.maximum(surface, 1), 0.0)
    return frac[1:]
