import numpy as np
import pytest

from nmc_assets.particles.grains import GrainParams, sample_grains


def test_grain_marks(particle):
    shell, g = particle
    n = len(g)
    assert n > 40
    assert g.seeds.shape == (n, 3) and g.metrics.shape == (n, 3, 3) and g.weights.shape == (n,)
    np.testing.assert_allclose(np.linalg.det(g.metrics), 1.0, rtol=1e-9)
    assert np.all(np.linalg.eigvalsh(g.metrics) > 0)
    assert np.linalg.norm(g.seeds, axis=1).max() <= shell.max_radius_um()
    # hard core: no two seeds closer than hard_core_fraction * spacing
    p = GrainParams(number_density_per_um3=1.5)
    d = np.linalg.norm(g.seeds[:, None] - g.seeds[None], axis=-1) + np.eye(n) * 1e9
    assert d.min() >= p.hard_core_fraction * p.mean_spacing_um - 1e-9
    # the metric's smallest eigenvalue belongs to the cell axis (elongated along it)
    w, v = np.linalg.eigh(g.metrics)
    np.testing.assert_allclose(np.abs(np.sum(v[:, :, 0] * g.axes, axis=1)), 1.0, atol=1e-6)


def test_beamline_grains_equal_the_recorded_values():
    """The grains of the beamline's default parameters for a fixed seed (recorded at commit c09933e): the
    beamline's scans, the StarDist model trained on them and the recorded figures depend on them."""
    from nmc_assets.beamline.simulate import DEFAULT_GRAIN_PARAMS

    g = sample_grains(np.random.default_rng(2024), DEFAULT_GRAIN_PARAMS, 4.0)
    assert len(g) == 44
    # seeds, weights and elongations bit for bit; axes and metrics to float64 rounding
    assert g.seeds[:2].tolist() == [[1.202346840059307, -1.0203884080119419, -1.4603647635635166],
                                    [0.05534229492758717, 0.7094006287449757, 0.41936152586158315]]
    assert g.weights[:3].tolist() == [-0.062143111930162157, 0.2975202377818429, -0.07998864278646706]
    assert g.elongations[:3].tolist() == [1.2872854948732124, 1.8587491803168865, 2.503417988976007]
    np.testing.assert_allclose(g.axes[0], [0.46092086228995494, -0.6089431968939255, -0.6455541353461306], rtol=1e-15)
    np.testing.assert_allclose(g.metrics[0], [[1.0836687099503528, 0.13170554378879493, 0.13962395651113244],
                                              [0.13170554378879493, 1.0093570855184812, -0.18446346303019223],
                                              [0.13962395651113244, -0.18446346303019223, 0.9878053866294445]], rtol=1e-15)


def test_determinism_same_seed():
    gp = GrainParams(number_density_per_um3=1.0)
    a = sample_grains(np.random.default_rng(5), gp, 2.5)
    b = sample_grains(np.random.default_rng(5), gp, 2.5)
    for x, y in zip((a.seeds, a.metrics, a.weights), (b.seeds, b.metrics, b.weights)):
        np.testing.assert_array_equal(x, y)


def test_bad_params():
    with pytest.raises(ValueError):
        GrainParams(number_density_per_um3=0)
    with pytest.raises(ValueError):
        GrainParams(hard_core_fraction=0.95)
    with pytest.raises(ValueError):
        sample_grains(np.random.default_rng(0), GrainParams(), -1.0)


def test_importing_the_model_and_the_beamline_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, nmc_assets.particles, nmc_assets.beamline; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
