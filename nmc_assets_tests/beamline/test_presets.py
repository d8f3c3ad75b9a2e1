"""The named presets: ``default`` is the ScanConfig defaults (byte-identical scans), ``hard`` meets its numbers."""

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage as ndi

from nmc_assets.beamline.cli import main as cli_main
from nmc_assets.beamline.damage import DamageLaw, DamageOverride
from nmc_assets.beamline.defaults import PRESETS, preset_config
from nmc_assets.beamline.render import RenderParams, render_image
from nmc_assets.beamline.simulate import ScanConfig, simulate_scan

HARD = PRESETS["hard"]


@pytest.fixture(scope="module")
def hard_scan():
    """A small hard scan: 64 x 160 x 160 at 0.2 um (12.8 x 32 x 32 um), 50 cycles, about 60 particles."""
    return simulate_scan(preset_config("hard", shape=(64, 160, 160), voxel_size_um=0.2, cycles=50, seed=1))


def test_default_preset_is_the_default_config():
    assert preset_config() == ScanConfig()
    assert preset_config("default", seed=3, cycles=10) == ScanConfig(seed=3, cycles=10)
    hard = preset_config("hard", seed=3)
    assert hard.seed == 3 and hard.target_solid_fraction == 0.60 and hard.damage_override == DamageOverride(0.1, 0.4, 2.5)
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("easy")
    with pytest.raises(ValueError, match="target_solid_fraction"):
        ScanConfig(target_solid_fraction=0.8)


def test_damage_override_keeps_the_ranking():
    law = DamageLaw()
    rng = np.random.default_rng(0)
    d, z, c = rng.uniform(5, 12, 5000), rng.random(5000), rng.uniform(0, 0.4, 5000)
    base, _ = law.sample(np.random.default_rng(1), d, z, c, 50)
    out = DamageOverride(mean=0.1, max=0.4).apply(np.random.default_rng(2), base)
    assert out.mean() == pytest.approx(0.1, abs=0.004)
    assert out.max() <= 0.4 and 0.35 < out.max() and 0.02 < (out > 0.3).mean() < 0.07
    assert np.array_equal(np.argsort(out, kind="stable"), np.argsort(base, kind="stable"))
    with pytest.raises(ValueError):
        DamageOverride(mean=0.5, max=0.4)
    with pytest.raises(ValueError):
        DamageOverride(concentration=0)


def test_hard_solid_fraction_and_sidecar(hard_scan):
    side = hard_scan.sidecar
    assert side["solid_fraction"] == pytest.approx(0.60, abs=0.02)
    assert side["packing"]["target_solid_fraction"] == 0.60 and side["packing"]["overlap"] == 0.08
    assert side["damage_override"]["mean"] == 0.1 and side["damage_override"]["max"] == 0.4
    assert side["render_params"]["phase_cbd"] == 0.69


def test_hard_damage_distribution(hard_scan):
    t = hard_scan.truth
    assert t.damage_target.max() <= 0.4
    assert t.damage.mean() == pytest.approx(0.1, abs=0.02)
    assert 0.25 < t.damage.max() <= 0.43
    big = t.volume_um3 > 30
    assert np.abs(t.damage - t.damage_target)[big].max() < 0.03  # cracking meets the (larger) targets
    law = DamageLaw().expected(t.law_diameter_um, t.law_z_norm, t.law_contact, 50)
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    assert np.corrcoef(rank(t.damage_target), rank(law))[0, 1] > 0.8  # the drivers still rank the damage


def _interior_median(image, mask):
    return float(np.median(image[ndi.binary_erosion(mask, iterations=2)]))


def test_hard_binder_contrast_is_half(hard_scan):
    """Grey contrast NMC - binder in the scan's interiors, hard render against the default render of the same phases."""
    c = hard_scan.classes[:32]
    nmc, cbd = c == 2, c == 1

    def contrast(render):
        img = render_image(np.random.default_rng(5), c, 0.2, render)
        return _interior_median(img, nmc) - _interior_median(img, cbd)

    ratio = contrast(HARD["render"]) / contrast(RenderParams())
    assert ratio == pytest.approx(0.5, abs=0.06)
    # the scan's own image agrees with its render
    img = hard_scan.image[:32]
    assert _interior_median(img, nmc) - _interior_median(img, cbd) == pytest.approx(contrast(HARD["render"]), abs=4)


def test_hard_binder_is_lumpier():
    """Binder-only volume: grey sd of the binder texture, hard against default (texture sd x phase_cbd)."""
    c = np.ones((32, 96, 96), np.uint8)
    quiet = dict(noise_sd=0.0, ring_count=0, cupping=0.0, drift_amplitude=0.0)
    sd = {}
    for name, r in (("default", RenderParams()), ("hard", HARD["render"])):
        img = render_image(np.random.default_rng(0), c, 0.2, replace(r, **quiet)).astype(float)
        sd[name] = img.std() / r.grey_gain / r.phase_cbd
    assert sd["hard"] == pytest.approx(0.35, rel=0.25) and sd["default"] == pytest.approx(0.3, rel=0.25)


def _noise(render, classes, vs):
    """Noise of a render: the image less the same render without noise (same draws), in phase units."""
    a = render_image(np.random.default_rng(5), classes, vs, render).astype(float)
    b = render_image(np.random.default_rng(5), classes, vs, replace(render, noise_sd=0.0)).astype(float)
    return (a - b) / render.grey_gain


@pytest.mark.parametrize("vs", [0.2, 0.07])
def test_hard_noise_sd_and_correlation(hard_scan, vs):
    r = HARD["render"]
    classes = hard_scan.classes[:24, :96, :96]
    n = _noise(r, classes, vs)
    want_sd = r.noise_sd * min(1.0, r.noise_ref_voxel_um / vs) ** 0.5
    assert n.std() == pytest.approx(want_sd, rel=0.1)
    assert n.std() / _noise(RenderParams(), classes, vs).std() == pytest.approx(2.0, rel=0.1)
    # lag-1 autocorrelation of Gaussian-filtered white noise: exp(-1 / (4 sigma^2)), sigma in voxels
    lag1 = np.mean([np.corrcoef(np.moveaxis(n, a, 0)[:-1].ravel(), np.moveaxis(n, a, 0)[1:].ravel())[0, 1] for a in range(3)])
    sigma = r.noise_scale_um / vs
    assert lag1 == pytest.approx(np.exp(-1 / (4 * sigma**2)), abs=0.08)


def test_cli_preset(tmp_path, capsys):
    rc = cli_main(["simulate", "--out", str(tmp_path), "--shape", "24", "64", "64", "--voxel-size", "0.25",
                   "--cycles", "10", "--seed", "2", "--preset", "hard"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scan_id"] == "virtual_hard_c10_s2"
    side = json.loads((tmp_path / "virtual_hard_c10_s2.json").read_text())
    assert side["damage_override"]["max"] == 0.4 and side["render_params"]["noise_sd"] == 0.09
    with pytest.raises(SystemExit):
        cli_main(["simulate", "--out", str(tmp_path), "--preset", "nope"])
