"""An EBSD orientation map on a square grid, and the crystal symmetry of its phases.

Axes: arrays are (row, col); the map frame is x = column direction, y = row direction (down), z = x cross y
(the section normal), lengths in micrometres. Euler angles are Bunge (ZXZ) in radians, as the vendor wrote
them (they define the crystal orientation in the map frame). Phase 0 = not indexed.
orix is imported lazily (its import pulls scipy, matplotlib and diffpy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["EbsdError", "EbsdPhase", "EbsdMap", "OXFORD_LAUE_GROUPS", "phase_from_point_group"]

#: Oxford Instruments' Laue-group numbers (``.cpr`` ``LaueGroup``, ``.ctf`` phase lines) -> Laue group name.
OXFORD_LAUE_GROUPS = {1: "-1", 2: "2/m", 3: "mmm", 4: "4/m", 5: "4/mmm", 6: "-3", 7: "-3m", 8: "6/m",
                      9: "6/mmm", 10: "m-3", 11: "m-3m"}


class EbsdError(ValueError):
    """An EBSD file that cannot be used; ``str()`` is ``<file>: <problem>``."""

    def __init__(self, path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class EbsdPhase:
    """One indexed phase: ``laue_group`` (e.g. ``"m-3m"``, ``"-3m"`` for NMC) and the proper rotation group
    used for disorientations (``"432"``, ``"32"``: the Laue group's proper subgroup)."""

    id: int
    name: str
    laue_group: str
    proper_group: str

    def symmetry(self):
        """The orix ``Symmetry`` of the proper rotation group."""
        from orix.crystal_map import Phase

        return Phase(point_group=self.laue_group).point_group.laue_proper_subgroup


def phase_from_point_group(phase_id: int, name: str, point_group: str, path) -> EbsdPhase:
    """An :class:`EbsdPhase` from any point-group or Laue-group name orix knows (``"m-3m"``, ``"432"``,
    ``"-3m"``, ``"321"`` ...); :class:`EbsdError` naming ``path`` when the symmetry is unknown."""
    from orix.crystal_map import Phase

    try:
        pg = Phase(point_group=str(point_group)).point_group
    except Exception as exc:  # noqa: BLE001 - orix raises several types for unknown names
        raise EbsdError(path, f"phase {phase_id} ({name!r}): unknown crystal symmetry {point_group!r} ({exc})") from exc
    if pg is None:
        raise EbsdError(path, f"phase {phase_id} ({name!r}): unknown crystal symmetry {point_group!r}")
    laue = pg.laue
    return EbsdPhase(int(phase_id), str(name), laue.name, laue.laue_proper_subgroup.name)


@dataclass
class EbsdMap:
    """A map on a square grid: ``euler_rad`` (rows, cols, 3), ``phase_id`` (rows, cols) int32 (0 = not
    indexed), ``phases`` {id: :class:`EbsdPhase`}, ``step_um`` (pixel size), ``quality`` {name: (rows, cols)
    float}: ``ci`` (TSL confidence index), ``iq``, ``fit``, ``mad`` (Oxford mean angular deviation, deg),
    ``bc`` (band contrast) ... as the file has them; ``metadata``: source file, grid, resampling."""

    euler_rad: np.ndarray
    phase_id: np.ndarray
    phases: dict[int, EbsdPhase]
    step_um: float
    source: str
    quality: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.euler_rad.shape != self.phase_id.shape + (3,):
            raise EbsdError(self.source, f"Euler angles {self.euler_rad.shape} do not match the phase map {self.phase_id.shape}")
        if not (np.isfinite(self.step_um) and self.step_um > 0):
            raise EbsdError(self.source, f"step size must be a positive number of micrometres, got {self.step_um}")
        unknown = set(np.unique(self.phase_id[self.phase_id > 0]).tolist()) - set(self.phases)
        if unknown:
            raise EbsdError(self.source, f"points of phase(s) {sorted(unknown)} that the header does not describe")

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.phase_id.shape)

    @property
    def indexed(self) -> np.ndarray:
        """(rows, cols) bool: indexed points (phase > 0)."""
        return self.phase_id > 0

    def orientations(self, phase_id: int, where: np.ndarray | None = None):
        """orix ``Orientation`` of the points of ``phase_id`` (flat, row-major; within ``where`` if given)."""
        from orix.quaternion import Orientation

        sel = self.phase_id == phase_id
        if where is not None:
            sel &= where
        return Orientation.from_euler(self.euler_rad[sel], symmetry=self.phases[phase_id].symmetry())

    def with_mask(self, keep: np.ndarray, reason: str) -> "EbsdMap":
        """A copy in which points outside ``keep`` are not indexed (phase 0); ``reason`` goes to the metadata."""
        phase = np.where(keep, self.phase_id, 0).astype(np.int32)
        meta = {**self.metadata, "masked": [*self.metadata.get("masked", []), {"reason": reason, "points": int((self.indexed & ~keep).sum())}]}
        return EbsdMap(self.euler_rad, phase, self.phases, self.step_um, self.source, self.quality, meta)
