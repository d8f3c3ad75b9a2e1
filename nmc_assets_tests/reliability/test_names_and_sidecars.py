"""No name reaches outside the data root; one odd sidecar never breaks the catalog of the others."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pytest

from nmc_assets.features.catalog import build_catalog, scan_table
from nmc_assets.ingest import ScanError, read_sidecar
from nmc_assets.paths import DataLayout, InvalidNameError
from nmc_assets_tests.ingest.scan_fixtures import make_volume, write_scan

HOSTILE_NAMES = ["../x", "../../../../../esc", "..", "/etc", "a/b", ".hidden", "", "a\x00b", "x" * 65, "caf\udce9"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_every_per_scan_and_model_path_validates_its_name(tmp_path, name):
    layout = DataLayout.from_path(tmp_path)
    for build in (layout.tomogram, layout.view_probabilities, layout.fused_labels, layout.particle_features,
                  layout.ground_truth_labels, layout.sidecar, layout.stardist_model, layout.grain_model):
        with pytest.raises(InvalidNameError) as info:
            build(name)
        assert repr(name) in str(info.value)


def test_valid_names_build_paths_under_the_root(tmp_path):
    layout = DataLayout.from_path(tmp_path)
    assert layout.particle_features("s-1.b_2") == tmp_path / "warehouse/particle_features/scan_id=s-1.b_2/features.parquet"
    assert layout.stardist_model("nmc_default") == tmp_path / "models/stardist/nmc_default"
    assert layout.ground_truth_labels("s1") is None
    (tmp_path / "incoming").mkdir()
    (tmp_path / "incoming" / "s1.labels.tiff").write_bytes(b"x")
    assert layout.ground_truth_labels("s1") == tmp_path / "incoming" / "s1.labels.tiff"


def test_partition_key_outside_the_root_fails_the_asset_and_writes_nothing(tmp_path):
    from nmc_assets.defs.features import particle_features
    from nmc_assets.defs.resources import BlocksResource, DataRootResource

    root = tmp_path / "a" / "b" / "c" / "d" / "root"
    root.mkdir(parents=True)
    key = "../../../../../esc"
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("scan", [key])
    before = sorted(p for p in tmp_path.rglob("*"))
    result = dg.materialize([particle_features], partition_key=key, instance=instance, raise_on_error=False,
                            resources={"data_root": DataRootResource(data_dir=str(root)), "blocks": BlocksResource(workers=2)})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "invalid scan id '../../../../../esc'" in failure.step_failure_data.error.to_string()
    assert sorted(p for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("text, words", [
    ("[1, 2]", "must be a JSON object, got list"),
    ('"text"', "must be a JSON object, got str"),
    ('{"cycles": 1e400}', "cycles must be an integer"),
    ('{"cycles": 100000000000000000000000}', "cycles must be an integer"),
    ('{"voxel_size_um": 1e400}', "voxel_size_um must be a number"),
    ('{"voxel_size_um": 1e-12}', "voxel_size_um must be a number"),
    ("[" * 100000, "not valid JSON"),
])
def test_odd_sidecars_are_clear_errors(tmp_path, text, words):
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(ScanError) as info:
        read_sidecar(path)
    assert info.value.path == path and words in info.value.problem


@pytest.mark.parametrize("value, warns", [(0.07, False), (1e-3, True), (50.0, True)])
def test_implausible_voxel_size_is_accepted_with_a_warning(tmp_path, value, warns):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"voxel_size_um": value}))
    meta, warnings = read_sidecar(path)
    assert meta["voxel_size_um"] == value
    assert any("outside the usual" in w for w in warnings) == warns


def test_one_odd_sidecar_does_not_break_the_catalog(tmp_path):
    layout = DataLayout.from_path(tmp_path)
    write_scan(layout.incoming, "good", make_volume(), sidecar={"voxel_size_um": 0.2, "cycles": 50})
    for scan_id, text in [("listy", "[1, 2]"), ("texty", '"text"'), ("huge", '{"cycles": 1e400}')]:
        write_scan(layout.incoming, scan_id, make_volume())
        (layout.incoming / f"{scan_id}.json").write_text(text)
    table = scan_table(layout).set_index("scan_id")
    assert table.loc["good", "cycles"] == 50 and table.loc["good", "voxel_size_um"] == 0.2
    assert table.loc["good", "metadata_from"] == "sidecar"
    for scan_id in ("listy", "texty", "huge"):
        assert table.loc[scan_id, "metadata_from"] == "invalid sidecar"
        assert np.isnan(table.loc[scan_id, "voxel_size_um"])
    assert build_catalog(layout).exists()
