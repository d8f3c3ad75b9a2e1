import shutil

import numpy as np
import pytest

from nmc_assets.ebsd.h5oina import write_h5oina
from nmc_assets.ebsd.maps import EbsdError
from nmc_assets.ebsd.readers import read_map


@pytest.fixture()
def ref_map(virtual_dir):
    m = read_map(virtual_dir / "square" / "virtual_0000.ang")
    m.quality["mad"] = np.where(m.indexed, 0.4, 0.0)
    m.quality["bc"] = np.where(m.indexed, 120.0, 0.0)
    return m


def test_h5oina_round_trip(tmp_path, ref_map):
    from nmc_assets.ebsd.grains import GrainSettings, rebuild_grains

    path = write_h5oina(tmp_path / "Map Data 1.h5oina", ref_map)
    m = read_map(path)
    assert m.shape == ref_map.shape and m.step_um == pytest.approx(0.1)
    assert [(p.name, p.laue_group, p.proper_group) for p in m.phases.values()] == [("NMC811", "-3m", "32")]
    np.testing.assert_array_equal(m.phase_id, ref_map.phase_id)
    np.testing.assert_allclose(m.euler_rad[m.indexed], ref_map.euler_rad[ref_map.indexed], atol=1e-5)
    # MAD is stored in radians and read back in degrees; band contrast as is
    np.testing.assert_allclose(m.quality["mad"][m.indexed], 0.4, atol=1e-5)
    assert (m.quality["bc"][m.indexed] == 120).all()
    s = GrainSettings(min_confidence=0)
    np.testing.assert_array_equal(rebuild_grains(m, s), rebuild_grains(ref_map, s))


def _edit(path, fn):
    import h5py

    with h5py.File(path, "r+") as f:
        fn(f)


def test_h5oina_laue_number_nan_points_and_cross_sections(tmp_path, ref_map, virtual_dir):
    from nmc_assets.ebsd.cross_sections import ebsd_files, read_cross_sections

    src = tmp_path / "cross_sections"
    src.mkdir()
    path = write_h5oina(src / "a.h5oina", ref_map)

    def edit(f):
        del f["1/EBSD/Header/Phases/1/Laue Group"].attrs["Symbol"]  # only Oxford's number (7 = -3m)
        e = f["1/EBSD/Data/Euler"]
        e[0] = [np.nan] * 3  # outside an irregular acquisition area
    _edit(path, edit)
    m = read_map(path)
    assert m.phases[1].laue_group == "-3m" and not m.indexed[0, 0]
    shutil.copy(virtual_dir / "square" / "virtual_0000.ang", src / "b.ang")
    assert [p.name for p in ebsd_files(src)] == ["a.h5oina", "b.ang"]
    from nmc_assets.ebsd.particles import SectionSettings

    sections, table, summaries = read_cross_sections(src, SectionSettings(min_confidence=0))  # .h5oina has no CI
    assert [s.name for s in sections] == ["a_p001", "b_p001"] and summaries[0]["file"] == "a.h5oina"
    np.testing.assert_array_equal(sections[0].labels, sections[1].labels)


@pytest.mark.parametrize("edit, problem", [
    (lambda f: f.__delitem__("1/EBSD/Data/Euler"), r"no /1/EBSD/Data/Euler dataset"),
    (lambda f: f.__delitem__("1/EBSD/Header/X Step"), r"no /1/EBSD/Header/X Step"),
    (lambda f: (f.__delitem__("1/EBSD/Data/Phase"), f.create_dataset("1/EBSD/Data/Phase", data=np.ones(7, np.uint8))),
     r"truncated or damaged: 7 phase values"),
    (lambda f: f["1/EBSD/Header/Phases/1/Laue Group"].attrs.__setitem__("Symbol", "q42"), r"phase 1 .*unknown crystal symmetry"),
    (lambda f: f["1/EBSD/Data/X"].__setitem__(slice(None), f["1/EBSD/Data/X"][()][::-1]), r"point X coordinates are not row by row"),
    (lambda f: f.move("1/EBSD", "1/EDS"), r"no EBSD acquisition"),
])
def test_bad_h5oina_names_the_file_and_problem(tmp_path, ref_map, edit, problem):
    path = write_h5oina(tmp_path / "bad.h5oina", ref_map)
    _edit(path, edit)
    with pytest.raises(EbsdError, match=r"bad\.h5oina: " + problem):
        read_map(path)


def test_non_hdf5_h5oina_is_an_error(tmp_path):
    (tmp_path / "x.h5oina").write_text("not hdf5")
    with pytest.raises(EbsdError, match=r"x\.h5oina: not a readable HDF5 file"):
        read_map(tmp_path / "x.h5oina")
