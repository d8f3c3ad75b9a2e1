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


def _write_ctf(path, m, laue_id: int = 7, n_rows=None):
    """An Oxford .ctf text file of the map ``m`` (Euler in degrees; phase 0 = not indexed)."""
    rows, cols = m.shape
    head = ["Channel Text File", "Prj\tvirtual", "Author\tnmc_assets tests", "JobMode\tGrid", f"XCells\t{cols}",
            f"YCells\t{rows}", f"XStep\t{m.step_um}", f"YStep\t{m.step_um}", "AcqE1\t0", "AcqE2\t0", "AcqE3\t0",
            "Euler angles refer to Sample Coordinate system (CS0)!\tMag\t1000\tCoverage\t100\tDevice\t0\tKV\t20",
            "Phases\t1", f"2.870;2.870;14.200\t90.000;90.000;120.000\tNMC811\t{laue_id}\t166",
            "Phase\tX\tY\tBands\tError\tEuler1\tEuler2\tEuler3\tMAD\tBC\tBS"]
    rr, cc = np.mgrid[0:rows, 0:cols]
    eul = np.degrees(m.euler_rad)
    body = [f"{int(m.indexed[r, c])}\t{c * m.step_um:.4f}\t{r * m.step_um:.4f}\t8\t0\t{eul[r, c, 0]:.4f}\t{eul[r, c, 1]:.4f}\t"
            f"{eul[r, c, 2]:.4f}\t0.5\t120\t150" for r, c in zip(rr.ravel()[: n_rows], cc.ravel()[: n_rows])]
    path.write_text("\n".join(head + body) + "\n")


def test_oxford_ctf_reads(tmp_path, virtual_dir):
    ref = read_map(virtual_dir / "square" / "virtual_0000.ang")
    _write_ctf(tmp_path / "map.ctf", ref)
    m = read_map(tmp_path / "map.ctf")
    assert m.shape == ref.shape and m.step_um == pytest.approx(0.1)
    assert [(p.name, p.laue_group) for p in m.phases.values()] == [("NMC811", "-3m")]
    np.testing.assert_array_equal(m.indexed, ref.indexed)
    from orix.quaternion import Orientation

    sym = m.phases[1].symmetry()
    a = Orientation.from_euler(m.euler_rad[m.indexed], symmetry=sym)
    b = Orientation.from_euler(ref.euler_rad[ref.indexed], symmetry=sym)
    assert a.angle_with(b, degrees=True).max() < 0.01
    assert {"mad", "bc", "bs"} <= set(m.quality) and (m.quality["bc"][m.indexed] == 120).all()
    _write_ctf(tmp_path / "cut.ctf", ref, n_rows=ref.phase_id.size - 55)
    with pytest.raises(EbsdError, match=r"cut\.ctf: truncated or damaged"):
        read_map(tmp_path / "cut.ctf")
