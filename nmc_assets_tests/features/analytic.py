"""Analytic scenes for both feature sets, and docs/features.md's generated parts.

Scenes at 0.5 um voxels, intensity 1 in solid voxels and 0.2 elsewhere, solid threshold 0.6:
``ball`` (radius 16 voxels), ``ellipsoid`` (semi-axes 20:13:8 voxels, yaw 30, pitch 20, roll 10 deg),
``cracked_ball`` (radius 16 with a planar penny crack: 2 voxels thick, radius 12, through the centre),
``touching_balls`` (radius 12, centres 23 voxels apart along x; values of the left ball).

``python -m nmc_assets_tests.features.analytic`` rewrites the generated blocks of docs/features.md
(definitions and the confidence columns from :mod:`nmc_assets.features.columns`, values from the code); test_definitions.py checks
that the document still says what the code does.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from nmc_assets.features import FeatureSettings, compute_particle_features
from nmc_assets.features.columns import COLUMN_DOCS, DEPARTURES, LI2022_COLUMNS
from nmc_assets.features.li2022 import FIXED_BUGS
from nmc_assets_tests.features.constructed import ball_mask, ellipsoid_mask, phase_image

VOXEL = 0.5
THRESHOLD = 0.6
DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"
SCENES = ("ball", "ellipsoid", "cracked_ball", "touching_balls")
VALUE_COLUMNS = list(LI2022_COLUMNS)
#: Orientation of a ball is not defined (degenerate second moments): not stated for these scenes.
ANGLES = ("yaw_deg", "pitch_deg", "roll_deg")
ROUND_SCENES = ("ball", "cracked_ball", "touching_balls")


def stated(scene_name: str, column: str) -> bool:
    """Whether docs/features.md states a value for this scene and column."""
    return not (column in ANGLES and scene_name in ROUND_SCENES)


def scene(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels uint16 of the filled particles, solid bool) of one analytic scene."""
    if name == "ball":
        shape = (48, 48, 48)
        labels = ball_mask(shape, (24.3, 23.8, 24.1), 16).astype(np.uint16)
        return labels, labels > 0
    if name == "ellipsoid":
        shape = (56, 56, 56)
        labels = ellipsoid_mask(shape, (28, 28, 28), (20, 13, 8), 30, 20, 10).astype(np.uint16)
        return labels, labels > 0
    if name == "cracked_ball":
        shape = (48, 48, 48)
        labels = ball_mask(shape, (24.3, 23.8, 24.1), 16).astype(np.uint16)
        zz, yy, xx = np.ogrid[:48, :48, :48]
        crack = (np.abs(zz - 24.3) < 1.0) & ((yy - 23.8) ** 2 + (xx - 24.1) ** 2 <= 12**2)
        return labels, (labels > 0) & ~crack
    if name == "touching_balls":
        shape = (36, 36, 72)
        left, right = (18, 18, 24), (18, 18, 47)
        labels = np.zeros(shape, np.uint16)
        labels[ball_mask(shape, left, 12)] = 1
        both = ball_mask(shape, right, 12)
        xx = np.arange(shape[2])[None, None, :]
        labels[both & ((xx >= 35.5) | (labels == 0))] = 2
        return labels, labels > 0
    raise ValueError(f"unknown scene {name!r}")


def scene_features(name: str, feature_set: str) -> pd.Series:
    """The row of particle 1 of scene ``name`` in ``feature_set``."""
    labels, solid = scene(name)
    df = compute_particle_features(labels, phase_image(solid), VOXEL, scan_id=name, cycles=None,
                                   solid_threshold=THRESHOLD, settings=FeatureSettings(feature_set=feature_set))
    return df.set_index("particle_id").loc[1]


def reference_values() -> pd.DataFrame:
    """Rows (scene, column), columns default and li2022: every value column of both sets."""
    rows = []
    for name in SCENES:
        d, s = scene_features(name, "default"), scene_features(name, "li2022")
        rows += [(name, c, float(d[c]), float(s[c])) for c in VALUE_COLUMNS]
    return pd.DataFrame(rows, columns=["scene", "column", "default", "li2022"]).set_index(["scene", "column"])


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def definitions_markdown() -> str:
    """The per-column table: unit, ours, the seed's (li2022), relation, why ours departs."""
    lines = ["| column | default set (ours) | li2022 set (the seed's getAllFeatures.m) | relation | why ours departs |",
             "| --- | --- | --- | --- | --- |"]
    for name, (unit, seed, relation, text) in LI2022_COLUMNS.items():
        ours = COLUMN_DOCS[name]
        lines.append(f"| `{name}` | {_cell(ours['description'])} [{ours['unit']}] | {seed}: {_cell(text)} [{unit}] "
                     f"| {relation} | {_cell(DEPARTURES[name])} |")
    return "\n".join(lines)


def confidence_markdown() -> str:
    """The segmentation confidence columns (default and li2022 sets alike): unit and definition."""
    from nmc_assets.features.columns import CONFIDENCE_COLUMNS

    lines = ["| column | definition | unit |", "| --- | --- | --- |"]
    lines += [f"| `{c}` | {_cell(COLUMN_DOCS[c]['description'])} | {COLUMN_DOCS[c]['unit']} |" for c in CONFIDENCE_COLUMNS]
    return "\n".join(lines)


def bugs_markdown() -> str:
    return "\n".join(f"- `{key}`: {text}" for key, text in FIXED_BUGS.items())


def values_markdown(values: pd.DataFrame) -> str:
    lines = ["| column | " + " | ".join(f"{s} default | {s} li2022" for s in SCENES) + " |",
             "| --- |" + " --- | --- |" * len(SCENES)]
    for c in VALUE_COLUMNS:
        cells = [f"{values.loc[(s, c), k]:.7g}" if stated(s, c) else "-" for s in SCENES for k in ("default", "li2022")]
        lines.append(f"| `{c}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_values(text: str) -> pd.DataFrame:
    """The values table of docs/features.md back as :func:`reference_values` gives it."""
    block = generated_block(text, "values")
    rows = []
    for line in block.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        col = cells[0].strip("`")
        for i, s in enumerate(SCENES):
            if stated(s, col):
                rows.append((s, col, float(cells[1 + 2 * i]), float(cells[2 + 2 * i])))
    return pd.DataFrame(rows, columns=["scene", "column", "default", "li2022"]).set_index(["scene", "column"])


def generated_block(text: str, name: str) -> str:
    m = re.search(rf"<!-- generated:{name} -->\n(.*?)<!-- /generated:{name} -->", text, re.S)
    if m is None:
        raise ValueError(f"{DOC}: generated block {name!r} is missing")
    return m.group(1).rstrip("\n")


def replace_block(text: str, name: str, body: str) -> str:
    generated_block(text, name)
    return re.sub(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)",
                  lambda m: m.group(1) + body + "\n" + m.group(2), text, flags=re.S)


def expected_ball_volume_um3(radius_vox: float) -> float:
    return 4 / 3 * math.pi * (radius_vox * VOXEL) ** 3


if __name__ == "__main__":
    text = DOC.read_text()
    text = replace_block(text, "definitions", definitions_markdown())
    text = replace_block(text, "bugs", bugs_markdown())
    text = replace_block(text, "confidence", confidence_markdown())
    text = replace_block(text, "values", values_markdown(reference_values()))
    DOC.write_text(text)
    print(f"wrote {DOC}")
