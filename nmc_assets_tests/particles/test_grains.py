import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from nmc_assets.particles.grains import (
    CALIBRATION_MARGIN_CELLS,
    GrainParams,
    grain_geometry,
    radial_metrics,
    sample_grain_noise,
    sample_grains,
)


def test_grain_marks(particle):
    shell, g = particle
    n = len(g)
    assert n > 40
    assert g.seeds.shape == (n, 3) and g.metrics.shape == (n, 3, 3) and g.weights.shape == (n,)
    np.testing.assert_allclose(np.linalg.det(g.metrics), 1.0, rtol=1e-9)
    assert np.all(np.linalg.eigvalsh(g.metrics) > 0)
    assert np.linalg.norm(g.seeds, axis=1).max() <= shell.max_radius_um()
    # hard core: no two seeds closer than hard_core_fraction * spacing
    p = GrainParams(density_per_um3=1.5)
    d = np.linalg.norm(g.seeds[:, None] - g.seeds[None], axis=-1) + np.eye(n) * 1e9
    assert d.min() >= p.hard_core_fraction * p.mean_spacing_um - 1e-9
    # the metric's smallest eigenvalue belongs to the cell axis (elongated along it)
    w, v = np.linalg.eigh(g.metrics)
    np.testing.assert_allclose(np.abs(np.sum(v[:, :, 0] * g.axes, axis=1)), 1.0, atol=1e-6)
    np.testing.assert_allclose(w[:, 0], g.elongations ** (-4 / 3), rtol=1e-9)


def test_beamline_grains_equal_the_recorded_values():
    """The grains of the beamline's default parameters for a fixed seed (recorded at commit c09933e, from the
    former numpy sampler; now the numpy-facing path around the torch geometry): the beamline's scans, the
    StarDist model trained on them and the recorded figures depend on them."""
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


def test_torch_geometry_is_the_numpy_path_and_is_differentiable():
    p = GrainParams(density_per_um3=1.2, elongation_log_sd=0.3, alignment_spread_deg=20.0, weight_spread=0.2)
    noise = sample_grain_noise(np.random.default_rng(3), p, 2.5, margin_cells=CALIBRATION_MARGIN_CELLS)
    g = sample_grains(np.random.default_rng(3), p, 2.5, margin_cells=CALIBRATION_MARGIN_CELLS)
    tp = {k: v.requires_grad_(True) for k, v in p.tensors().items()}
    seeds, axes, elong, weights = grain_geometry(noise, tp)
    metrics = radial_metrics(axes, elong)
    for a, b in ((seeds, g.seeds), (axes, g.axes), (elong, g.elongations), (weights, g.weights), (metrics, g.metrics)):
        np.testing.assert_array_equal(a.detach().numpy(), b)
    # float32 parameters (as the GAN's): the same geometry to float32 precision
    seeds32, _, elong32, _ = grain_geometry(noise, p.tensors(dtype=torch.float32))
    assert seeds32.dtype == torch.float32
    np.testing.assert_allclose(elong32.numpy(), g.elongations, rtol=1e-6)
    # d seeds / d density = -seeds / (3 density) at the drawn density
    (d_seeds,) = torch.autograd.grad(seeds.sum(), tp["density_per_um3"], retain_graph=True)
    assert float(d_seeds) == pytest.approx(-float(seeds.sum().detach()) / (3 * 1.2), rel=1e-12)
    (seeds.sum() + metrics.sum() + weights.sum()).backward()
    for k in ("density_per_um3", "elongation_log_mean", "elongation_log_sd", "alignment_spread_deg", "weight_spread"):
        assert tp[k].grad is not None and torch.isfinite(tp[k].grad) and tp[k].grad != 0, k


def test_seeds_rescale_exactly_with_the_density():
    p = GrainParams(density_per_um3=1.0)
    noise = sample_grain_noise(np.random.default_rng(8), p, 2.0)
    seeds, _, _, weights = grain_geometry(noise, replace(p, density_per_um3=8.0).tensors())
    np.testing.assert_allclose(seeds.numpy(), noise.points_um / 2.0, rtol=1e-15)
    np.testing.assert_allclose(weights.numpy(), 0.1 * 0.25 * noise.z_weight, rtol=1e-14)


