"""Raw per-particle measurements (voxel units) of a labelled tomogram, a mosaic of particles at a time.

Each particle's crop (bounding box + a margin) becomes a tile of a mosaic (:mod:`nmc_assets.features.mosaic`),
a few million voxels per mosaic; moments, surfaces and contact are then computed once per mosaic.
Arrays are ``(z, y, x)``; lengths are in voxels, areas in voxel^2 (voxel edge = 1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from nmc_assets.features._compiled import kernels
from nmc_assets.features.moments import particle_moments
from nmc_assets.features.mosaic import TILE_PAD, Mosaic, build_mosaic
from nmc_assets.features.surfaces import particle_surfaces

#: Voxels per mosaic chunk (bounds memory: about 40 bytes per voxel at the peak).
CHUNK_VOXELS = 4_000_000


@dataclass(frozen=True)
class ParticleMeasurements:
    """One row per particle, (n,) float64 arrays unless noted; fields as in
    :class:`~nmc_assets.features.moments.Moments` and :class:`~nmc_assets.features.surfaces.Surfaces`."""

    centroid_xyz: np.ndarray  #: (n, 3) voxel indices (x, y, z)
    yaw_deg: np.ndarray
    pitch_deg: np.ndarray
    roll_deg: np.ndarray
    major_axis: np.ndarray  #: (n, 3) unit vector (x, y, z)
    l1: np.ndarray  #: voxel^2
    l3: np.ndarray  #: voxel^2
    n_filled: np.ndarray  #: voxels
    n_solid: np.ndarray  #: voxels
    e_density: np.ndarray  #: intensity units
    homogeneity: np.ndarray  #: 1 / intensity units
    s_out: np.ndarray  #: voxel^2
    s_out_raw: np.ndarray
    s_in: np.ndarray
    s_in_raw: np.ndarray
    contact: np.ndarray  #: fraction of the outer surface in contact with other particles
    touches_border: np.ndarray  #: (n,) bool: the bounding box reaches the volume's edge

    @classmethod
    def concatenate(cls, parts: list[ParticleMeasurements]) -> ParticleMeasurements:
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)})

    def take(self, rows: np.ndarray) -> ParticleMeasurements:
        return type(self)(**{f.name: getattr(self, f.name)[rows] for f in dataclasses.fields(self)})


@dataclass(frozen=True)
class ContactRule:
    """When an outer voxel face of a particle counts as contact (:func:`contact_fraction`).

    ``gap_vox`` >= 1: near contact, another label within that many voxels (chessboard; intensity unused).
    ``gap_vox`` 0: the face's neighbour is another label and, with ``window_vox`` >= 1, the intensity
    stays at or above ``level`` (tomogram units) along the face normal over ``window_vox`` voxels on each
    side of the face (a gap between two particles that blurring hides in the labels is darker);
    ``window_vox`` 0: geometry only (the virtual beamline's definition on exact labels).
    """

    gap_vox: int = 0
    window_vox: int = 0
    level: float = float("-inf")

    @property
    def margin(self) -> int:
        """Voxels each crop extends past the particle's bounding box."""
        return max(self.gap_vox, self.window_vox, 1)


def measure_particles(labels: np.ndarray, intensity: np.ndarray, ids: np.ndarray, box_lo: np.ndarray,
                      box_hi: np.ndarray, thr: float, contact: ContactRule = ContactRule()) -> ParticleMeasurements:
    """:class:`ParticleMeasurements` of the particles ``ids`` (label values, in that order).

    ``box_lo``/``box_hi``: (n, 3) bounding boxes (z, y, x; hi exclusive); ``thr``: solid threshold
    (intensity units); ``contact``: see :func:`contact_fraction`.
    """
    starts, sizes, touches = crop_boxes(box_lo, box_hi, labels.shape, contact.margin)
    chunks = mosaic_chunks(sizes)
    parts = [measure_mosaic(build_mosaic(labels, intensity, ids[c], starts[c], sizes[c]), thr, contact,
                            touches[c]) for c in chunks]
    return gather_chunks(parts, chunks)


def crop_boxes(box_lo: np.ndarray, box_hi: np.ndarray, shape, margin: int = 1
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, sizes, touches) of each particle's crop: its bounding box ((n, 3) int64, z, y, x, hi
    exclusive) grown by ``margin`` voxels (:attr:`ContactRule.margin`) and clipped to the volume
    ``shape``: (n, 3) int64 starts and sizes, and (n,) bool: the box reaches the volume's edge."""
    shape = np.array(shape, np.int64)
    starts = np.maximum(box_lo - margin, 0)
    sizes = np.minimum(box_hi + margin, shape) - starts
    touches = (box_lo == 0).any(axis=1) | (box_hi == shape).any(axis=1)
    return starts, sizes, touches


def measure_mosaic(mosaic: Mosaic, thr: float, contact: ContactRule, touches: np.ndarray) -> ParticleMeasurements:
    """:class:`ParticleMeasurements` of the tiles of one mosaic (``touches``: (n,) bool per tile)."""
    return ParticleMeasurements(
        **particle_moments(mosaic, thr)._asdict(),
        **particle_surfaces(mosaic, thr)._asdict(),
        contact=contact_fraction(mosaic, contact),
        touches_border=touches,
    )


def gather_chunks(parts: list[ParticleMeasurements], chunks: list[np.ndarray]) -> ParticleMeasurements:
    """The measurements of the mosaics ``parts`` (one per chunk of :func:`mosaic_chunks`) in particle order."""
    return ParticleMeasurements.concatenate(parts).take(np.argsort(np.concatenate(chunks)))


def mosaic_chunks(sizes: np.ndarray) -> list[np.ndarray]:
    """Row indices of the particles of each mosaic: crops of similar (y, x) extent together, at most
    :data:`CHUNK_VOXELS` voxels (with rims) per mosaic unless one crop alone is larger. A function of
    the (n, 3) crop ``sizes`` alone, so every path that measures a scan packs the same mosaics (particles
    whose crop is cut by the volume edge measure slightly differently in different mosaics)."""
    order = np.lexsort((sizes[:, 2], sizes[:, 1]))
    chunks: list[np.ndarray] = []
    chunk: list[int] = []
    chunk_vox = 0
    for k in order.tolist():
        vox = int(np.prod(sizes[k] + 2 * TILE_PAD))
        if chunk and chunk_vox + vox > CHUNK_VOXELS:
            chunks.append(np.array(chunk))
            chunk, chunk_vox = [], 0
        chunk.append(k)
        chunk_vox += vox
    if chunk:
        chunks.append(np.array(chunk))
    return chunks


def contact_fraction(mosaic: Mosaic, rule: ContactRule = ContactRule()) -> np.ndarray:
    """Per tile, the fraction of the filled particle's outer surface in contact with another label.

    ``rule.gap_vox`` 0: outer voxel faces that count as contact (:class:`ContactRule`) over all outer faces
    (faces on the volume border count as free surface); n >= 1: boundary voxels with another label within
    n voxels (chessboard) over all boundary voxels (a looser near-contact measure).
    """
    k = kernels().morphology
    if rule.gap_vox >= 1:
        n_boundary, n_contact = k.contact_per_z(mosaic.filled, mosaic.other, rule.gap_vox)
    else:  # window 0: every face to another label (the line test is empty)
        n_boundary, n_contact = k.contact_faces_bright_per_z(mosaic.filled, mosaic.other, mosaic.img,
                                                             np.float32(rule.level), rule.window_vox,
                                                             *mosaic.tile_extents())
    return mosaic.tile_sums(n_contact) / np.maximum(1, mosaic.tile_sums(n_boundary))
