import math

import numpy as np
import pytest

from nmc_assets.ebsd.grains import GrainSettings, fill_from_neighbours, neighbour_disorientations, quality_mask, rebuild_grains
from nmc_assets.ebsd.maps import EbsdError
from nmc_assets_tests.ebsd.conftest import two_grain_map


@pytest.mark.parametrize("min_size, expected", [(0, 141), (10, 109), (100, 76)])
def test_grains_agree_with_defdap(shared_ebsd, min_size, expected):
    from nmc_assets.ebsd.readers import read_map
    from nmc_assets.segmentation.metrics import match_instances

    m = read_map(shared_ebsd / "defdap" / "testDataEBSD.cpr")
    labels = rebuild_grains(m, GrainSettings(threshold_deg=5, min_grain_size=min_size))
    ref = np.load(shared_ebsd / "defdap" / f"ebsd_grains_5deg_{min_size}.npz")["grains"]
    ref = np.where(ref > 0, ref, 0)  # DefDAP: -2 = grain below the minimum size
    assert labels.max() == expected == ref.max()
    r = match_instances(ref, labels, (0.9,))[0.9]
    assert r["tp"] >= 0.95 * expected and r["fp"] == 0
    np.testing.assert_array_equal(labels, ref)  # same grains, same numbering (row-major first point)


def test_symmetry_equivalent_orientations_are_one_grain():
    # a turn about the crystal's [001] (Bunge phi2) by a symmetry angle gives the same crystal: one grain
    one = GrainSettings(min_grain_size=0)
    a, b = 0.3, 0.4
    assert rebuild_grains(two_grain_map([a, b, 0.5], [a, b, 0.5 + math.pi / 2]), one).max() == 1  # cubic 4-fold
    assert rebuild_grains(two_grain_map([a, b, 0.5], [a, b, 0.5 + math.radians(30)]), one).max() == 2
    # NMC (-3m): 120 degrees about c is symmetric, 60 degrees is not (it would be in 6/mmm)
    assert rebuild_grains(two_grain_map([a, b, 0.5], [a, b, 0.5 + 2 * math.pi / 3], "-3m"), one).max() == 1
    assert rebuild_grains(two_grain_map([a, b, 0.5], [a, b, 0.5 + math.pi / 3], "-3m"), one).max() == 2
    assert rebuild_grains(two_grain_map([a, b, 0.5], [a, b, 0.5 + math.pi / 3], "6/mmm"), one).max() == 1
    # the same turn about the sample's z (phi1) is a real rotation of the crystal
    assert rebuild_grains(two_grain_map([a, b, 0.5], [a + math.pi / 2, b, 0.5]), one).max() == 2


def test_disorientation_angles_and_threshold():
    m = two_grain_map([0, 0, 0], [math.radians(7), 0, 0])
    dx, dy = neighbour_disorientations(m)
    assert dx.shape == (12, 15) and dy.shape == (11, 16)
    np.testing.assert_allclose(dx[:, 7], 7.0, atol=1e-6)
    assert np.abs(np.delete(dx, 7, axis=1)).max() < 1e-4 and np.abs(dy).max() < 1e-4
    assert rebuild_grains(m, GrainSettings(threshold_deg=8, min_grain_size=0)).max() == 1
    assert rebuild_grains(m, GrainSettings(threshold_deg=5, min_grain_size=0)).max() == 2


def test_unindexed_low_quality_and_small_grains_are_not_grains():
    m = two_grain_map([0, 0, 0], [math.radians(30), 0, 0])
    m.quality["ci"] = np.full(m.shape, 0.5)
    m.quality["ci"][:, 0] = 0.05  # low confidence column
    m.phase_id[0, :] = 0  # unindexed row
    m.euler_rad[5, 3] = [1.0, 1.0, 1.0]  # a one-point grain
    lab = rebuild_grains(m, GrainSettings(min_grain_size=2, min_confidence=0.1))
    assert lab.max() == 2
    assert (lab[0] == 0).all() and (lab[:, 0] == 0).all() and lab[5, 3] == 0
    assert rebuild_grains(m, GrainSettings(min_grain_size=0, min_confidence=0.1)).max() == 3
    filled = fill_from_neighbours(lab, np.ones(m.shape, bool))
    assert (filled > 0).all() and filled[5, 3] == lab[5, 2] and filled[0, 10] == lab[1, 10]
    m.phase_id[:] = 0
    with pytest.raises(EbsdError, match="test.ang: no point left"):
        rebuild_grains(m)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="threshold_deg"):
        GrainSettings(threshold_deg=0)
    with pytest.raises(ValueError, match="min_grain_size"):
        GrainSettings(min_grain_size=-1)


