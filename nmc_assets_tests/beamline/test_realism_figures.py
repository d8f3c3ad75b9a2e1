"""Electrode mask, region figures and crack detector of nmc_assets.beamline.realism on constructed images."""

import numpy as np
import pytest

from nmc_assets.beamline import realism as R


def _electrode_image(rng):
    """300 x 400: rows 0-59 a particle-free band, a flat-grey wedge in the lower left, discs in binder."""
    img = 100 + 12 * rng.standard_normal((300, 400))
    yy, xx = np.mgrid[:300, :400]
    for cy in range(100, 300, 60):
        for cx in range(30, 400, 60):
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < 24 ** 2] = 190 + 8 * rng.standard_normal()
    img[:60] = 110 + 10 * rng.standard_normal((60, 400))
    wedge = xx < (yy - 200)
    img[wedge] = 99.0
    return np.clip(img, 0, 255).astype(np.uint8), wedge


def test_electrode_mask_finds_band_and_flat_region():
    img, wedge = _electrode_image(np.random.default_rng(0))
    m = R.electrode_mask(img, pixel_size_um=0.06, gap_um=2.0)
    assert m[wedge].mean() < 0.02                   # flat outside region (but its thin tip)
    assert m[:50].mean() < 0.05                     # particle-free band
    assert m[110:240, 40:380].mean() > 0.97         # electrode interior incl. binder between discs
    assert 0.55 < m.mean() < 0.8                   # band to the first discs (~25 %), wedge, border gaps


def test_region_figures_whole_field_and_region():
    img, wedge = _electrode_image(np.random.default_rng(1))
    x = R.scale01(img)
    whole = R.region_figures(x)
    assert whole["region_fraction"] == 1.0 and whole["spectrum_window"] == [300, 400]
    m = R.electrode_mask(img, 0.06, gap_um=2.0)
    elec = R.region_figures(R.scale01(img, m), m)
    assert elec["bright_fraction"] > whole["bright_fraction"]   # the band and wedge hold no particles
    assert elec["values"].size == m.sum()
    assert R.wasserstein(whole["values"], whole["values"]) == 0.0


def test_largest_rectangle():
    m = np.zeros((20, 30), bool)
    m[3:15, 5:25] = True
    m[0:20, 0:2] = True
    rs, cs = R.largest_rectangle(m)
    assert (rs.start, rs.stop, cs.start, cs.stop) == (3, 15, 5, 25)


@pytest.mark.parametrize("width", [3, 7])
def test_crack_width_and_contrast(width):
    rng = np.random.default_rng(2)
    px = 0.06
    yy, xx = np.mgrid[:200, :200]
    disc = (yy - 100) ** 2 + (xx - 100) ** 2 < 80 ** 2
    img = np.where(disc, 0.8, 0.3)
    crack = disc & (np.abs(xx - 100) < width / 2) & (np.abs(yy - 100) < 50)
    img[crack] = 0.4
    img = img + 0.02 * rng.standard_normal(img.shape)
    parts = R.particle_mask(img, px)
    f = R.crack_figures(img, px, 0.02, parts)
    assert f["width_um_q25_median_q75"][1] == pytest.approx(width * px, abs=1.01 * px)
    assert f["contrast_in_noise_units"] == pytest.approx(0.4 / 0.02, rel=0.35)
    assert f["components"] == 1
    truth = R.crack_figures(img, px, 0.02, parts, crack)
    assert truth["width_um_q25_median_q75"][1] == pytest.approx(width * px, abs=1e-6)


def test_downsample_like_table_shape():
    a = (np.arange(655 * 1024) % 251).reshape(655, 1024).astype(np.uint8)
    assert R.downsample_like_table(a, 0.3).shape == (196, 307)


def test_crack_mean_width_not_quantised():
    px = 0.1
    yy, xx = np.mgrid[:200, :200]
    disc = (yy - 100) ** 2 + (xx - 100) ** 2 < 80 ** 2
    crack = disc & (np.abs(xx - 100) < 2.5) & (np.abs(yy - 100) < 50)   # 5 px wide, 99 px long
    f = R.crack_figures(np.where(disc & ~crack, 0.8, 0.3), px, 0.02, disc, crack)
    assert f["mean_width_um"] == pytest.approx(0.5, rel=0.1)
    assert f["crack_fraction"] == pytest.approx(crack.sum() / disc.sum(), abs=1e-4)
