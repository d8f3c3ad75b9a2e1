"""The compiled kernels of feature extraction equal the library operations they replace."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from nmc_assets.features._morphology_kernels import fill_holes_excluding
from nmc_assets.features.surfaces import gaussian_smooth, gaussian_weights, isosurface_area_per_z
from nmc_assets.features.threshold import percentile


def _skimage_area(field, level, mask=None):
    from skimage.measure import marching_cubes, mesh_surface_area

    verts, faces, _, _ = marching_cubes(field, level, mask=mask, allow_degenerate=True)
    return mesh_surface_area(verts, faces)


@pytest.mark.parametrize("sigma", [1.2, 3.0])  # 1.2: many ambiguous cubes
@pytest.mark.parametrize("use_mask", [False, True])
def test_marching_cubes_area_equals_skimage(sigma, use_mask):
    rng = np.random.default_rng(3)
    field = ndimage.gaussian_filter(rng.random((30, 26, 34)), sigma).astype(np.float32)
    level = float(np.median(field))
    mask = (ndimage.gaussian_filter(rng.random(field.shape), 2.0) > 0.5) if use_mask else None
    tiles = np.repeat([0, 1, 2], 10)
    ours = np.bincount(tiles, weights=isosurface_area_per_z(field, level, mask=mask), minlength=3)
    assert ours.sum() == pytest.approx(_skimage_area(field, level, mask), rel=1e-5)
    # per tile: the cubes whose lower corner lies in the tile's z range
    for t in range(3):
        lo, hi = 10 * t, min(10 * t + 11, field.shape[0])
        sub_mask = None if mask is None else mask[lo:hi]
        assert ours[t] == pytest.approx(_skimage_area(field[lo:hi], level, sub_mask), rel=1e-5)


def test_hole_filling_equals_binary_fill_holes():
    rng = np.random.default_rng(4)
    mask = ndimage.gaussian_filter(rng.random((40, 30, 30)), 1.5) > 0.5
    mask[5:15, 5:15, 5:15] = True
    mask[8:12, 8:12, 8:12] = False  # an enclosed cavity
    other = np.zeros_like(mask)
    other[9, 9, 9] = True  # another label inside the cavity stays out
    filled = mask.astype(np.uint8)
    fill_holes_excluding(filled, other.view(np.uint8))
    expected = ndimage.binary_fill_holes(mask) & ~other
    assert np.array_equal(filled.view(bool), expected)
    assert filled[10, 10, 10] == 1 and filled[9, 9, 9] == 0


@pytest.mark.parametrize("sigma", [0.7, 1.0])
def test_gaussian_equals_scipy(sigma):
    rng = np.random.default_rng(5)
    volume = rng.random((12, 9, 15)).astype(np.float32)
    volume[:, 3:5] = 0  # rows that are skipped as provably zero
    ours = gaussian_smooth(volume, sigma)
    np.testing.assert_allclose(ours, ndimage.gaussian_filter(volume, sigma, truncate=3.0), atol=2e-7)
    rows = np.zeros(volume.shape[:2], bool)
    rows[4:7, 2:6] = True
    partial = gaussian_smooth(volume, sigma, rows=rows)
    np.testing.assert_allclose(partial[rows], ours[rows], atol=1e-7)
    assert not partial[~rows].any()


def test_percentile_equals_numpy():
    rng = np.random.default_rng(6)
    for n in (1, 2, 7, 1000):
        values = np.round(rng.normal(size=n), 1).astype(np.float32)  # ties included
        for q in (0.0, 10.0, 50.0, 100.0):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), abs=1e-6)


@pytest.mark.parametrize("sigma", [0.3, 0.7, 1.0, 2.5])
def test_gaussian_weights_are_scipys_bit_for_bit(sigma):
    """The weights equal those of ``ndimage.gaussian_filter`` (its response to a unit impulse)."""
    weights = gaussian_weights(sigma)
    r = int(3.0 * sigma + 0.5)
    impulse = np.zeros(2 * r + 1)
    impulse[r] = 1.0
    assert weights.shape == (2 * r + 1,) and weights.sum() == pytest.approx(1.0)
    assert weights.tobytes() == ndimage.gaussian_filter1d(impulse, sigma, truncate=3.0, mode="constant").tobytes()


def _smooth3_reference(volume, weights):
    """Separable correlation along x, then y, then z ("reflect" edges), float64 sums in the kernel's
    order and float32 after each pass: what the compiled pass computes, in numpy."""
    r = len(weights) // 2
    out = volume.astype(np.float32)
    for axis in (2, 1, 0):
        width = [(r, r) if a == axis else (0, 0) for a in range(3)]
        padded = np.pad(out, width, mode="symmetric").astype(np.float64)
        acc = np.zeros(out.shape)
        for t, w in enumerate(weights):
            acc += w * np.take(padded, np.arange(t, t + out.shape[axis]), axis=axis)
        out = acc.astype(np.float32)
    return out


def test_smooth3_rows_equals_the_separable_reference_on_the_requested_rows_and_is_zero_elsewhere():
    from nmc_assets.features._filter_kernels import smooth3_rows

    rng = np.random.default_rng(0)
    volume = np.zeros((20, 24, 28), np.float32)
    volume[5:12, 6:15, 3:20] = rng.random((7, 9, 17))
    weights = np.array([0.25, 0.5, 0.25])
    need = (rng.random((20, 24)) < 0.3).astype(np.uint8)
    full, rows = _smooth3_reference(volume, weights), smooth3_rows(volume, weights, need)
    m = need.astype(bool)
    np.testing.assert_array_equal(rows[m], full[m])
    assert not rows[~m].any() and full[m].any()
    np.testing.assert_array_equal(smooth3_rows(volume, weights, np.ones_like(need)), full)
