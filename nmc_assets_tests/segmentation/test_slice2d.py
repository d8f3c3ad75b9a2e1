"""The 2D path: full-resolution refinement of a slice (the 3D refinement on a one-slice volume), the
merging of pieces of one particle, and segment_image_2d's output grid."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from nmc_assets.segmentation.refine import particle_matrix_threshold, smooth_intensity
from nmc_assets.segmentation.slice2d import TWO_DISCS_SOLIDITY, contact_dips, merge_pieces, merge_shallow, refine_slice, touching_pixels


def _disk_image(shape=(96, 96), centre=(48, 48), radius=24.0, seed=0):
    yy, xx = np.indices(shape)
    truth = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2).astype(np.uint32)
    rng = np.random.default_rng(seed)
    image = ndi.gaussian_filter(np.where(truth > 0, 200.0, 60.0), 1.0) + rng.normal(0, 6, shape)
    return truth, image.astype(np.float32)


def _edge_offset(labels, truth):
    """Mean distance (px) of the label's outline pixels to the true outline."""
    outline = labels.astype(bool) & ~ndi.binary_erosion(labels.astype(bool))
    true_outline = truth.astype(bool) & ~ndi.binary_erosion(truth.astype(bool))
    return float(ndi.distance_transform_edt(~true_outline)[outline].mean())


def test_refine_slice_moves_a_shifted_boundary_onto_the_disk_edge():
    truth, image = _disk_image()
    shifted = np.roll(truth, 4, axis=1)  # the boundary 4 px off on both sides along x
    # 0.1 um pixels: band 0.4 um = 4 px, sigma 0.2 um = 2 px (converted as in the 3D path)
    refined, info = refine_slice(shifted, image, 0.1)
    assert (info["band_px"], info["sigma_px"]) == (4, 2.0)
    assert refined.shape == truth.shape and refined.dtype == np.uint32
    assert _edge_offset(shifted, truth) > 1.5
    assert _edge_offset(refined, truth) < 1.0
    iou = np.count_nonzero(refined & truth) / np.count_nonzero(refined | truth)
    assert iou > 0.95 > np.count_nonzero(shifted & truth) / np.count_nonzero(shifted | truth)
    assert 100 < info["threshold"] < 160


def test_refine_slice_places_a_contact_on_the_dark_gap_and_rejects_bad_input():
    yy, xx = np.indices((64, 120))
    truth = np.zeros((64, 120), np.uint32)
    truth[((yy - 32) ** 2 + (xx - 33) ** 2) <= 22**2] = 1
    truth[((yy - 32) ** 2 + (xx - 84) ** 2) <= 22**2] = 2  # a 7-px dark gap between the two
    image = ndi.gaussian_filter(np.where(truth > 0, 200.0, 60.0), 1.0).astype(np.float32)
    grown = np.where(xx < 62, 1, 2).astype(np.uint32) * ndi.binary_dilation(truth > 0, iterations=3)  # contact off the gap
    refined, _ = refine_slice(grown, image, 0.1)
    assert not touching_pixels(refined).any()  # the matrix gap became background
    for i in (1, 2):
        assert np.count_nonzero((refined == i) & (truth == i)) / np.count_nonzero((refined == i) | (truth == i)) > 0.95
    with pytest.raises(ValueError):
        refine_slice(grown[None], image[None], 0.1)


def _split_particle_and_pair():
    """A disk cut in two along x = 40 (no dip between the halves) and two half-disk particles facing
    each other across a 3-px dark gap (their union is as convex as one disk: only the dip tells them apart)."""
    yy, xx = np.indices((80, 200))
    one = ((yy - 40) ** 2 + (xx - 40) ** 2) <= 25**2
    two = ((yy - 40) ** 2 + (xx - 140) ** 2) <= 25**2
    image = np.where(one | two, 200.0, 60.0)
    image[np.abs(xx - 140) <= 1] = 60.0  # the two real particles meet across a dark line
    image = ndi.gaussian_filter(image, 1.0) + np.random.default_rng(1).normal(0, 5, image.shape)
    labels = np.zeros(image.shape, np.uint32)
    labels[one & (xx < 40)], labels[one & (xx >= 40)] = 1, 2
    labels[two & (xx < 140)], labels[two & (xx >= 140)] = 3, 4  # the labels touch across the dark line
    return labels, image.astype(np.float32)


