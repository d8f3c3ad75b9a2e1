"""``contact`` is the fraction of outer voxel faces facing another particle: the virtual beamline's own
definition, so on ground-truth labels the feature equals the simulator's value for every particle not cut
by the volume border."""

import numpy as np

from nmc_assets.beamline.packing import contact_fractions
from nmc_assets.features.extract import FeatureSettings, compute_particle_features


def _blocks():
    labels = np.zeros((20, 20, 40), np.uint32)
    labels[5:15, 5:15, 5:15] = 1      # touches 2 on one 10x10 face
    labels[5:15, 5:15, 15:25] = 2
    labels[5:15, 5:15, 30:38] = 3     # isolated
    intensity = np.where(labels > 0, 1.0, 0.1).astype(np.float32)
    return labels, intensity


def test_face_contact_of_touching_cubes():
    labels, intensity = _blocks()
    df = compute_particle_features(labels, intensity, 0.5, scan_id="s", cycles=1).set_index("particle_id")
    # a 10x10x10 cube has 600 outer faces; one 10x10 face (100) touches the neighbour
    assert df.loc[1, "contact"] == df.loc[2, "contact"] == 100 / 600
    assert df.loc[3, "contact"] == 0


def test_contact_equals_the_simulator_definition_on_a_packing():
    rng = np.random.default_rng(3)
    zz, yy, xx = np.indices((40, 48, 48))
    labels = np.zeros((40, 48, 48), np.uint32)
    centres = rng.uniform([6, 6, 6], [34, 42, 42], size=(14, 3))
    dist = np.stack([np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) for c in centres])
    nearest = dist.argmin(0)
    labels[dist.min(0) <= 7.5] = nearest[dist.min(0) <= 7.5] + 1
    intensity = np.where(labels > 0, 1.0, 0.1).astype(np.float32)
    df = compute_particle_features(labels, intensity, 0.5, scan_id="s", cycles=1).set_index("particle_id")
    expected = contact_fractions(labels)
    interior = df[~df["touches_border"]]
    assert len(interior) >= 5
    assert np.allclose(interior["contact"].to_numpy(), expected[interior.index.to_numpy() - 1], atol=1e-12)
    assert (interior["contact"] > 0).sum() >= 3
    # particles cut by the volume border: their border faces count as free surface here (the simulator
    # leaves them out), so the feature is lower, never higher
    cut = df[df["touches_border"]]
    assert (cut["contact"].to_numpy() <= expected[cut.index.to_numpy() - 1] + 1e-12).all()


def test_near_contact_setting_is_looser():
    labels, intensity = _blocks()
    labels[5:15, 5:15, 15] = 0        # a 1-voxel gap between cubes 1 and 2
    faces = compute_particle_features(labels, intensity, 0.5, scan_id="s", cycles=1).set_index("particle_id")
    near = compute_particle_features(labels, intensity, 0.5, scan_id="s", cycles=1,
                                     settings=FeatureSettings(contact_gap_vox=2)).set_index("particle_id")
    assert faces.loc[1, "contact"] == 0
    assert near.loc[1, "contact"] > 0
