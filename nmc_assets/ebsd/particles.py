"""Particles in an EBSD map -> one grain-label section each, and the per-grain table.

A particle is a connected region of good (indexed, quality-passing) points after a morphological closing
(which bridges misindexed boundary points), hole filling and removal of regions smaller than
``min_particle_area_px``. Each particle becomes a :class:`~nmc_assets.particles.sections.Section`: its
bounding box with one pixel of margin, grains relabelled 1..K, 0 outside the particle, pixel size = the
map step (um). Points inside a particle that are in no grain (not indexed, low quality, grains below the
minimum size) take a neighbouring grain's label when ``fill_unindexed`` (otherwise they would read as holes
outside the particle): first an indexed point below the quality thresholds whose orientation lies within the
grain threshold of a neighbouring grain's mean joins that grain (``fill_by_orientation``); the rest take the
weighted majority of the grains around them (``fill_method``), which keeps boundaries where the measured
points put them (the nearest grain splits a misindexed boundary band at random).

Per-grain table (one row per section grain): the grain's mean orientation (Bunge Euler, deg, averaged over
its measured points after moving each to the symmetry-equivalent nearest the grain's orientation), its
c-axis ([001] of the crystal, i.e. [0001] for trigonal/hexagonal phases) in the map frame (x = column,
y = row, z = x cross y), and the angle between that axis and the in-plane radial direction from the
particle's centroid to the grain's centroid (deg, 0 = radial, 90 = perpendicular; the axis is sign-free).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nmc_assets.ebsd.grains import GrainSettings, fill_from_neighbours, join_by_orientation, quality_mask, rebuild_grains
from nmc_assets.ebsd.maps import EbsdError, EbsdMap
from nmc_assets.particles.sections import Section
from nmc_assets.settings import setting

__all__ = ["SectionSettings", "GRAIN_TABLE_COLUMNS", "find_particles", "particle_grains", "map_sections", "mean_orientations"]

GRAIN_TABLE_COLUMNS = ("map", "section", "grain", "phase", "n_points", "area_um2", "phi1_deg", "Phi_deg", "phi2_deg",
                       "c_axis_x", "c_axis_y", "c_axis_z", "c_axis_radial_angle_deg", "touches_map_border")


@dataclass(frozen=True)
class SectionSettings(GrainSettings):
    """Grain rebuilding (:class:`GrainSettings`) plus how particles are cut out of a map."""

    closing_radius_px: int = setting(2, "particles: good points are closed by a disk of this radius (bridges misindexed gaps)")
    min_particle_area_px: int = setting(200, "particles smaller than this many points are dropped")
    fill_unindexed: bool = setting(True, "points inside a particle that are in no grain take a neighbouring grain's label")
    particle_rim: bool = setting(True, "indexed points of any quality next to a particle belong to it (misindexed points "
                                 "on its outline would otherwise notch it)")
    fill_method: str = setting("majority", "majority (weighted vote of the grains within fill_radius_px, gaps filled from their "
                               "edges inwards) | nearest (nearest grain: splits misindexed boundary points at random)")
    fill_radius_px: int = setting(2, "majority fill: neighbourhood radius (points)")
    fill_by_orientation: bool = setting(True, "before the fill, an indexed point below the quality thresholds joins the grain within "
                                        "fill_radius_px whose mean orientation is within threshold_deg of its own (the closest)")
    skip_border_particles: bool = setting(False, "drop particles that touch the map border (cut by the scan area)")
    max_section_px: int = setting(512, "sections wider or taller than this are resampled (nearest neighbour) to fit, with "
                                  "a coarser pixel size: the calibration renders model sections at the observed pixel "
                                  "size, and an 8 nm, 1000-pixel section costs it tens of GiB (0 = never)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fill_method not in ("majority", "nearest"):
            raise ValueError(f"fill_method must be 'majority' or 'nearest', got {self.fill_method!r}")
        if self.fill_radius_px < 1:
            raise ValueError(f"fill_radius_px must be >= 1, got {self.fill_radius_px}")


def find_particles(good: np.ndarray, closing_radius_px: int = 2, min_area_px: int = 200) -> np.ndarray:
    """Particle labels (rows, cols) int32 of a good-point mask: closing, hole filling, small regions removed,
    4-connected components numbered 1..P in row-major order."""
    from scipy import ndimage as ndi
    from skimage.measure import label
    from skimage.morphology import disk, remove_small_objects

    m = good.astype(bool)
    if closing_radius_px > 0:
        r = int(closing_radius_px)
        m = ndi.binary_closing(np.pad(m, r), structure=disk(r))[r:-r, r:-r] | m
    m = ndi.binary_fill_holes(m)
    m = remove_small_objects(m, max_size=max(int(min_area_px) - 1, 0)) if min_area_px > 1 else m
    return label(m, connectivity=1).astype(np.int32)


def mean_orientations(m: EbsdMap, grains: np.ndarray, n_grains: int, chunk: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """Mean orientation per grain 1..n_grains: unit quaternions (n_grains, 4) (orix convention) and the
    grain's phase id (n_grains,); two passes of symmetry-aware averaging (reference: first point, then the mean)."""
    from orix.quaternion import Orientation, Rotation

    quats = np.zeros((n_grains + 1, 4))
    phase_of = np.zeros(n_grains + 1, np.int32)
    flat_g, flat_p = grains.ravel(), m.phase_id.ravel()
    for pid, phase in m.phases.items():
        pts = np.flatnonzero((flat_g > 0) & (flat_p == pid))
        if len(pts) == 0:
            continue
        g = flat_g[pts]
        q = Orientation.from_euler(m.euler_rad.reshape(-1, 3)[pts]).data
        ops = Rotation(phase.symmetry()).data  # (k, 4)
        ref = np.zeros((n_grains + 1, 4))
        _, first = np.unique(g, return_index=True)
        ref[g[first]] = q[first]
        phase_of[np.unique(g)] = pid
        for _ in range(2):
            acc = np.zeros((n_grains + 1, 4))
            for s in range(0, len(pts), chunk):
                qc, gc = q[s:s + chunk], g[s:s + chunk]
                eq = _quat_mul(ops[:, None, :], qc[None])  # (k, n, 4): s * q, the symmetry-equivalents
                dots = np.einsum("knc,nc->kn", eq, ref[gc])
                best = np.abs(dots).argmax(0)
                pick = eq[best, np.arange(len(qc))] * np.sign(dots[best, np.arange(len(qc))])[:, None]
                np.add.at(acc, gc, pick)
            norm = np.linalg.norm(acc, axis=1, keepdims=True)
            ref = np.where(norm > 0, acc / np.maximum(norm, 1e-300), ref)
        quats[np.unique(g)] = ref[np.unique(g)]
    return quats[1:], phase_of[1:]


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of broadcastable (..., 4) arrays (w, x, y, z)."""
    w1, x1, y1, z1 = np.moveaxis(a, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(b, -1, 0)
    return np.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], axis=-1)


def _fit_section(labels: np.ndarray, pixel_um: float, name: str, max_px: int) -> Section:
    """A section of ``labels``, resampled (nearest neighbour, ``skimage.transform.resize``) to at most ``max_px``
    pixels on its longer side when larger, its pixel size scaled alike (um); grains relabelled 1..K."""
    from skimage.segmentation import relabel_sequential
    from skimage.transform import resize

    side = max(labels.shape)
    if max_px <= 0 or side <= max_px:
        return Section(labels.astype(np.uint16), pixel_um, name)
    f = side / max_px
    shape = tuple(max(1, int(round(n / f))) for n in labels.shape)
    small = resize(labels, shape, order=0, preserve_range=True, anti_aliasing=False).astype(labels.dtype)
    return Section(relabel_sequential(small)[0].astype(np.uint16), pixel_um * labels.shape[1] / shape[1], name)


def _safe_stem(path: str) -> str:
    from pathlib import Path

    return re.sub(r"[^A-Za-z0-9._-]", "_", Path(path).stem)[:48] or "map"


def particle_grains(m: EbsdMap, settings: SectionSettings | None = None) -> dict[str, np.ndarray]:
    """The map's good points ``good``, grain labels ``grains`` (0 = no grain), particle labels ``particles``,
    the grains' mean orientations ``quats`` (N, 4) and phases ``phase_of`` (N,) (:func:`mean_orientations`),
    and ``filled``: the grain labels with each particle's points that are in no grain filled from that
    particle's grains (``fill_unindexed``: by orientation, then ``fill_method``), 0 outside the particles;
    all (rows, cols) arrays."""
    from skimage.measure import regionprops

    s = settings or SectionSettings()
    good = quality_mask(m, s)
    grains = rebuild_grains(m, s, good)
    particles = find_particles(good, s.closing_radius_px, s.min_particle_area_px)
    if particles.max() == 0:
        raise EbsdError(m.source, f"no particle: no connected region of at least {s.min_particle_area_px} good points")
    if s.particle_rim:
        from skimage.segmentation import expand_labels

        grown = expand_labels(particles, 1)
        particles = np.where((particles == 0) & m.indexed, grown, particles).astype(np.int32)
    quats, phase_of = mean_orientations(m, grains, int(grains.max()))
    filled = np.where(particles > 0, grains, 0)
    if s.fill_unindexed:
        joined = join_by_orientation(m, grains, (particles > 0) & ~good, quats, phase_of, s.threshold_deg,
                                     s.fill_radius_px) if s.fill_by_orientation else grains
        for prop in regionprops(particles):
            box = prop.slice
            region = prop.image
            lab = fill_from_neighbours(np.where(region, joined[box], 0), region, s.fill_method, s.fill_radius_px)
            filled[box][region] = lab[region]
    return {"good": good, "grains": grains, "particles": particles, "filled": filled, "quats": quats, "phase_of": phase_of}


def map_sections(m: EbsdMap, settings: SectionSettings | None = None) -> tuple[list[Section], pd.DataFrame, np.ndarray, np.ndarray]:
    """Sections (one per particle, named ``<map stem>_p<k>``), the per-grain table
    (:data:`GRAIN_TABLE_COLUMNS`), the map's grain labels and particle labels (rows, cols)."""
    from orix.quaternion import Rotation
    from orix.vector import Vector3d
    from skimage.measure import regionprops
    from skimage.segmentation import relabel_sequential

    s = settings or SectionSettings()
    pg = particle_grains(m, s)
    grains, particles, filled, quats, phase_of = pg["grains"], pg["particles"], pg["filled"], pg["quats"], pg["phase_of"]
    n_grains = int(grains.max())
    c_axis = (~Rotation(quats)) * Vector3d.zvector()
    c_xyz = c_axis.data.reshape(-1, 3)
    euler = np.degrees(Rotation(quats).to_euler())
    stem = _safe_stem(m.source)
    sections, rows = [], []
    grid_rc = np.indices(m.shape)
    for k, prop in enumerate(regionprops(particles), 1):
        r0, c0, r1, c1 = prop.bbox
        r0, c0, r1, c1 = max(r0 - 1, 0), max(c0 - 1, 0), min(r1 + 1, m.shape[0]), min(c1 + 1, m.shape[1])
        border = r0 == 0 or c0 == 0 or r1 == m.shape[0] or c1 == m.shape[1]
        if border and s.skip_border_particles:
            continue
        region = particles[r0:r1, c0:c1] == prop.label
        measured = np.where(region, grains[r0:r1, c0:c1], 0)
        if not (measured > 0).any():
            continue
        lab = np.where(region, filled[r0:r1, c0:c1], 0)
        seq, fw, _ = relabel_sequential(lab)
        if seq.max() > np.iinfo(np.uint16).max:
            raise EbsdError(m.source, f"particle {k} has {seq.max()} grains, more than a uint16 section holds")
        name = f"{stem}_p{k:03d}"
        sections.append(_fit_section(seq, float(m.step_um), name, s.max_section_px))
        centre = np.array(prop.centroid)  # (row, col)
        ids = np.unique(lab[lab > 0])
        rr, cc = grid_rc[0][r0:r1, c0:c1], grid_rc[1][r0:r1, c0:c1]
        counts = np.bincount(measured.ravel(), minlength=n_grains + 1)
        areas = np.bincount(lab.ravel(), minlength=n_grains + 1)
        sum_r = np.bincount(measured.ravel(), weights=rr.ravel(), minlength=n_grains + 1)
        sum_c = np.bincount(measured.ravel(), weights=cc.ravel(), minlength=n_grains + 1)
        for gid in ids:
            n = counts[gid]
            radial = np.array([sum_c[gid] / max(n, 1) - centre[1], sum_r[gid] / max(n, 1) - centre[0], 0.0])
            rn = np.linalg.norm(radial)
            c = c_xyz[gid - 1]
            ang = float(np.degrees(np.arccos(min(abs(c @ radial) / rn, 1.0)))) if rn >= 1.0 and n > 0 else np.nan
            rows.append((stem, name, int(fw[gid]), m.phases[int(phase_of[gid - 1])].name if phase_of[gid - 1] else "",
                         int(n), float(areas[gid] * m.step_um**2), *map(float, euler[gid - 1]), *map(float, c), ang, bool(border)))
    table = pd.DataFrame(rows, columns=list(GRAIN_TABLE_COLUMNS))
    return sections, table, grains, particles
