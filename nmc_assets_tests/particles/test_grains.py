import numpy as np
import pytest
import torch

from nmc_assets.particles.grains import (
    GrainParams,
    cell_distances,
    grain_principal_axes,
    hard_labels,
    render_grain_labels,
    sample_grains,
    soft_assignment,
)
from nmc_assets.particles.shell import ShellParams, sample_shell


@pytest.fixture(scope="module")
def particle():
    rng = np.random.default_rng(11)
    shell = sample_shell(rng, ShellParams(mean_diameter_um=5.0, size_sigma=0.0))
    grains = sample_grains(rng, GrainParams(number_density_per_um3=1.5), shell.max_radius_um())
    return shell, grains


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


def test_beamline_labels_equal_the_recorded_values():
    """Labels of 20000 random points for the grains above (recorded at commit c09933e)."""
    import hashlib

    from nmc_assets.beamline.simulate import DEFAULT_GRAIN_PARAMS

    g = sample_grains(np.random.default_rng(2024), DEFAULT_GRAIN_PARAMS, 4.0)
    pts = np.random.default_rng(1).uniform(-4, 4, (20000, 3)).astype(np.float32)
    lab = hard_labels(pts, g)
    assert np.bincount(lab).tolist()[:8] == [382, 206, 473, 665, 615, 266, 647, 272]
    assert hashlib.sha256(lab.tobytes()).hexdigest() == "aae069f27bfcec4779ed600c0539bba2b4355da0351ecd0a469fa5f39c6b5c16"


def test_hard_labels_is_argmin_of_cell_distances(particle):
    _, g = particle
    pts = np.random.default_rng(0).uniform(-2.5, 2.5, (5000, 3)).astype(np.float32)
    d = cell_distances(torch.as_tensor(pts), g.seeds, g.metrics, g.weights)
    assert d.shape == (5000, len(g))
    diff = pts[:, None, :].astype(np.float64) - g.seeds[None]
    direct = np.einsum("pni,nij,pnj->pn", diff, g.metrics, diff) - g.weights
    np.testing.assert_allclose(d.numpy(), direct, atol=2e-3)
    lab = hard_labels(pts, g, chunk=777)
    agree = lab == np.argmin(direct, axis=1)
    assert agree.mean() > 0.999  # float32 ties only
    assert (lab == torch.argmin(d, dim=1).numpy()).mean() > 0.999


def test_cell_distances_are_differentiable(particle):
    _, g = particle
    seeds = torch.tensor(g.seeds, dtype=torch.float32, requires_grad=True)
    metrics = torch.tensor(g.metrics, dtype=torch.float32, requires_grad=True)
    weights = torch.tensor(g.weights, dtype=torch.float32, requires_grad=True)
    pts = torch.randn(300, 3)
    p = soft_assignment(pts, (seeds, metrics, weights), temperature=0.05)
    (1 - (p ** 2).sum(1)).mean().backward()
    for t in (seeds, metrics, weights):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_soft_assignment_approaches_one_hot(particle):
    _, g = particle
    pts = np.random.default_rng(1).uniform(-2, 2, (3000, 3)).astype(np.float32)
    hard = hard_labels(pts, g)
    errors = []
    for t in (1.0, 0.1, 0.01, 0.001):
        p = soft_assignment(torch.as_tensor(pts), g, temperature=t).numpy()
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-4)
        errors.append(np.abs(p - np.eye(len(g))[hard]).sum(1).mean())
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 0.05
    with pytest.raises(ValueError):
        soft_assignment(torch.as_tensor(pts), g, temperature=0.0)


def test_render_labels_and_radial_alignment():
    rng_shell = np.random.default_rng(4)
    shell = sample_shell(rng_shell, ShellParams(mean_diameter_um=5.0, size_sigma=0.0))
    vs = 0.08
    cos = {}
    for log_mean in (0.0, 1.0):
        gp = GrainParams(number_density_per_um3=1.5, elongation_log_mean=log_mean, elongation_log_sd=0.05,
                         alignment_spread_deg=5.0)
        g = sample_grains(np.random.default_rng(7), gp, shell.max_radius_um())
        lab = render_grain_labels(shell, g, vs)
        assert lab.dtype == np.uint16
        n = int(lab.max())
        assert 0.7 * len(g) <= n <= len(g)
        assert set(np.unique(lab)) == set(range(n + 1))  # consecutive labels
        ax = grain_principal_axes(lab, vs)
        inner = np.linalg.norm(ax["centroid_um"], axis=1) > 0.6  # direction defined away from the centre
        cos[log_mean] = ax["radial_cos"][inner].mean()
    assert cos[1.0] > cos[0.0] + 0.15
    assert cos[1.0] > 0.6


def test_determinism_same_seed(particle):
    shell, _ = particle
    gp = GrainParams(number_density_per_um3=1.0)
    a = sample_grains(np.random.default_rng(5), gp, 2.5)
    b = sample_grains(np.random.default_rng(5), gp, 2.5)
    for x, y in zip((a.seeds, a.metrics, a.weights), (b.seeds, b.metrics, b.weights)):
        np.testing.assert_array_equal(x, y)
    la = render_grain_labels(shell, a, 0.1)
    lb = render_grain_labels(shell, b, 0.1)
    assert la.tobytes() == lb.tobytes()


def test_bad_params():
    with pytest.raises(ValueError):
        GrainParams(number_density_per_um3=0)
    with pytest.raises(ValueError):
        GrainParams(hard_core_fraction=0.95)
    with pytest.raises(ValueError):
        sample_grains(np.random.default_rng(0), GrainParams(), -1.0)
    with pytest.raises(ValueError):
        cell_distances(np.zeros((4, 2)), np.zeros((3, 3)), np.tile(np.eye(3), (3, 1, 1)), np.zeros(3))


def test_importing_the_model_and_the_beamline_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, nmc_assets.particles, nmc_assets.beamline; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