def test_radial_metrics_numpy_and_torch_agree():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(50, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    e = np.exp(rng.uniform(0, 1.5, 50))
    m_np = radial_metrics(u, e)
    assert isinstance(m_np, np.ndarray) and m_np.dtype == np.float64
    m_t = radial_metrics(torch.as_tensor(u, dtype=torch.float32), torch.as_tensor(e, dtype=torch.float32))
    assert m_t.dtype == torch.float32
    np.testing.assert_allclose(m_t.numpy(), m_np, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", m_np, u), u * e[:, None] ** (-4 / 3), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(m_np), 1.0, rtol=1e-12)


def test_margin_extends_the_seed_window():
    p = GrainParams(density_per_um3=1.0, hard_core_fraction=0.0)
    inner = sample_grain_noise(np.random.default_rng(1), p, 2.0)
    outer = sample_grain_noise(np.random.default_rng(1), p, 2.0, margin_cells=CALIBRATION_MARGIN_CELLS)
    assert np.linalg.norm(inner.points_um, axis=1).max() <= 2.0
    assert 2.0 < np.linalg.norm(outer.points_um, axis=1).max() <= 3.5
    # Poisson counts around 4/3 pi r^3: 33.5 and 179.6 expected
    assert 15 < len(inner) < 55 and 140 < len(outer) < 220
    sel = outer.select(np.arange(5))
    assert len(sel) == 5 and sel.density_per_um3 == 1.0 and sel.spacing_um == pytest.approx(1.0)


def test_params_defaults_dict_and_former_names():
    p = GrainParams()
    assert (p.density_per_um3, p.hard_core_fraction, p.elongation_log_mean, p.elongation_log_sd,
            p.alignment_spread_deg, p.weight_spread, p.core_density_ratio) == (1.0, 0.5, 0.8, 0.25, 15.0, 0.1, 1.0)
    assert p.mean_spacing_um == 1.0
    d = p.to_dict()
    # uniform radial profile: the dict (stored in params.json, hashed into calibration versions) is the
    # calibration's six parameters plus the mean elongation, as before the merge
    assert set(d) == {"density_per_um3", "hard_core_fraction", "elongation_log_mean", "elongation_log_sd",
                      "alignment_spread_deg", "weight_spread", "mean_elongation"}
    assert GrainParams.from_dict(d) == p
    cored = replace(p, core_density_ratio=2.0)
    assert cored.to_dict()["core_density_ratio"] == 2.0 and GrainParams.from_dict(cored.to_dict()) == cored
    # a scan sidecar's grain_params (former field name) and a former params.json both load
    sidecar = {"number_density_per_um3": 0.15, "hard_core_fraction": 0.5, "elongation_log_mean": 0.7,
               "elongation_log_sd": 0.2, "alignment_spread_deg": 15.0, "weight_spread": 0.1, "core_density_ratio": 1.0}
    assert GrainParams.from_dict(sidecar) == GrainParams(0.15, 0.5, 0.7, 0.2, 15.0, 0.1)
    old_params_json = {"density_per_um3": 0.9, "elongation_log_mean": 1.1, "elongation_log_sd": 0.35,
                       "alignment_spread_deg": 22.0, "weight_spread": 0.05, "hard_core_fraction": 0.5,
                       "mean_elongation": 3.2}
    q = GrainParams.from_dict(old_params_json)
    assert (q.density_per_um3, q.weight_spread, q.core_density_ratio) == (0.9, 0.05, 1.0)


def test_mean_elongation_and_validation():
    p = GrainParams.with_mean_elongation(2.5, 0.3, density_per_um3=2.0)
    assert p.mean_elongation == pytest.approx(2.5) and p.density_per_um3 == 2.0
    assert GrainParams(elongation_log_mean=math.log(3.0), elongation_log_sd=0.0).mean_elongation == pytest.approx(3.0)
    assert p.validate() is p
    with pytest.raises(ValueError, match="density"):
        GrainParams(density_per_um3=0)
    with pytest.raises(ValueError, match="hard_core"):
        GrainParams(hard_core_fraction=0.95)
    with pytest.raises(ValueError, match="alignment"):
        GrainParams(alignment_spread_deg=85.0).validate()
    with pytest.raises(ValueError, match="hard_core"):
        GrainParams(hard_core_fraction=0.7).validate()
    with pytest.raises(ValueError, match="mean_elongation"):
        GrainParams.with_mean_elongation(0.9, 0.2)
    with pytest.raises(ValueError, match="radius"):
        sample_grains(np.random.default_rng(0), GrainParams(), -1.0)


def test_determinism_same_seed():
    gp = GrainParams(density_per_um3=1.0)
    a = sample_grains(np.random.default_rng(5), gp, 2.5)
    b = sample_grains(np.random.default_rng(5), gp, 2.5)
    for x, y in zip((a.seeds, a.metrics, a.weights), (b.seeds, b.metrics, b.weights)):
        np.testing.assert_array_equal(x, y)


def test_importing_the_model_and_the_beamline_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, nmc_assets.particles, nmc_assets.beamline; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
