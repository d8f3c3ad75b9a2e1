import numpy as np
import pytest

from nmc_assets.beamline.cracks import crack_particle, grain_boundary_pairs
from nmc_assets.beamline.packing import ball_union_fraction, contact_fractions, label_packing, pack_particles
from nmc_assets.beamline.render import RenderParams, render_image
from nmc_assets.particles import GrainParams, ShellParams, render_grain_labels, sample_grains, sample_shell
from nmc_assets.particles.shell import shell_normalised_distance


def test_packing_overlap_and_fraction():
    ext = np.array([12.0, 30.0, 30.0])
    p = pack_particles(np.random.default_rng(0), ext, ShellParams(), target_fraction=0.5, overlap=0.06)
    r = np.array([s.equivalent_radius_um for s in p.shells])
    d = np.linalg.norm(p.centres_um[:, None] - p.centres_um[None], axis=-1) + np.eye(len(r)) * 1e9
    rel = 1 - d / (r[:, None] + r[None])
    assert rel.max() <= 0.06 + 0.02
    assert (rel > 0.0).sum() / 2 >= len(r) // 2  # many touching pairs
    assert ball_union_fraction(p.centres_um, r, ext) >= 0.49
    labels, index = label_packing(p, (60, 150, 150), 0.2, min_voxels=100)
    assert labels.max() == len(index)
    c = contact_fractions(labels)
    assert c.shape == (labels.max(),) and 0 <= c.min() and c.max() <= 1 and (c > 0).mean() > 0.5


def test_contact_fraction_of_two_cubes():
    lab = np.zeros((10, 10, 20), np.uint32)
    lab[2:8, 2:8, 2:10] = 1
    lab[2:8, 2:8, 10:18] = 2
    c = contact_fractions(lab)
    # each box: 6x6 faces touching out of 2*(6*6) + 4*(6*8) faces
    assert c[0] == pytest.approx(36 / (72 + 192)) and c[1] == pytest.approx(c[0])


def test_crack_particle_meets_target_along_boundaries():
    rng = np.random.default_rng(3)
    shell = sample_shell(rng, ShellParams(mean_diameter_um=8.0, size_sigma=0.0))
    grains = sample_grains(rng, GrainParams(density_per_um3=0.15), shell.max_radius_um())
    vs = 0.2
    g = render_grain_labels(shell, grains, vs)
    inside = g > 0
    centre = tuple((n - 1) / 2 for n in g.shape)
    q = shell_normalised_distance(shell, g.shape, vs, centre)
    for target in (0.02, 0.08, 0.2):
        c = crack_particle(np.random.default_rng(1), inside, g, q, target, width_vox=0, void_share=0.3)
        assert not (c & ~inside).any()
        assert c.sum() / inside.sum() == pytest.approx(target, abs=0.005)
    c = crack_particle(np.random.default_rng(1), inside, g, q, 0.06, width_vox=0, void_share=0.0)
    vox, _ = grain_boundary_pairs(g, inside)
    on_boundary = np.zeros(inside.size, bool)
    on_boundary[vox] = True
    assert on_boundary.reshape(g.shape)[c].all()  # zero-width cracks lie on grain boundaries
    assert q[c].mean() < q[inside].mean()  # cracks concentrate towards the centre
    assert not crack_particle(np.random.default_rng(1), inside, g, q, 0.0).any()


def test_render_phases_and_range():
    classes = np.zeros((16, 64, 64), np.uint8)
    classes[:, :, 20:40] = 2
    classes[:, :, 45:60] = 1
    img = render_image(np.random.default_rng(0), classes, 0.1, RenderParams())
    assert img.dtype == np.uint8 and img.shape == classes.shape
    nmc, cbd, pore = (np.median(img[:, :, s]) for s in (slice(25, 35), slice(48, 57), slice(2, 15)))
    assert nmc > cbd > pore
    again = render_image(np.random.default_rng(0), classes, 0.1, RenderParams())
    assert np.array_equal(img, again)


def test_cracks_prefer_radial_boundaries():
    from nmc_assets.beamline.cracks import _radialness

    rng = np.random.default_rng(5)
    shell = sample_shell(rng, ShellParams(mean_diameter_um=8.0, size_sigma=0.0))
    grains = sample_grains(rng, GrainParams(density_per_um3=0.15), shell.max_radius_um())
    vs = 0.2
    g = render_grain_labels(shell, grains, vs)
    inside = g > 0
    q = shell_normalised_distance(shell, g.shape, vs, tuple((n - 1) / 2 for n in g.shape))
    vox, keys = grain_boundary_pairs(g, inside)
    ukeys, inv = np.unique(keys, return_inverse=True)
    radialness = _radialness(g, inside, q, vox, inv, ukeys, np.bincount(inv))
    assert radialness.min() >= 0 and radialness.max() <= 1

    def opened_radialness(bias):
        c = crack_particle(np.random.default_rng(2), inside, g, q, 0.05, width_vox=0, void_share=0.0,
                           centre_bias=0.0, radial_bias=bias)
        hit = c.ravel()[vox]
        return np.average(radialness[inv], weights=hit)

    assert opened_radialness(5.0) > opened_radialness(0.0) + 0.1
