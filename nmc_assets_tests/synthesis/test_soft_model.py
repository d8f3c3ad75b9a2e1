import math

import numpy as np
import pytest
import torch

from nmc_assets.synthesis.soft_model import (
    DEFAULT_LEARNED,
    GrainModelParams,
    from_unconstrained,
    grain_geometry,
    near_plane,
    radial_cell_distances,
    random_plane,
    sample_grain_noise,
    sample_particle_grains,
    soft_section_image,
    to_unconstrained,
    torch_params,
)


def _tp(p: GrainModelParams) -> dict:
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in p.__dict__.items()}


def test_parameter_transforms_roundtrip(reference_params):
    z = to_unconstrained(reference_params)
    back = from_unconstrained(z, GrainModelParams(), DEFAULT_LEARNED)
    for k in DEFAULT_LEARNED:
        assert getattr(back, k) == pytest.approx(getattr(reference_params, k))
    p = GrainModelParams.with_mean_elongation(2.5, 0.3)
    assert p.mean_elongation == pytest.approx(2.5)
    with pytest.raises(ValueError, match="density"):
        GrainModelParams(density_per_um3=-1).validate()


def test_distances_equal_particles_cell_distances(reference_params):
    from nmc_assets.particles.tessellation import cell_distances

    g = sample_particle_grains(np.random.default_rng(0), reference_params, 2.5)
    pts = torch.as_tensor(np.random.default_rng(1).uniform(-2.5, 2.5, (300, 3)))
    mine = radial_cell_distances(pts, *(torch.as_tensor(a) for a in (g.seeds, g.axes, g.elongations, g.weights)))
    theirs = cell_distances(pts, g.seeds, g.metrics, g.weights)
    np.testing.assert_allclose(mine.numpy(), theirs.numpy(), atol=1e-9)


def test_soft_tessellation_approaches_hard_as_temperature_falls(reference_params):
    rng = np.random.default_rng(3)
    p = reference_params
    plane = random_plane(rng, 2.5, 0.1, size_px=48)
    noise = sample_grain_noise(rng, 2.5, p.density_per_um3, p.hard_core_fraction)
    sel = noise.select(near_plane(noise, plane, p.density_per_um3, 4.0))
    seeds, axis, elong, w = grain_geometry(sel, _tp(p))
    pts = torch.as_tensor(plane.points()[plane.mask().ravel()])
    d = radial_cell_distances(pts, seeds, axis, elong, w)
    hard = torch.nn.functional.one_hot(d.argmin(1), d.shape[1]).double()
    scale = p.spacing_um * plane.pixel_size_um
    gaps = []
    for tau_rel in (2.0, 0.5, 0.1, 0.02):
        soft = torch.softmax(-d / (tau_rel * scale), dim=1)
        gaps.append(float((soft - hard).abs().sum(1).mean()))
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 0.02 and gaps[0] > 0.3


def test_soft_section_is_differentiable_in_every_learned_parameter(reference_params):
    z = torch.tensor(to_unconstrained(reference_params), requires_grad=True)
    tp = torch_params(z, reference_params)
    rng = np.random.default_rng(5)
    img = soft_section_image(tp, reference_params, random_plane(rng, 2.5, 0.1, size_px=48), rng, tau_rel=0.5)
    assert img.shape == (2, 48, 48)
    # a fixed random critic-like projection of the boundary map
    proj = torch.as_tensor(np.random.default_rng(0).normal(size=(48, 48)))
    (img[0] * proj).sum().backward()
    assert torch.isfinite(z.grad).all() and (z.grad.abs() > 0).all(), z.grad
    # straight-through: the forward value is the hard boundary map (values in {0, 1/4, 1/3, 1/2, ...})
    vals = np.unique(np.round(img[0].detach().numpy(), 6))
    allowed = {round(a / b, 6) for b in (1, 2, 3, 4) for a in range(b + 1)}
    assert set(vals.tolist()) <= allowed


def _mean_radial_cos(mean_elongation: float, seed: int = 0) -> float:
    from nmc_assets.particles.tessellation import grain_principal_axes, render_grain_labels
    from nmc_assets.particles.shell import Shell

    R, vs = 3.0, 0.15
    p = GrainModelParams.with_mean_elongation(mean_elongation, 0.1, density_per_um3=1.0, alignment_spread_deg=10.0)
    shell = Shell(coeffs=np.array([math.sqrt(4 * math.pi) * R, 0, 0, 0]), equivalent_radius_um=R)
    labels = render_grain_labels(shell, sample_particle_grains(np.random.default_rng(seed), p, R), vs)
    ax = grain_principal_axes(labels, vs, min_voxels=30)
    inner = np.linalg.norm(ax["centroid_um"], axis=1) > 0.8  # the radial direction is undefined at the centre
    return float(ax["radial_cos"][inner].mean())


def test_larger_elongation_gives_higher_radial_alignment():
    low, high = _mean_radial_cos(1.3), _mean_radial_cos(3.0)
    assert high > low + 0.1, (low, high)
    assert high > 0.7
