import math

import numpy as np
import pytest

from nmc_assets.ebsd.maps import EbsdError, EbsdMap, phase_from_point_group
from nmc_assets.ebsd.particles import GRAIN_TABLE_COLUMNS, SectionSettings, find_particles, map_sections, mean_orientations


def _two_particles() -> EbsdMap:
    """Two discs (r = 15 points) on a 60 x 100 map, 0.05 um step: the left one two grains, the right one; a
    3 x 3 speck; a few unindexed points inside the left disc."""
    rr, cc = np.mgrid[0:60, 0:100]
    left = (rr - 30) ** 2 + (cc - 25) ** 2 <= 15**2
    right = (rr - 30) ** 2 + (cc - 75) ** 2 <= 15**2
    phase = (left | right).astype(np.int32)
    phase[4:7, 49:52] = 1
    phase[30, 20:23] = 0
    euler = np.zeros((60, 100, 3))
    euler[left & (cc >= 25)] = [0.0, 0.0, math.radians(40)]
    euler[right] = [0.0, math.pi / 2, 0.0]  # c-axis along the map's y
    return EbsdMap(euler, phase, {1: phase_from_point_group(1, "NMC", "-3m", "m.ang")}, 0.05, "/data/my map.ang")


def test_particles_become_sections_with_their_grains():
    m = _two_particles()
    parts = find_particles(m.indexed, closing_radius_px=2, min_area_px=50)
    assert parts.max() == 2 and parts[5, 50] == 0 and parts[30, 21] == parts[30, 25] > 0
    sections, table, grains, particles = map_sections(m, SectionSettings(min_grain_size=5, min_particle_area_px=50))
    assert [s.name for s in sections] == ["my_map_p001", "my_map_p002"]
    assert all(s.pixel_size_um == 0.05 and s.labels.dtype == np.uint16 for s in sections)
    assert [int(s.labels.max()) for s in sections] == [2, 1]
    rr, cc = np.mgrid[0:60, 0:100]
    disc_points = int(((rr - 30) ** 2 + (cc - 25) ** 2 <= 15**2).sum())
    assert sections[0].labels.shape == (33, 33) and int((sections[0].labels > 0).sum()) == disc_points
    assert (sections[0].labels[15, 11:14] > 0).all()  # the unindexed points are filled from their grain
    assert list(table.columns) == list(GRAIN_TABLE_COLUMNS) and len(table) == 3
    right = table[table.section == "my_map_p002"].iloc[0]
    np.testing.assert_allclose(np.abs([right.c_axis_x, right.c_axis_y, right.c_axis_z]), [0, 1, 0], atol=1e-9)
    assert math.isnan(right.c_axis_radial_angle_deg)  # one grain at the particle centre: no radial direction
    assert not table.touches_map_border.any() and (table.area_um2 > 0).all()
    with pytest.raises(EbsdError, match="my map.ang: no particle"):
        map_sections(m, SectionSettings(min_particle_area_px=10_000))


def test_mean_orientation_respects_symmetry():
    m = _two_particles()
    noisy = m.euler_rad.copy()
    right = m.phase_id.astype(bool) & (np.indices(m.shape)[1] > 55)
    # half of the right grain's points written as a symmetry-equivalent (+120 deg about c), all with small noise
    rng = np.random.default_rng(0)
    noisy[right, 2] += np.where(rng.random(right.sum()) < 0.5, 2 * math.pi / 3, 0) + rng.normal(0, 0.002, right.sum())
    m2 = EbsdMap(noisy, m.phase_id, m.phases, m.step_um, m.source)
    labels = np.where(right, 1, 0)
    quats, phase = mean_orientations(m2, labels, 1)
    from orix.quaternion import Orientation

    sym = m.phases[1].symmetry()
    truth = Orientation.from_euler([[0.0, math.pi / 2, 0.0]], symmetry=sym)
    assert phase.tolist() == [1]
    assert Orientation(quats, symmetry=sym).angle_with(truth, degrees=True)[0] < 0.05


