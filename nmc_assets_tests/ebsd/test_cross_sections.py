import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tifffile

from nmc_assets.ebsd.cross_sections import GRAIN_TABLE_FILE, has_cross_sections, read_cross_sections, write_cross_sections


def _label_tiff(folder):
    lab = np.zeros((20, 20), np.uint16)
    lab[2:18, 2:10] = 1
    lab[2:18, 10:18] = 2
    tifffile.imwrite(folder / "aaa_labels.tif", lab)
    (folder / "aaa_labels.json").write_text(json.dumps({"pixel_size_um": 0.05}))


def test_a_folder_of_tiffs_and_maps_gives_all_sections(tmp_path, virtual_dir):
    from nmc_assets.synthesis.sections import read_sections

    src = tmp_path / "cross_sections"
    src.mkdir()
    assert not has_cross_sections(src)
    shutil.copy(virtual_dir / "square" / "virtual_0000.ang", src / "sq.ang")
    assert has_cross_sections(src)
    shutil.copy(virtual_dir / "hex" / "virtual_0001.ang", src / "hx.ang")
    _label_tiff(src)
    out = tmp_path / "grain_sections"
    sections = write_cross_sections(out, src)
    assert [s.name for s in sections] == ["aaa_labels", "hx_p001", "sq_p001"]
    back = read_sections(out)
    assert [s.name for s in back] == ["aaa_labels", "hx_p001", "sq_p001"]
    assert [s.pixel_size_um for s in back] == [0.05, 0.1, 0.1]
    for a, b in zip(sections, back):
        np.testing.assert_array_equal(a.labels, b.labels)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == "user" and manifest["n_sections"] == 3
    assert [e["file"] for e in manifest["ebsd_maps"]] == ["hx.ang", "sq.ang"] and "hexagonal" in manifest["ebsd_maps"][0]["grid"]
    table = pd.read_parquet(out / GRAIN_TABLE_FILE)
    assert set(table.section) == {"hx_p001", "sq_p001"}
    assert len(table[table.section == "sq_p001"]) == back[2].labels.max()
    assert table.c_axis_radial_angle_deg.dropna().between(0, 90).all()


def test_a_bad_map_fails_with_its_name(tmp_path, virtual_dir):
    src = tmp_path / "cross_sections"
    src.mkdir()
    lines = (virtual_dir / "square" / "virtual_0000.ang").read_text().splitlines(keepends=True)
    (src / "broken.ang").write_text("".join(lines[:-30]))
    with pytest.raises(ValueError, match=r"broken\.ang: truncated"):
        read_cross_sections(src)
    assert not (tmp_path / "out").exists()


def test_grain_sections_asset_reads_ebsd_maps(tmp_path, virtual_dir):
    import dagster as dg

    from nmc_assets.defs import synthesis as S
    from nmc_assets.defs.resources import DataRootResource
    from nmc_assets.paths import DataLayout

    layout = DataLayout.from_path(tmp_path)
    layout.cross_sections.mkdir(parents=True)
    shutil.copy(virtual_dir / "hex" / "virtual_0000.ang", layout.cross_sections / "nmc_a.ang")
    _label_tiff(layout.cross_sections)
    res = dg.materialize([S.grain_sections], instance=dg.DagsterInstance.ephemeral(),
                         resources={"data_root": DataRootResource(data_dir=str(tmp_path))},
                         run_config={"ops": {"grain_sections": {"config": {"min_grain_size": 5}}}})
    assert res.success
    meta = res.asset_materializations_for_node("grain_sections")[0].metadata
    assert meta["n_sections"].value == 2 and meta["source"].value == "user"
    assert [e["file"] for e in meta["ebsd_maps"].value] == ["nmc_a.ang"]
    out = layout.synthesis / "grain_sections"
    assert json.loads((out / "manifest.json").read_text())["ebsd_settings"]["min_grain_size"] == 5
    assert (out / "nmc_a_p001.tif").exists() and (out / GRAIN_TABLE_FILE).exists()
    (layout.cross_sections / "nmc_a.ang").write_text("# GRID: SqrGrid\n# XSTEP: 0.1\n1 2 3\n")
    with pytest.raises(Exception, match=r"nmc_a\.ang: "):
        dg.materialize([S.grain_sections], instance=dg.DagsterInstance.ephemeral(),
                       resources={"data_root": DataRootResource(data_dir=str(tmp_path))})
