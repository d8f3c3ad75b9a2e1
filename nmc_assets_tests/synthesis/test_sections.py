import json

import numpy as np
import pytest

from nmc_assets.synthesis.sections import (
    Section,
    critic_images,
    descriptor_distances,
    descriptor_samples,
    label_boundary_map,
    read_sections,
    section_grain_table,
    write_sections,
)


def _two_bars() -> np.ndarray:
    """A 61x61 particle with a radial bar (right of centre, along the row... col axis) and a tangential bar."""
    lab = np.zeros((61, 61), np.uint16)
    rr, cc = np.indices(lab.shape)
    lab[(rr - 30) ** 2 + (cc - 30) ** 2 <= 29**2] = 3
    lab[28:33, 40:58] = 1  # elongated along the col axis, centred on the row of the centre: radial
    lab[5:10, 21:40] = 2  # elongated along the col axis, above the centre: tangential
    return lab


def test_grain_table_areas_aspect_and_radial_angles():
    t = section_grain_table(Section(_two_bars(), 0.1)).set_index("grain")
    assert t.loc[1, "area_um2"] == pytest.approx(5 * 18 * 0.01)
    assert t.loc[1, "aspect_ratio"] > 3
    assert t.loc[1, "radial_angle_deg"] < 5
    assert t.loc[2, "radial_angle_deg"] > 80


def test_descriptor_samples_and_distances():
    a = descriptor_samples([Section(_two_bars(), 0.1)] * 3)
    assert list(a["grains_per_section"]) == [3, 3, 3]
    assert len(a["area_um2"]) == 9
    d = descriptor_distances(a, a)
    assert all(v == 0 for v in d.values())
    b = descriptor_samples([Section(_two_bars(), 0.2)])
    assert descriptor_distances(a, b)["area_um2"] > 0


def test_boundary_map_matches_soft_version_for_one_hot():
    import torch

    from nmc_assets.particles.soft_tessellation import soft_boundary_map

    lab = _two_bars()
    hard = label_boundary_map(lab)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(lab.astype(np.int64)), 4).permute(2, 0, 1).double()
    onehot[0] = 0  # background has no grain
    soft = soft_boundary_map(onehot, torch.as_tensor(lab > 0)).numpy()
    np.testing.assert_allclose(soft, hard, atol=1e-6)
    assert hard.max() > 0 and hard[lab == 0].max() == 0
    imgs = critic_images([Section(lab, 0.1)], 32)
    assert imgs.shape == (1, 2, 32, 32) and imgs[0, 1].max() == 1


def test_write_read_roundtrip_and_errors(tmp_path):
    secs = [Section(_two_bars(), 0.1, "a"), Section(_two_bars(), 0.15, "b")]
    write_sections(tmp_path / "s", secs, {"manifest.json": {"n": 2}})
    back = read_sections(tmp_path / "s")
    assert [s.name for s in back] == ["a", "b"] and back[1].pixel_size_um == 0.15
    np.testing.assert_array_equal(back[0].labels, secs[0].labels)

    import tifffile

    bad = tmp_path / "bad"
    bad.mkdir()
    tifffile.imwrite(bad / "x.tif", np.zeros((3, 4, 4), np.uint16))
    (bad / "x.json").write_text(json.dumps({"pixel_size_um": 0.1}))
    with pytest.raises(ValueError, match="x.tif.*2D"):
        read_sections(bad)
    tifffile.imwrite(bad / "x.tif", _two_bars())
    (bad / "x.json").unlink()
    with pytest.raises(ValueError, match="missing sidecar"):
        read_sections(bad)
    (bad / "x.json").write_text(json.dumps({"pixel_size_um": -1}))
    with pytest.raises(ValueError, match="pixel_size_um must be positive"):
        read_sections(bad)


def test_centre_crop_puts_the_centre_at_the_window_centre():
    from nmc_assets.synthesis.sections import centre_crop

    img = np.zeros((40, 40), np.float32)
    img[20, 21] = 1.0
    for size in (8, 9):
        out = centre_crop(img, (20.0, 21.0), size)
        r, c = np.argwhere(out)[0]
        assert abs(r - (size - 1) / 2) <= 0.5 and abs(c - (size - 1) / 2) <= 0.5
    # mean offset over sub-pixel centres is ~0 (no half-pixel bias against the generated canvases)
    offs = [np.argwhere(centre_crop(img, (20.0 + f, 21.0 + f), 8))[0][0] - 3.5 + f for f in np.linspace(-0.49, 0.49, 50)]
    assert abs(np.mean(offs)) < 0.05
    # the window clips at the image border with zero padding
    assert centre_crop(img, (0.0, 0.0), 8).shape == (8, 8)


def test_grain_moments_equal_regionprops(observed_sections):
    """The bincount moments give regionprops' area, centroid, axes and orientation (float tolerance)."""
    from skimage.measure import regionprops_table

    from nmc_assets.synthesis.sections import grain_moments

    square = np.zeros((9, 9), np.uint16)
    square[2:6, 3:7] = 5  # a square: equal variances, no covariance (regionprops' a == c branch)
    square[7, 1:8] = 2    # a one-pixel-thick bar: minor axis 0
    for labels in [s.labels for s in observed_sections[:6]] + [square]:
        ref = regionprops_table(labels.astype(np.int32), properties=(
            "label", "area", "centroid", "orientation", "axis_major_length", "axis_minor_length"))
        got = grain_moments(labels)
        np.testing.assert_array_equal(got["label"], ref["label"])
        np.testing.assert_allclose(got["area"], ref["area"])
        np.testing.assert_allclose(got["centroid"], np.stack([ref["centroid-0"], ref["centroid-1"]], 1), atol=1e-9)
        np.testing.assert_allclose(got["major"], ref["axis_major_length"], atol=1e-7)
        np.testing.assert_allclose(got["minor"], ref["axis_minor_length"], atol=1e-6)
        elongated = got["major"] > got["minor"] * (1 + 1e-6)  # orientation is defined up to pi for these
        d = np.angle(np.exp(2j * (got["orientation"] - ref["orientation"])))[elongated]
        np.testing.assert_allclose(d, 0, atol=1e-7)
    assert grain_moments(square)["orientation"][1] == pytest.approx(-np.pi / 4)  # a == c, b == 0
