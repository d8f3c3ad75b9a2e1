"""``contact`` is the fraction of outer voxel faces facing another particle: the virtual beamline's own
definition, so on ground-truth labels the feature equals the simulator's value for every particle not cut
by the volume border."""

import numpy as np

from nmc_assets.beamline.packing import contact_fractions
from nmc_assets.features.extract import FeatureSettings, compute_particle_features
from nmc_assets.features.threshold import IntensityLevels


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


def _blurred_pair(gap_phase: float | None):
    """Two 16-voxel cubes side by side along x at 0.2 um, blurred (Gaussian PSF, 0.8 voxel) like a scan.

    ``gap_phase`` None: they touch. Else a 1-voxel gap of that phase (NMC = 1, pore 0.1, binder ~0.4)
    separates them, and the labels close it (cube 1 takes the gap voxel), as fused labels do when the
    blur hides the gap from the segmentation."""
    from scipy import ndimage

    labels = np.zeros((26, 26, 56), np.uint32)
    labels[5:21, 5:21, 5:21] = 1
    labels[5:21, 5:21, 21:37] = 2
    labels[5:21, 5:21, 42:52] = 3
    phase = np.where(labels > 0, 1.0, 0.1).astype(np.float32)
    if gap_phase is not None:
        labels[5:21, 5:21, 21] = 1
        labels[5:21, 5:21, 22:38] = 2
        phase[5:21, 5:21, 21] = gap_phase
        phase[5:21, 5:21, 22:38] = 1.0
    return labels, ndimage.gaussian_filter(phase, 0.8)


def along_normal_is_zero(labels, intensity) -> bool:
    return bool((_contact(labels, intensity) == 0).all())


def _contact(labels, intensity, **settings):
    df = compute_particle_features(labels, intensity, 0.2, scan_id="s", cycles=1, settings=FeatureSettings(**settings))
    return df.set_index("particle_id")["contact"]


def test_a_blurred_gap_that_the_labels_close_is_not_contact():
    for gap_phase in (0.1, 0.35):  # pore or binder in the gap
        labels, intensity = _blurred_pair(gap_phase)
        geometric = _contact(labels, intensity, contact_window_um=0.0)
        assert geometric.loc[1] > 0.15 and geometric.loc[2] > 0.15  # the labels touch over a whole face
        assert along_normal_is_zero(labels, intensity)


def test_touching_particles_keep_their_contact_under_blur():
    labels, intensity = _blurred_pair(None)
    geometric = _contact(labels, intensity, contact_window_um=0.0)
    assert geometric.loc[1] == geometric.loc[2] == 1 / 6
    along_normal = _contact(labels, intensity)
    # the blur darkens the rim of the 16 x 16 contact face (the background is one voxel away
    # diagonally): its inner 14 x 14 faces count, the 60 rim faces may not
    assert 196 / 1536 <= along_normal.loc[1] <= 256 / 1536
    assert along_normal.loc[1] == along_normal.loc[2]


def test_contact_settings_are_validated():
    import pytest

    with pytest.raises(ValueError, match="contact_window_um"):
        FeatureSettings(contact_window_um=-1.0)
    for bad in (float("nan"), 1e6):
        with pytest.raises(ValueError, match="contact_window_um"):
            FeatureSettings(contact_window_um=bad)
    with pytest.raises(ValueError, match="contact_level"):
        FeatureSettings(contact_level=float("nan"))
    rule = FeatureSettings().contact_rule(0.2, IntensityLevels(solid_threshold=100.0, solid_level=180.0), 100.0)
    assert (rule.window_vox, rule.level, rule.margin) == (3, 140.0, 3)
    assert FeatureSettings(contact_gap_vox=2).contact_rule(0.2, IntensityLevels(100.0, 180.0), 100.0).margin == 2
