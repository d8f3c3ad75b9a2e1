import hashlib

import numpy as np
import pytest
import torch

from nmc_assets.particles.grains import GrainParams, sample_grains
from nmc_assets.particles.shell import ShellParams, sample_shell
from nmc_assets.particles.tessellation import cell_distances, grain_principal_axes, hard_labels, render_grain_labels


def test_hard_labels_is_argmin_of_cell_distances(particle):
    _, g = particle
    pts = np.random.default_rng(0).uniform(-2.5, 2.5, (5000, 3)).astype(np.float32)
    d = cell_distances(torch.as_tensor(pts), g.seeds, g.metrics, g.weights)
    assert d.shape == (5000, len(g))
    diff = pts[:, None, :].astype(np.float64) - g.seeds[None]
    direct = np.einsum("pni,nij,pnj->pn", diff, g.metrics, diff) - g.weights
    np.testing.assert_allclose(d.numpy(), direct, atol=2e-3)
    d64 = cell_distances(torch.as_tensor(pts, dtype=torch.float64), g.seeds, g.metrics, g.weights)
    np.testing.assert_allclose(d64.numpy(), direct, rtol=1e-10, atol=1e-10)
    lab = hard_labels(pts, g, chunk=777)
    agree = lab == np.argmin(direct, axis=1)
    assert agree.mean() > 0.999  # float32 ties only
    assert (lab == torch.argmin(d, dim=1).numpy()).mean() > 0.999


def test_beamline_labels_equal_the_values_recorded_before_the_merge():
    """Grains and labels of the beamline path for a fixed seed, as the former numpy sampler gave them
    (commit c09933e): the same labels for 20000 random points."""
    from nmc_assets.beamline.simulate import DEFAULT_GRAIN_PARAMS

    g = sample_grains(np.random.default_rng(2024), DEFAULT_GRAIN_PARAMS, 4.0)
    pts = np.random.default_rng(1).uniform(-4, 4, (20000, 3)).astype(np.float32)
    lab = hard_labels(pts, g)
    assert np.bincount(lab).tolist()[:8] == [382, 206, 473, 665, 615, 266, 647, 272]
    assert hashlib.sha256(lab.tobytes()).hexdigest() == "aae069f27bfcec4779ed600c0539bba2b4355da0351ecd0a469fa5f39c6b5c16"


def test_render_labels_and_radial_alignment():
    rng_shell = np.random.default_rng(4)
    shell = sample_shell(rng_shell, ShellParams(mean_diameter_um=5.0, size_sigma=0.0))
    vs = 0.08
    cos = {}
    for log_mean in (0.0, 1.0):
        gp = GrainParams(density_per_um3=1.5, elongation_log_mean=log_mean, elongation_log_sd=0.05,
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


def test_same_grains_same_label_bytes(particle):
    shell, _ = particle
    gp = GrainParams(density_per_um3=1.0)
    la = render_grain_labels(shell, sample_grains(np.random.default_rng(5), gp, 2.5), 0.1)
    lb = render_grain_labels(shell, sample_grains(np.random.default_rng(5), gp, 2.5), 0.1)
    assert la.tobytes() == lb.tobytes()


def test_bad_shapes():
    with pytest.raises(ValueError):
        cell_distances(np.zeros((4, 2)), np.zeros((3, 3)), np.tile(np.eye(3), (3, 1, 1)), np.zeros(3))
    with pytest.raises(ValueError, match="metrics"):
        cell_distances(np.zeros((4, 3)), np.zeros((3, 3)), np.tile(np.eye(3), (2, 1, 1)), np.zeros(3))


def _mean_radial_cos(mean_elongation: float, seed: int = 0) -> float:
    """Mean |cos| of grain major axes with the radial direction, calibrated law (seed margin), R = 3 um."""
    import math

    from nmc_assets.particles.grains import CALIBRATION_MARGIN_CELLS
    from nmc_assets.particles.shell import Shell

    R, vs = 3.0, 0.15
    p = GrainParams.with_mean_elongation(mean_elongation, 0.1, density_per_um3=1.0, alignment_spread_deg=10.0)
    shell = Shell(coeffs=np.array([math.sqrt(4 * math.pi) * R, 0, 0, 0]), equivalent_radius_um=R)
    labels = render_grain_labels(shell, sample_grains(np.random.default_rng(seed), p, R, margin_cells=CALIBRATION_MARGIN_CELLS), vs)
    ax = grain_principal_axes(labels, vs, min_voxels=30)
    inner = np.linalg.norm(ax["centroid_um"], axis=1) > 0.8  # the radial direction is undefined at the centre
    return float(ax["radial_cos"][inner].mean())


def test_larger_elongation_gives_higher_radial_alignment_in_the_calibrated_law():
    low, high = _mean_radial_cos(1.3), _mean_radial_cos(3.0)
    assert high > low + 0.1, (low, high)
    assert high > 0.7
