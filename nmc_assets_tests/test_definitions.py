"""The code location loads, and every asset is documented, grouped and versioned."""

import dagster as dg
import pytest

from nmc_assets.definitions import defs


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return defs()


def test_definitions_load(definitions):
    dg.Definitions.validate_loadable(definitions)
    assert "data_root" in definitions.resources and "device" in definitions.resources


def test_every_asset_is_grouped_documented_and_versioned(definitions):
    graph = definitions.resolve_asset_graph()
    keys = [k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable]
    assert keys, "no assets defined"
    for key in keys:
        node = graph.get(key)
        spec = node.assets_def.specs_by_key[key]
        assert node.group_name != "default", f"{key.to_user_string()} has no group"
        assert spec.description, f"{key.to_user_string()} has no description"
        assert node.code_version, f"{key.to_user_string()} has no code_version"


def test_scan_assets_share_the_scan_partitions(definitions):
    graph = definitions.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        pdef = graph.get(key).partitions_def
        if pdef is not None:
            assert isinstance(pdef, dg.DynamicPartitionsDefinition) and pdef.name == "scan", key


def test_data_layout_matches_the_contract(tmp_path):
    from nmc_assets.paths import DataLayout, is_valid_scan_id, split_incoming_name

    layout = DataLayout(tmp_path)
    assert layout.fused_labels("s1") == tmp_path / "warehouse/fused_labels/s1.zarr"
    assert layout.particle_features("s1") == tmp_path / "warehouse/particle_features/scan_id=s1/features.parquet"
    assert layout.catalog == tmp_path / "warehouse/nmc.duckdb"
    assert layout.stardist_model("m") == tmp_path / "models/stardist/m"
    assert split_incoming_name("a.labels.tif") == ("a", ".labels.tif")
    assert split_incoming_name("scan-1.h5") == ("scan-1", ".h5")
    assert split_incoming_name("notes.txt") is None
    assert is_valid_scan_id("A1.b_c-d") and not is_valid_scan_id("_x") and not is_valid_scan_id("a" * 65)
    assert not is_valid_scan_id("bad id")
