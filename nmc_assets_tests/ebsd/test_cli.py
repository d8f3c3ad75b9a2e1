import numpy as np
import tifffile

from nmc_assets.cli import main


def test_grains_command_writes_uint32_labels(tmp_path, shared_ebsd, capsys):
    out = tmp_path / "grains.tif"
    rc = main(["ebsd", "grains", str(shared_ebsd / "defdap" / "testDataEBSD.cpr"), "--threshold-deg", "5",
               "--min-grain-size", "10", "--out", str(out)])
    assert rc == 0 and "109 grains" in capsys.readouterr().out
    lab = tifffile.imread(out)
    assert lab.dtype == np.uint32 and lab.shape == (243, 359) and lab.max() == 109
    ref = np.load(shared_ebsd / "defdap" / "ebsd_grains_5deg_10.npz")["grains"]
    np.testing.assert_array_equal(lab, np.where(ref > 0, ref, 0))


def test_sections_and_virtual_commands(tmp_path, capsys):
    from nmc_assets.synthesis.sections import read_sections

    assert main(["ebsd", "virtual", "--out", str(tmp_path / "maps"), "--n", "2", "--grid", "hex", "--seed", "3"]) == 0
    maps = sorted((tmp_path / "maps").glob("*.ang"))
    assert [p.name for p in maps] == ["virtual_0000.ang", "virtual_0001.ang"] and (tmp_path / "maps" / "truth" / "virtual_0001.tif").exists()
    assert main(["ebsd", "sections", *map(str, maps), "--out", str(tmp_path / "sections"), "--min-grain-size", "5"]) == 0
    secs = read_sections(tmp_path / "sections")
    assert [s.name for s in secs] == ["virtual_0000_p001", "virtual_0001_p001"] and all(s.pixel_size_um == 0.1 for s in secs)
    capsys.readouterr()


def test_bad_file_is_reported_by_name(tmp_path, capsys):
    bad = tmp_path / "bad.ang"
    bad.write_text("# GRID: SqrGrid\n# NROWS: 2\n1 2 3 4 5 6 7 8\n")
    rc = main(["ebsd", "grains", str(bad), "--out", str(tmp_path / "g.tif")])
    err = capsys.readouterr().err
    assert rc == 2 and f"{bad}: no step size" in err and not (tmp_path / "g.tif").exists()
