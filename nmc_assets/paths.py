"""Data-root layout of DESIGN section 3.1, in one place.

Every path the platform reads or writes is derived from a :class:`DataLayout`; the root is the env
variable ``NMC_DATA_DIR`` or ``./data`` (relative to the current directory).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "NMC_DATA_DIR"
SCAN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: Suffixes of a scan volume in the drop folder (the part after the scan id).
VOLUME_SUFFIXES = (".tif", ".tiff", ".h5")
#: Companion files of a scan (the part after the scan id).
COMPANION_SUFFIXES = (".json", ".labels.tif", ".labels.tiff", ".truth.parquet")


def is_valid_scan_id(scan_id: str) -> bool:
    """True when ``scan_id`` is 1-64 letters, digits, ``.``, ``_``, ``-``, starting alphanumeric."""
    return bool(SCAN_ID_PATTERN.match(scan_id))


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
    """Paths under one data root (DESIGN 3.1). Creating the object touches nothing on disk."""

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
        return self.warehouse / "tomograms" / f"{scan_id}.zarr"

    def view_probabilities(self, scan_id: str) -> Path:
        return self.warehouse / "view_probabilities" / f"{scan_id}.zarr"

    def fused_labels(self, scan_id: str) -> Path:
        return self.warehouse / "fused_labels" / f"{scan_id}.zarr"

    def particle_features(self, scan_id: str) -> Path:
        return self.warehouse / "particle_features" / f"scan_id={scan_id}" / "features.parquet"

    @property
    def particle_features_glob(self) -> str:
        return str(self.warehouse / "particle_features" / "*" / "features.parquet")

    @property
    def catalog(self) -> Path:
        return self.warehouse / "nmc.duckdb"

    @property
    def analytics(self) -> Path:
        return self.warehouse / "analytics"

    @property
    def synthesis(self) -> Path:
        return self.warehouse / "synthesis"

    # --- models and releases -----------------------------------------------------------------
    @property
    def models(self) -> Path:
        return self.root / "models"

    def stardist_model(self, name: str) -> Path:
        return self.models / "stardist" / name

    def grain_model(self, version: str) -> Path:
        return self.models / "grain_model" / version

    @property
    def published(self) -> Path:
        return self.root / "published"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"