def test_merge_pieces_joins_a_split_particle_but_not_two_particles_with_a_dark_gap():
    labels, image = _split_particle_and_pair()
    assert TWO_DISCS_SOLIDITY == pytest.approx(0.88, abs=0.005)
    threshold = particle_matrix_threshold(labels, image)
    merged, rows = merge_pieces(labels, image, threshold, sigma_px=1.0, near_px=4)
    assert [(r["a"], r["b"]) for r in rows] == [(1, 2)]
    assert rows[0]["dip"] < 0.2 and rows[0]["solidity"] > 0.95
    pair = [r for r in contact_dips(labels, smooth_intensity(image, 1.0), threshold, 4) if (r["a"], r["b"]) == (3, 4)][0]
    assert pair["dip"] > 0.5 and pair["solidity"] > 0.95  # convex together: the dip alone keeps them apart
    assert set(np.unique(merged)) == {0, 1, 3, 4}
    assert np.array_equal(merged == 1, (labels == 1) | (labels == 2))
    assert np.array_equal(merged == 3, labels == 3) and np.array_equal(merged == 4, labels == 4)


def test_merge_pieces_keeps_bright_touching_discs_apart_by_their_waist():
    """Two round particles pressed together with no dark line: no dip, but their union has a waist."""
    yy, xx = np.indices((60, 120))
    a, b = ((yy - 30) ** 2 + (xx - 35) ** 2) <= 22**2, ((yy - 30) ** 2 + (xx - 78) ** 2) <= 22**2
    labels = np.where(a, 1, np.where(b, 2, 0)).astype(np.uint32)
    image = ndi.gaussian_filter(np.where(a | b, 200.0, 60.0), 1.0).astype(np.float32)
    merged, rows = merge_pieces(labels, image, 130.0, sigma_px=1.0, near_px=4)
    assert rows == [] and np.array_equal(merged, labels)


def test_segment_image_2d_refined_labels_have_the_input_shape():
    """The shipped model on a small crop-like image: labels of the input grid with refinement on (and off)."""
    pytest.importorskip("stardist")
    from nmc_assets.segmentation.model import DEFAULT_MODEL_NAME, shipped_model_dir
    from nmc_assets.segmentation.pipeline import segment_image_2d

    yy, xx = np.indices((150, 170))
    image = np.full(yy.shape, 60.0)
    for cy, cx in ((50, 50), (60, 120), (115, 80)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 28**2] = 200.0
    image = (ndi.gaussian_filter(image, 1.5) + np.random.default_rng(0).normal(0, 8, image.shape)).astype(np.float32)
    labels, info = segment_image_2d(shipped_model_dir(DEFAULT_MODEL_NAME), image, 0.1)
    assert labels.shape == image.shape and labels.dtype == np.uint32
    assert info["refined"] and info["refinement"]["band_px"] == 4
    assert 1 <= info["n_objects"] == int(labels.max()) and set(np.unique(labels)) == set(range(labels.max() + 1))
    plain, pinfo = segment_image_2d(shipped_model_dir(DEFAULT_MODEL_NAME), image, 0.1, refine=False)
    assert plain.shape == image.shape and not pinfo["refined"]


def test_merge_shallow_joins_seeds_without_a_saddle_of_h_and_keeps_deep_ones():
    """Three labels along a ridge: 1 | 2 meet at a saddle 0.05 below 2's peak, 2 | 3 at one 0.4 below."""
    x = np.arange(90, dtype=np.float32)
    profile = np.interp(x, [0, 15, 30, 45, 60, 75, 89], [0.2, 0.9, 0.85, 0.9, 0.5, 0.9, 0.2])
    landscape = np.repeat(profile[None], 20, axis=0)
    labels = np.repeat(np.where(x < 30, 1, np.where(x < 60, 2, 3))[None], 20, axis=0).astype(np.uint32)
    merged, n = merge_shallow(labels, landscape, 0.1)
    assert n == 1 and set(np.unique(merged)) == {1, 3}
    assert np.array_equal(merged == 1, labels <= 2)
    assert merge_shallow(labels, landscape, 0.01)[1] == 0  # shallower than any saddle: nothing merges
    assert merge_shallow(labels, landscape, 0.5)[1] == 2  # deeper than both: one particle
