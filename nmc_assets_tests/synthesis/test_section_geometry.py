import numpy as np
import pytest

from nmc_assets.synthesis.section_geometry import SectionGeometry
from nmc_assets.particles.sections import hard_sections


def test_fit_recovers_one_particle_size_and_draws_cuts_like_it(observed_sections):
    # the fixture cuts particles of R = 2.5 um at offsets U(0, 0.5) R
    geo = SectionGeometry.fit(observed_sections)
    assert geo.median_radius_um == pytest.approx(2.5, rel=0.03)
    assert geo.log_radius_sd < 0.05
    rng = np.random.default_rng(0)
    planes = [geo.sample_plane(rng) for _ in range(200)]
    disc = np.array([np.sqrt(p.radius_um**2 - p.offset_um**2) for p in planes])
    # disc radii of the generated cuts lie where the observed ones do: [sqrt(0.75) R, R]
    assert np.quantile(disc, 0.02) > 0.84 * 2.5 and np.quantile(disc, 0.98) < 1.04 * 2.5
    assert {p.pixel_size_um for p in planes} == {0.1}


def test_fit_finds_a_spread_of_particle_sizes(reference_params):
    rng = np.random.default_rng(1)
    radii = np.exp(np.log(2.0) + 0.2 * rng.normal(size=40))
    secs = hard_sections(reference_params, radii, [0.1] * 40, seed=2)
    geo = SectionGeometry.fit(secs)
    assert geo.median_radius_um == pytest.approx(2.0, rel=0.1)
    assert 0.1 < geo.log_radius_sd < 0.3
    with pytest.raises(ValueError, match="no sections"):
        SectionGeometry.fit([])
