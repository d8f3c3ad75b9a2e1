"""The feature table of a fixed scene stays what it was (regression guard for refactors of the engine).

``golden_crowded_scene.csv`` holds the table the engine computed at commit c09933e for
:func:`~nmc_assets_tests.features.constructed.crowded_scene`. It is reproduced bit for bit on the
machine that wrote it; the comparison allows 1e-9 relative, for other BLAS / SIMD builds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nmc_assets.features import FEATURE_COLUMNS, FeatureSettings, compute_particle_features
from nmc_assets.features import measure
from nmc_assets_tests.features.constructed import crowded_scene

GOLDEN = Path(__file__).with_name("golden_crowded_scene.csv")
VOXEL = 0.5  # um


@pytest.fixture(scope="module")
def scene():
    return crowded_scene()


def golden(case: str) -> pd.DataFrame:
    table = pd.read_csv(GOLDEN, dtype={"scan_id": "string", "cycles": "Int64"})
    return table[table["case"] == case].drop(columns="case").reset_index(drop=True)


def without_new_columns(df: pd.DataFrame) -> pd.DataFrame:
    """The columns the golden file has (``sphericity_std`` and the confidence columns came later; test_extract
    and segmentation/test_confidence.py check them)."""
    from nmc_assets.features.columns import CONFIDENCE_COLUMNS

    return df.drop(columns=["sphericity_std", *CONFIDENCE_COLUMNS])


def features(labels, intensity, gap=0, window_um=0.0):
    """The golden tables were written with geometric contact (``contact_window_um`` 0, the method then);
    test_contact.py covers the intensity-aware default."""
    return compute_particle_features(labels, intensity, VOXEL, scan_id="crowded", cycles=10,
                                     settings=FeatureSettings(contact_gap_vox=gap, contact_window_um=window_um))


@pytest.mark.parametrize("case,gap", [("gap0", 0), ("gap2", 2)])
def test_feature_table_equals_golden(scene, case, gap):
    df = features(*scene, gap=gap)
    assert list(df.columns) == FEATURE_COLUMNS
    assert df["particle_id"].tolist() == [2, 4, 9, 15, 21]
    pd.testing.assert_frame_equal(without_new_columns(df), golden(case), check_exact=False, rtol=1e-9, atol=0)
    # the scene exercises what it is meant to: contact, a crack, border particles
    assert (df["contact"] > 0).sum() == 2 and df["surface_inner_um2"].gt(0).sum() == 1
    assert df["touches_border"].tolist() == [True, False, False, False, True]


def test_one_particle_per_mosaic_equals_golden(scene, monkeypatch):
    """Every particle in its own mosaic: rows come back in particle order, and particles away from the
    border measure exactly as when packed together (the tile rim isolates them)."""
    monkeypatch.setattr(measure, "CHUNK_VOXELS", 1)
    df = features(*scene)
    pd.testing.assert_frame_equal(without_new_columns(df), golden("one_per_mosaic"), check_exact=False, rtol=1e-9,
                                  atol=0)
    packed = golden("gap0")
    inner = ~df["touches_border"].to_numpy()
    # the same up to floating-point round-off of the eigen solver (other BLAS / SIMD builds)
    pd.testing.assert_frame_equal(without_new_columns(df)[inner], packed[inner], check_exact=False, rtol=1e-12, atol=0)


def test_sparse_label_values_give_the_same_features(scene):
    """Label values far apart take the dense relabelling path; only ``particle_id`` changes."""
    labels, intensity = scene
    sparse = features(labels.astype(np.int64) * 1_000_003, intensity)
    dense = features(labels, intensity)
    assert sparse["particle_id"].tolist() == [v * 1_000_003 for v in dense["particle_id"]]
    pd.testing.assert_frame_equal(sparse.drop(columns="particle_id"), dense.drop(columns="particle_id"),
                                  check_exact=True)
