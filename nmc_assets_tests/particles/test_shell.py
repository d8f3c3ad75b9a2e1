import numpy as np
import pytest

from nmc_assets.particles.shell import (
    Shell,
    ShellParams,
    angular_power_spectrum,
    fibonacci_directions,
    fit_sph_coeffs,
    real_sph_harm_matrix,
    sample_shell,
    shell_mask,
    shell_radius,
)


def test_real_sph_harm_is_orthonormal():
    dirs = fibonacci_directions(6000)
    y = real_sph_harm_matrix(6, dirs)
    gram = y.T @ y * (4 * np.pi / len(dirs))
    assert gram.shape == (49, 49)
    np.testing.assert_allclose(gram, np.eye(49), atol=5e-3)


def test_sampled_spectrum_matches_requested_on_average():
    params = ShellParams(amplitude=0.03, exponent=2.0, max_degree=8, size_sigma=0.2)
    rng = np.random.default_rng(0)
    shells = [sample_shell(rng, params) for _ in range(400)]
    est = np.mean([angular_power_spectrum(s.coeffs / s.mean_radius_um) for s in shells], axis=0)
    want = params.spectrum()
    # each A_l estimate averages 400 * (2l+1) squared normals: relative sd <= sqrt(2/1200) ~ 4 %
    np.testing.assert_allclose(est[1:], want[1:], rtol=0.15)
    d = np.array([s.equivalent_diameter_um for s in shells])
    assert d.min() >= params.min_diameter_um and d.max() <= params.max_diameter_um
    assert abs(np.median(d) - params.mean_diameter_um) < 0.4


def test_equivalent_radius_and_positive_radius():
    params = ShellParams(amplitude=0.2, exponent=1.0, max_degree=6)  # rough shapes: rejection is exercised
    rng = np.random.default_rng(3)
    for _ in range(20):
        s = sample_shell(rng, params)
        r = shell_radius(s, fibonacci_directions(4000))
        assert r.min() > 0
        vol = 4 * np.pi / 3 * np.mean(r ** 3)
        assert vol == pytest.approx(4 * np.pi / 3 * s.equivalent_radius_um ** 3, rel=0.02)


def test_shell_mask_volume_of_a_sphere():
    radius = 3.0
    sphere = Shell(coeffs=np.r_[np.sqrt(4 * np.pi) * radius, np.zeros(15)], equivalent_radius_um=radius)
    m = shell_mask(sphere, (80, 80, 80), 0.1, (39.5, 40.2, 40.0))
    assert m.dtype == bool
    assert m.sum() * 0.1 ** 3 == pytest.approx(4 / 3 * np.pi * radius ** 3, rel=0.02)


def test_shell_mask_volume_matches_random_shell():
    s = sample_shell(np.random.default_rng(5), ShellParams(mean_diameter_um=6.0, size_sigma=0.0))
    m = shell_mask(s, (90, 90, 90), 0.1, (45, 45, 45))
    assert m.sum() * 1e-3 == pytest.approx(4 / 3 * np.pi * s.equivalent_radius_um ** 3, rel=0.03)
    assert not m[0].any() and not m[-1].any()


def test_fit_recovers_coefficients():
    s = sample_shell(np.random.default_rng(2), ShellParams(max_degree=6))
    dirs = fibonacci_directions(800)
    c = fit_sph_coeffs(dirs, shell_radius(s, dirs), 6)
    np.testing.assert_allclose(c, s.coeffs, atol=1e-6)


def test_determinism_and_bad_input():
    a = sample_shell(np.random.default_rng(9), ShellParams())
    b = sample_shell(np.random.default_rng(9), ShellParams())
    np.testing.assert_array_equal(a.coeffs, b.coeffs)
    with pytest.raises(ValueError):
        ShellParams(mean_diameter_um=-1)
    with pytest.raises(ValueError):
        real_sph_harm_matrix(3, np.zeros((4, 2)))
    with pytest.raises(ValueError):
        Shell(coeffs=np.zeros(5), equivalent_radius_um=1.0)
