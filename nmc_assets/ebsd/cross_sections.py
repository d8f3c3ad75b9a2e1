"""The ``cross_sections/`` folder (docs/design.md §3.1) with EBSD maps: label TIFFs as before, plus every
EBSD map (:data:`~nmc_assets.ebsd.readers.MAP_SUFFIXES`) turned into one section per particle.

:func:`write_cross_sections` writes the ``grain_sections`` folder: the sections (label TIFF + sidecar, as
:func:`nmc_assets.synthesis.sections.read_sections` reads them), ``manifest.json`` and, when there are EBSD
maps, ``ebsd_grains.parquet`` (the per-grain table of :mod:`.particles`), all in one atomic step.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nmc_assets.ebsd.particles import GRAIN_TABLE_COLUMNS, SectionSettings, map_sections
from nmc_assets.ebsd.readers import MAP_SUFFIXES, read_map

__all__ = ["GRAIN_TABLE_FILE", "ebsd_files", "has_cross_sections", "read_cross_sections", "write_cross_sections"]

#: The per-grain table beside the sections.
GRAIN_TABLE_FILE = "ebsd_grains.parquet"
_TIFF = (".tif", ".tiff")


def ebsd_files(folder: Path) -> list[Path]:
    """EBSD maps in ``folder`` (not hidden, sorted by name; a ``.crc`` is read through its ``.cpr``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in MAP_SUFFIXES)


def has_cross_sections(folder: Path) -> bool:
    """True when ``folder`` holds a label TIFF or an EBSD map."""
    folder = Path(folder)
    return folder.is_dir() and (any(p.suffix.lower() in _TIFF for p in folder.iterdir()) or bool(ebsd_files(folder)))


def read_cross_sections(folder: Path | None, settings: SectionSettings | None = None,
                        maps: list[Path] | None = None) -> tuple[list, pd.DataFrame, list[dict]]:
    """All sections of ``folder``: label TIFFs (``read_sections``) then EBSD maps in name order (or only the
    given ``maps`` when ``folder`` is None); the per-grain table of the maps; one summary dict per map (file,
    grid, step, shape, indexed fraction, phases, grains, sections). A bad file raises ``ValueError``
    ``<file>: <problem>``."""
    from nmc_assets.synthesis.sections import read_sections

    s = settings or SectionSettings()
    sections = read_sections(folder) if folder is not None else []
    tables, summaries = [], []
    for path in (ebsd_files(folder) if maps is None else [Path(p) for p in maps]):
        m = read_map(path)
        secs, table, grains, _ = map_sections(m, s)
        sections.extend(secs)
        tables.append(table)
        summaries.append({"file": path.name, "grid": m.metadata.get("grid", "square"), "step_um": m.step_um,
                          "shape": list(m.shape), "indexed_fraction": float(m.indexed.mean()),
                          "phases": {str(k): f"{p.name} ({p.laue_group})" for k, p in m.phases.items()},
                          "grains": int(grains.max()), "sections": len(secs)})
    names = [sec.name for sec in sections]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{folder}: two inputs give the same section name(s) {dup[:5]}: rename one of the files")
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(GRAIN_TABLE_COLUMNS))
    return sections, table, summaries


def write_cross_sections(out: Path, folder: Path | None, settings: SectionSettings | None = None,
                         maps: list[Path] | None = None) -> list:
    """Write the sections of ``folder`` / ``maps`` (:func:`read_cross_sections`) to ``out`` with
    ``manifest.json`` (``source: user``, the EBSD maps' summaries and settings) and the per-grain table;
    [] when there are none."""
    from dataclasses import asdict

    from nmc_assets.synthesis.sections import write_sections
    from nmc_assets.synthesis.store import MANIFEST_FILE

    s = settings or SectionSettings()
    sections, table, summaries = read_cross_sections(folder, s, maps)
    if not sections:
        return []
    manifest = {"source": "user", "source_dir": str(folder) if folder is not None else None, "n_sections": len(sections)}
    if summaries:
        manifest.update(ebsd_maps=summaries, ebsd_settings=asdict(s))
    write_sections(out, sections, {MANIFEST_FILE: manifest}, tables={GRAIN_TABLE_FILE: table} if summaries else None)
    return sections