def test_c_axes_of_virtual_grains_match_the_truth(virtual_dir):
    import json

    import tifffile

    from nmc_assets.ebsd.grains import GrainSettings, rebuild_grains
    from nmc_assets.ebsd.readers import read_map
    from orix.quaternion import Rotation
    from orix.vector import Vector3d

    for grid in ("square", "hex"):
        path = virtual_dir / grid / "virtual_0000.ang"
        m = read_map(path)
        truth = tifffile.imread(virtual_dir / grid / "truth" / "virtual_0000.tif")
        c_true = np.array(json.loads((virtual_dir / grid / "truth" / "virtual_0000.json").read_text())["c_axes_xyz"])
        labels = rebuild_grains(m, GrainSettings(min_grain_size=10))
        quats, _ = mean_orientations(m, labels, int(labels.max()))
        c = ((~Rotation(quats)) * Vector3d.zvector()).data
        errs = []
        for g in range(1, labels.max() + 1):
            t = np.bincount(truth[labels == g]).argmax()  # the truth grain under most of the grain
            errs.append(np.degrees(np.arccos(min(abs(c[g - 1] @ c_true[t - 1]), 1.0))))
        assert len(errs) >= 20 and np.median(errs) < 1.0 and np.mean(np.array(errs) < 3) > 0.9, (grid, errs)


def test_fine_sections_are_resampled_to_a_bounded_size():
    m = _two_particles()
    full = map_sections(m, SectionSettings(min_grain_size=5, min_particle_area_px=50, max_section_px=0))[0]
    small = map_sections(m, SectionSettings(min_grain_size=5, min_particle_area_px=50, max_section_px=11))[0]
    assert [s.labels.shape for s in full] == [(33, 33), (33, 33)] and [s.labels.shape for s in small] == [(11, 11), (11, 11)]
    assert [s.pixel_size_um for s in small] == pytest.approx([0.15, 0.15])  # 33 x 0.05 um = 11 x 0.15 um
    assert [int(s.labels.max()) for s in small] == [2, 1]
    # the particle keeps its area (within the pixelation of an 11-pixel disc)
    for a, b in zip(full, small):
        assert b.mask.sum() * b.pixel_size_um**2 == pytest.approx(a.mask.sum() * a.pixel_size_um**2, rel=0.15)


def test_fill_settings_are_checked_and_nearest_fill_stays_available():
    with pytest.raises(ValueError, match="fill_method"):
        SectionSettings(fill_method="mode")
    with pytest.raises(ValueError, match="fill_radius_px"):
        SectionSettings(fill_radius_px=0)
    m = _two_particles()
    a = map_sections(m, SectionSettings(min_particle_area_px=50))[0]
    b = map_sections(m, SectionSettings(min_particle_area_px=50, fill_method="nearest"))[0]
    assert [s.name for s in a] == [s.name for s in b] and all((s.labels > 0).sum() == (t.labels > 0).sum() for s, t in zip(a, b))


def test_misindexed_outline_points_stay_in_the_particle():
    from nmc_assets.ebsd.particles import particle_grains

    m = _two_particles()
    m.quality["ci"] = np.where(m.indexed, 0.5, -1.0)
    outline = m.indexed & ~np.pad(m.indexed[1:-1, 1:-1] & m.indexed[:-2, 1:-1] & m.indexed[2:, 1:-1]
                                  & m.indexed[1:-1, :-2] & m.indexed[1:-1, 2:], 1)
    rr, cc = np.mgrid[0:60, 0:100]
    lost = outline & ((rr - 30) ** 2 + (cc - 25) ** 2 <= 15**2)  # the left disc's whole outline: low confidence
    m.quality["ci"][lost] = 0.05
    s = SectionSettings(min_particle_area_px=50, min_confidence=0.1)
    with_rim = particle_grains(m, s)["particles"]
    without = particle_grains(m, SectionSettings(min_particle_area_px=50, min_confidence=0.1, particle_rim=False))["particles"]
    assert (with_rim[lost] > 0).all() and (without[lost] > 0).mean() < 0.5
    discs = ((rr - 30) ** 2 + (cc - 25) ** 2 <= 15**2) | ((rr - 30) ** 2 + (cc - 75) ** 2 <= 15**2)
    assert ((with_rim > 0) & ~discs).sum() == 0  # never beyond the indexed points
    assert (particle_grains(m, s)["filled"][lost] > 0).all()
