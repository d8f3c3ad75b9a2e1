"""The particle_features quality checks detect what they claim to."""

import numpy as np
import pyarrow as pa
import pytest

from nmc_assets.features import compute_particle_features
from nmc_assets.features.checks import nan_counts, row_count_matches, schema_problems
from nmc_assets.features.table import features_to_arrow
from nmc_assets_tests.features.constructed import ball_mask, phase_image


def _table():
    shape = (30, 30, 60)
    labels = np.zeros(shape, np.uint16)
    labels[ball_mask(shape, (15, 15, 15), 8)] = 1
    labels[ball_mask(shape, (15, 15, 45), 8)] = 2
    df = compute_particle_features(labels, phase_image(labels > 0), 0.5, scan_id="c", cycles=None)
    return labels, df


def test_checks_pass_on_good_table_and_fail_on_bad_ones():
    labels, df = _table()
    table = features_to_arrow(df)
    assert schema_problems(table.schema)["passed"]
    assert nan_counts(df) == {}
    assert row_count_matches(df["particle_id"], labels)["passed"]

    dropped = table.drop_columns(["contact"])
    r = schema_problems(dropped.schema)
    assert not r["passed"] and r["missing"] == ["contact"]
    plain = pa.Table.from_pandas(df, preserve_index=False)  # no field descriptions / units
    r = schema_problems(plain.schema)
    assert not r["passed"] and "volume_um3" in r["undocumented"]

    bad = df.copy()
    bad.loc[0, "damage"] = np.nan
    bad.loc[1, "sphericity"] = np.inf
    assert nan_counts(bad) == {"damage": 1, "sphericity": 1}
    assert nan_counts(df.drop(columns=["x_um"]))["x_um"] == -1

    more = labels.copy()
    more[0:2, 0:2, 0:2] = 7
    r = row_count_matches(df["particle_id"], more)
    assert not r["passed"] and r["rows"] == 2 and r["labels"] == 3



def test_distinct_labels_of_sparse_large_and_negative_values():
    from nmc_assets.features.checks import distinct_labels

    labels = np.zeros((70, 6, 5), np.int64)
    labels[3, 2, 2] = 7
    labels[40, 0, 0] = 2
    labels[69, 5, 4] = 7
    labels[50, 1, 1:4] = 2**40
    labels[10, 1, 1] = -4  # negative values are not particles
    np.testing.assert_array_equal(distinct_labels(labels), [2, 7, 2**40])
    np.testing.assert_array_equal(distinct_labels(labels.clip(0, 9).astype(np.uint16), slab=5), [2, 7, 9])
    assert distinct_labels(np.zeros((3, 4, 4), np.uint32)).size == 0
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 50, size=(9, 8, 7)).astype(np.uint32)
    np.testing.assert_array_equal(distinct_labels(noisy, slab=4), np.setdiff1d(np.unique(noisy), [0]))


def test_distinct_labels_with_solid_voxels_only():
    """The li2022 set has no row for a label without a voxel at or above the solid threshold."""
    from nmc_assets.features.checks import distinct_labels, row_count_matches

    labels = np.zeros((40, 5, 5), np.uint32)
    labels[2:5, 1:3, 1:3] = 3
    labels[30:33, 1:3, 1:3] = 8
    image = np.full(labels.shape, 200.0)
    image[labels == 8] = 50.0  # label 8 is all below the threshold (a void-only label)
    np.testing.assert_array_equal(distinct_labels(labels), [3, 8])
    np.testing.assert_array_equal(distinct_labels(labels, slab=7, image=image, min_intensity=100.0), [3])
    assert row_count_matches([3], labels, image=image, min_intensity=100.0)["passed"]
    assert not row_count_matches([3], labels)["passed"]
    assert not row_count_matches([3, 8], labels, image=image, min_intensity=100.0)["passed"]
    with pytest.raises(ValueError, match="image shape"):
        distinct_labels(labels, image=image[:3], min_intensity=100.0)
    with pytest.raises(ValueError, match="both"):
        distinct_labels(labels, image=image)
