import numpy as np
import pytest

from nmc_assets.ebsd.maps import EbsdError
from nmc_assets.ebsd.readers import read_map


def test_oxford_cpr_crc_reads_as_defdap_reads_it(shared_ebsd):
    from defdap.file_readers import OxfordBinaryLoader

    m = read_map(shared_ebsd / "defdap" / "testDataEBSD.cpr")
    assert m.shape == (243, 359) and m.step_um == pytest.approx(0.12)
    assert [(p.name, p.laue_group, p.proper_group) for p in m.phases.values()] == [("Ni-superalloy", "m-3m", "432")]
    assert {"mad", "bc", "bs"} <= set(m.quality)
    ref = OxfordBinaryLoader()
    ref.load(shared_ebsd / "defdap" / "testDataEBSD.cpr")
    np.testing.assert_array_equal(m.euler_rad, np.moveaxis(ref.loaded_data.euler_angle, 0, -1).astype(np.float64))
    np.testing.assert_array_equal(m.phase_id, ref.loaded_data.phase)
    np.testing.assert_array_equal(m.quality["bc"], ref.loaded_data.band_contrast)


def test_tsl_ang_with_two_phases_reads(shared_ebsd):
    m = read_map(shared_ebsd / "orix_sdss" / "sdss_ferrite_austenite.ang")
    assert m.shape == (100, 117) and m.step_um == pytest.approx(1.5)
    assert sorted(p.name for p in m.phases.values()) == ["austenite/austenite", "ferrite/ferrite"]
    assert {p.laue_group for p in m.phases.values()} == {"m-3m"}
    counts = np.bincount(m.phase_id.ravel())
    assert counts[1] == 5657 and counts[2] == 6043  # orix's own phase statistics of this file
    np.testing.assert_allclose(m.euler_rad[0, 0], [3.54788, 0.67696, 2.98719], atol=1e-5)  # first data line
    assert set(m.quality) == {"iq", "dp"}


def test_hexagonal_ang_is_resampled_to_the_truth_grid(virtual_dir):
    import tifffile

    path = virtual_dir / "hex" / "virtual_0000.ang"
    m = read_map(path)
    assert "hexagonal" in m.metadata["grid"] and m.metadata["hex_points"] > m.phase_id.size * 0.8
    truth = tifffile.imread(virtual_dir / "hex" / "truth" / "virtual_0000.tif")
    assert m.shape == truth.shape
    # not indexed exactly outside the particle (CI -1), NMC's trigonal symmetry from TSL code 32
    np.testing.assert_array_equal(m.indexed, truth > 0)
    assert [(p.laue_group, p.proper_group) for p in m.phases.values()] == [("-3m", "32")]


def test_orix_hdf5_reads(tmp_path, virtual_dir):
    from orix import io as oio

    xmap = oio.load(str(virtual_dir / "square" / "virtual_0000.ang"))
    oio.save(str(tmp_path / "map.h5"), xmap)
    m = read_map(tmp_path / "map.h5")
    ref = read_map(virtual_dir / "square" / "virtual_0000.ang")
    assert m.shape == ref.shape and m.step_um == pytest.approx(ref.step_um)
    np.testing.assert_array_equal(m.indexed, ref.indexed)
    np.testing.assert_allclose(m.euler_rad[m.indexed], ref.euler_rad[ref.indexed], atol=1e-6)


# --- bad files --------------------------------------------------------------------------------------
def _ang_lines(virtual_dir):
    return (virtual_dir / "square" / "virtual_0001.ang").read_text().splitlines(keepends=True)


def test_truncated_ang_names_the_file(tmp_path, virtual_dir):
    lines = _ang_lines(virtual_dir)
    bad = tmp_path / "cut.ang"
    bad.write_text("".join(lines[:-40]))  # whole lines missing
    with pytest.raises(EbsdError, match=r"cut\.ang: truncated or damaged: \d+ points, the header's grid has \d+"):
        read_map(bad)
    half = tmp_path / "half.ang"
    half.write_text("".join(lines[:-1]) + lines[-1][:12])  # a cut last line
    with pytest.raises(EbsdError, match=r"half\.ang: "):
        read_map(half)


def test_unknown_symmetry_is_an_error(tmp_path, virtual_dir):
    bad = tmp_path / "sym.ang"
    bad.write_text("".join(line.replace("Symmetry              32", "Symmetry              99") for line in _ang_lines(virtual_dir)))
    with pytest.raises(EbsdError, match=r"sym\.ang: .*unknown crystal symmetry"):
        read_map(bad)


def test_all_unindexed_map_is_an_error(tmp_path, virtual_dir):
    out = []
    for line in _ang_lines(virtual_dir):
        if line.startswith("#"):
            out.append(line)
        else:
            v = line.split()
            v[6], v[7] = "-1.000", "0"
            out.append(" ".join(v) + "\n")
    bad = tmp_path / "empty.ang"
    bad.write_text("".join(out))
    with pytest.raises(EbsdError, match=r"empty\.ang: no indexed point"):
        read_map(bad)


def test_map_without_step_size_is_an_error(tmp_path, virtual_dir):
    bad = tmp_path / "nostep.ang"
    bad.write_text("".join(line for line in _ang_lines(virtual_dir) if "XSTEP" not in line))
    with pytest.raises(EbsdError, match=r"nostep\.ang: no step size"):
        read_map(bad)


def test_bad_oxford_files(tmp_path, shared_ebsd):
    src = shared_ebsd / "defdap" / "testDataEBSD"
    (tmp_path / "a.cpr").write_bytes(src.with_suffix(".cpr").read_bytes())
    with pytest.raises(EbsdError, match=r"a\.cpr: no data file a\.crc"):
        read_map(tmp_path / "a.cpr")
    (tmp_path / "a.crc").write_bytes(src.with_suffix(".crc").read_bytes()[:-100])
    with pytest.raises(EbsdError, match=r"a\.crc: truncated or damaged"):
        read_map(tmp_path / "a.cpr")
    (tmp_path / "b.cpr").write_text(src.with_suffix(".cpr").read_text().replace("LaueGroup=11", "LaueGroup=42"))
    (tmp_path / "b.crc").write_bytes(src.with_suffix(".crc").read_bytes())
    with pytest.raises(EbsdError, match=r"b\.cpr: phase 1 .*unknown crystal symmetry"):
        read_map(tmp_path / "b.cpr")
    with pytest.raises(EbsdError, match="not an EBSD map"):
        read_map(tmp_path / "x.txt")
