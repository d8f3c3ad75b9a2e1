"""docs/features.md says what the code does: definitions from columns.py, values on analytic bodies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nmc_assets_tests.features import analytic


@pytest.fixture(scope="module")
def values():
    return analytic.reference_values()


def test_definitions_and_bugs_in_the_document_are_the_code_s():
    text = analytic.DOC.read_text()
    assert analytic.generated_block(text, "definitions") == analytic.definitions_markdown()
    assert analytic.generated_block(text, "bugs") == analytic.bugs_markdown()
    assert analytic.generated_block(text, "confidence") == analytic.confidence_markdown()


def test_stated_values_are_what_the_code_gives(values):
    stated = analytic.parse_values(analytic.DOC.read_text())
    assert len(stated) == 4 * 24 - 3 * 3  # every value column of 4 scenes, 9 undefined angles omitted
    got = values.loc[stated.index]
    for col in ("default", "li2022"):
        np.testing.assert_allclose(got[col].to_numpy(), stated[col].to_numpy(), rtol=1e-6, atol=1e-12,
                                   err_msg=col)


def test_ball(values):
    v = values.loc["ball"]
    true_volume = analytic.expected_ball_volume_um3(16)
    for s in ("default", "li2022"):
        assert v.loc["volume_um3", s] == pytest.approx(true_volume, rel=0.005)  # closing adds nothing
        assert v.loc["damage", s] == 0 and v.loc["contact", s] == 0 and v.loc["surface_inner_um2", s] == 0
        assert v.loc["rough_inner", s] == 1 and v.loc["elongation", s] == pytest.approx(1, abs=0.005)
    assert 0.96 < v.loc["sphericity", "default"] < 0.99  # digital ball, marching-cubes area
    assert 1.9 < v.loc["sphericity", "li2022"] < 2.05  # boundary-voxel count is ~0.79 of the area
    assert v.loc["surface_outer_um2", "li2022"] / v.loc["surface_outer_um2", "default"] == pytest.approx(0.79, abs=0.02)
    assert v.loc["vs_ratio", "default"] == pytest.approx((36 * math.pi) ** (-1 / 6), rel=0.01)
    assert v.loc["rough_outer", "default"] > 1 > v.loc["rough_outer", "li2022"]  # opposite directions
    assert v.loc["homogeneity", "default"] == math.inf and v.loc["homogeneity", "li2022"] == 0  # 1/std vs std


def test_rotated_ellipsoid(values):
    v = values.loc["ellipsoid"]
    for s in ("default", "li2022"):
        assert v.loc["elongation", s] == pytest.approx(20 / 8, rel=0.01)
        for col, angle in (("yaw_deg", 30), ("pitch_deg", 20), ("roll_deg", 10)):
            assert v.loc[col, s] == pytest.approx(angle, abs=0.5)
        assert v.loc["volume_um3", s] == pytest.approx(4 / 3 * math.pi * 20 * 13 * 8 * 0.5**3, rel=0.01)
    assert v.loc["sphericity", "default"] == pytest.approx(0.72, abs=0.01)  # exact ellipsoid: 0.7253


def test_ball_with_a_planar_crack(values):
    v, intact = values.loc["cracked_ball"], values.loc["ball"]
    labels, solid = analytic.scene("cracked_ball")
    crack_fraction = 1 - solid.sum() / (labels > 0).sum()
    for s in ("default", "li2022"):
        assert v.loc["damage", s] == pytest.approx(crack_fraction, rel=1e-9)
        assert v.loc["surface_inner_um2", s] > 0.8 * 2 * math.pi * (12 * 0.5) ** 2  # both crack faces
        assert v.loc["volume_um3", s] == intact.loc["volume_um3", s]
    assert v.loc["sphericity", "default"] == intact.loc["sphericity", "default"]  # outer surface only
    assert v.loc["sphericity", "li2022"] < 0.4 * intact.loc["sphericity", "li2022"]  # counts the crack
    assert v.loc["rough_inner", "default"] > 1 > v.loc["rough_inner", "li2022"]


def test_two_touching_balls(values):
    v = values.loc["touching_balls"]
    for s in ("default", "li2022"):
        assert 0 < v.loc["contact", s] < 0.1
        assert v.loc["dist_nearest_um", s] == pytest.approx(23 * 0.5, abs=0.01)
    assert v.loc["contact", "li2022"] > v.loc["contact", "default"]  # a 10-voxel ring sees more than faces
    # one neighbour: std over one value is 0 with ddof 0 (default), undefined with N - 1 (li2022)
    for col in ("elong_std", "volume_std", "sphericity_std"):
        assert v.loc[col, "default"] == 0 and math.isnan(v.loc[col, "li2022"])