def test_fast_neighbour_test_equals_thresholded_disorientations(virtual_dir):
    from nmc_assets.ebsd.grains import neighbour_connected
    from nmc_assets.ebsd.readers import read_map

    m = read_map(virtual_dir / "hex" / "virtual_0001.ang")
    dx, dy = neighbour_disorientations(m)
    for thr in (2.0, 5.0, 15.0):
        cx, cy = neighbour_connected(m, m.indexed, thr)
        np.testing.assert_array_equal(cx, dx <= thr)
        np.testing.assert_array_equal(cy, dy <= thr)


def test_oxford_quality_figures_mask_points(shared_ebsd):
    from nmc_assets.ebsd.grains import quality_mask
    from nmc_assets.ebsd.readers import read_map

    m = read_map(shared_ebsd / "defdap" / "testDataEBSD.crc")  # the .crc names its .cpr
    mad, bc = m.quality["mad"], m.quality["bc"]
    assert quality_mask(m, GrainSettings()).all()  # MAD and band-contrast thresholds are off by default
    thr_mad, thr_bc = float(np.percentile(mad, 90)), float(np.percentile(bc, 10))
    keep = quality_mask(m, GrainSettings(max_mad_deg=thr_mad, min_band_contrast=thr_bc))
    np.testing.assert_array_equal(keep, (mad <= thr_mad) & (bc >= thr_bc))
    assert 0.7 < keep.mean() < 0.9
    lab = rebuild_grains(m, GrainSettings(max_mad_deg=thr_mad, min_band_contrast=thr_bc, min_grain_size=0))
    assert (lab[~keep] == 0).all() and (lab[keep] > 0).all()


def test_majority_fill_restores_a_boundary_that_nearest_fill_leaves_ragged():
    truth = np.where(np.arange(24)[None, :] < 12, 1, 2).repeat(24, axis=0)
    rng = np.random.default_rng(0)
    gaps = np.zeros(truth.shape, bool)
    gaps[:, 11:13] = rng.random((24, 2)) < 0.3  # misindexed points along the boundary, both sides
    gaps[5, 3] = gaps[17, 20] = True  # and inside the grains
    measured = np.where(gaps, 0, truth)
    region = np.ones(truth.shape, bool)
    region[:, 0] = False
    majority = fill_from_neighbours(measured, region)
    nearest = fill_from_neighbours(measured, region, method="nearest")
    assert (majority[:, 0] == 0).all() and (majority[region] > 0).all()
    assert (majority[region] != truth[region]).sum() <= 1 < (nearest[region] != truth[region]).sum()
    assert majority[5, 3] == 1 and majority[17, 20] == 2
    np.testing.assert_array_equal(fill_from_neighbours(measured, region, radius_px=1)[5, 3], 1)
    with pytest.raises(ValueError, match="fill method"):
        fill_from_neighbours(measured, region, method="mode")


def test_low_quality_points_join_the_grain_of_their_orientation():
    from nmc_assets.ebsd.grains import join_by_orientation
    from nmc_assets.ebsd.particles import mean_orientations

    m = two_grain_map([0, 0, 0], [math.radians(30), 0, 0])  # left / right halves, 30 deg apart
    m.quality["ci"] = np.full(m.shape, 0.5)
    m.quality["ci"][3:6, 7] = 0.05  # low confidence, left grain's orientation, at the boundary
    m.quality["ci"][8, 8] = 0.05
    m.euler_rad[8, 8] = [math.radians(29), 0, 0]  # right grain's orientation (1 deg off)
    m.quality["ci"][10, 7] = 0.05
    m.euler_rad[10, 7] = [1.0, 1.0, 1.0]  # misindexed: no grain within 5 deg
    s = GrainSettings(min_confidence=0.1, min_grain_size=0)
    keep = quality_mask(m, s)
    grains = rebuild_grains(m, s, keep)
    quats, phase_of = mean_orientations(m, grains, int(grains.max()))
    joined = join_by_orientation(m, grains, ~keep, quats, phase_of, 5.0)
    assert (joined[3:6, 7] == grains[0, 0]).all() and joined[8, 8] == grains[0, -1] and joined[10, 7] == 0
    np.testing.assert_array_equal(joined[keep], grains[keep])
    assert (join_by_orientation(m, grains, ~keep, quats, phase_of, 0.5)[8, 8]) == 0
