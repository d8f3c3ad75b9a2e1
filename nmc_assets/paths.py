"""Data-root layout (docs/design.md, "Data root"), in one place.

Every path the platform reads or writes is derived from a :class:`DataLayout`; the root is the env
variable ``NMC_DATA_DIR`` or ``./data`` (relative to the current directory). Every path that contains a
scan id, a model name or a model version is built here, and the name is validated where the path is
built: a partition key such as ``../../x`` or a model name such as ``/etc`` raises
:class:`InvalidNameError` instead of reaching outside the data root.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "NMC_DATA_DIR"
#: Scan ids, model names and model versions: 1-64 letters, digits, ``.``, ``_``, ``-``, starting
#: alphanumeric (so never ``..``, never a path separator, never hidden).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SCAN_ID_PATTERN = NAME_PATTERN

#: Suffixes of a scan volume in the drop folder (the part after the scan id).
VOLUME_SUFFIXES = (".tif", ".tiff", ".h5")
#: Suffixes of a scan's ground-truth instance labels in the drop folder.
LABELS_SUFFIXES = (".labels.tif", ".labels.tiff")
#: File name of the SHAP ranking table in the analytics folder (copied into the catalog).
DAMAGE_DRIVERS_FILE = "damage_drivers.parquet"
#: Companion files of a scan (the part after the scan id).
COMPANION_SUFFIXES = (".json",) + LABELS_SUFFIXES + (".truth.parquet",)


class InvalidNameError(ValueError):
    """A scan id, model name or version that cannot name a path under the data root."""

    def __init__(self, kind: str, name: object):
        self.kind, self.name = kind, name
        super().__init__(
            f"invalid {kind} {name!r}: use 1-64 letters, digits, '.', '_', '-', starting with a letter or "
            "digit (no path separators, no '..')"
        )


def is_valid_scan_id(scan_id: object) -> bool:
    """True when ``scan_id`` is 1-64 letters, digits, ``.``, ``_``, ``-``, starting alphanumeric."""
    return isinstance(scan_id, str) and bool(NAME_PATTERN.match(scan_id)) and ".." not in scan_id


def checked_name(name: object, kind: str = "scan id") -> str:
    """``name`` itself when it is a valid scan id / model name / version, else :class:`InvalidNameError`."""
    if not is_valid_scan_id(name):
        raise InvalidNameError(kind, name)
    return str(name)


def split_incoming_name(name: str) -> tuple[str, str] | None:
    """Split a drop-folder file name into ``(scan_id, suffix)``.

    The suffix is one of :data:`VOLUME_SUFFIXES` or :data:`COMPANION_SUFFIXES` (longest match wins,
    so ``a.labels.tif`` is ``("a", ".labels.tif")``). Returns ``None`` for other files. The scan id
    is not validated here.
    """
    for suffix in sorted(VOLUME_SUFFIXES + COMPANION_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    return None


def default_data_dir() -> Path:
    """The data root: ``$NMC_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data").resolve()


@dataclass(frozen=True)
class DataLayout:
    """Paths under one data root. Creating the object touches nothing on disk.

    Methods taking a scan id or a model name raise :class:`InvalidNameError` for names that are not
    :func:`is_valid_scan_id`, so no caller can build a path outside the root from user input.
    """

    root: Path

    @classmethod
    def from_env(cls) -> "DataLayout":
        return cls(default_data_dir())

    @classmethod
    def from_path(cls, root: str | os.PathLike) -> "DataLayout":
        return cls(Path(root).resolve())

    # --- drop folder -------------------------------------------------------------------------
    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    def ground_truth_labels(self, scan_id: str) -> Path | None:
        """The scan's ground-truth labels in the drop folder (``<scan>.labels.tif`` / ``.tiff``), or None."""
        scan_id = checked_name(scan_id)
        for suffix in LABELS_SUFFIXES:
            path = self.incoming / f"{scan_id}{suffix}"
            if path.is_file():
                return path
        return None

    def sidecar(self, scan_id: str) -> Path:
        """Where the scan's JSON sidecar is (it may not exist)."""
        return self.incoming / f"{checked_name(scan_id)}.json"

    @property
    def cross_sections(self) -> Path:
        return self.root / "cross_sections"

    @property
    def annotations(self) -> Path:
        """User 2D annotations for StarDist training: pairs ``<name>.tif`` + ``<name>.labels.tif``."""
        return self.root / "annotations"

    # --- warehouse ---------------------------------------------------------------------------
    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse"

    def tomogram(self, scan_id: str) -> Path:
        return self.warehouse / "tomograms" / f"{checked_name(scan_id)}.zarr"

    def view_probabilities(self, scan_id: str) -> Path:
        return self.warehouse / "view_probabilities" / f"{checked_name(scan_id)}.zarr"

    def fused_labels(self, scan_id: str) -> Path:
        return self.warehouse / "fused_labels" / f"{checked_name(scan_id)}.zarr"

    def particle_features(self, scan_id: str) -> Path:
        return self.particle_features_dir / f"scan_id={checked_name(scan_id)}" / "features.parquet"

    @property
    def particle_features_dir(self) -> Path:
        return self.warehouse / "particle_features"

    @property
    def particle_features_glob(self) -> str:
        return str(self.particle_features_dir / "*" / "features.parquet")

    @property
    def catalog(self) -> Path:
        return self.warehouse / "nmc.duckdb"

    @property
    def stardist_training_set(self) -> Path:
        return self.warehouse / "stardist_training_set"

    @property
    def analytics(self) -> Path:
        return self.warehouse / "analytics"

    @property
    def damage_drivers(self) -> Path:
        """The SHAP ranking table (``damage_drivers`` asset); copied into the catalog."""
        return self.analytics / DAMAGE_DRIVERS_FILE

    @property
    def synthesis(self) -> Path:
        return self.warehouse / "synthesis"

    @property
    def grain_sections(self) -> Path:
        return self.synthesis / "grain_sections"

    @property
    def shell_model(self) -> Path:
        return self.synthesis / "shell_model.json"

    @property
    def synthetic_particles(self) -> Path:
        return self.synthesis / "synthetic_particles"

    # --- models and releases -----------------------------------------------------------------
    @property
    def models(self) -> Path:
        return self.root / "models"

    def stardist_model(self, name: str) -> Path:
        return self.models / "stardist" / checked_name(name, "model name")

    @property
    def grain_models(self) -> Path:
        return self.models / "grain_model"

    def grain_model(self, version: str) -> Path:
        return self.grain_models / checked_name(version, "model version")

    @property
    def grain_model_latest(self) -> Path:
        """``{"version": ...}`` of the newest calibrated grain model."""
        return self.grain_models / "latest.json"

    @property
    def published(self) -> Path:
        return self.root / "published"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"
