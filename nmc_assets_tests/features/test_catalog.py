"""Parquet schema, the DuckDB catalog (atomic rebuild, read-only readers), example queries and the CLI."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from nmc_assets.cli import main
from nmc_assets.features import COLUMN_DOCS, FEATURE_COLUMNS, compute_particle_features, read_features, write_features
from nmc_assets.features.catalog import build_catalog
from nmc_assets.features.sql import CatalogQueryError, query_catalog, query_catalog_df
from nmc_assets.features.queries import EXAMPLE_QUERIES
from nmc_assets.features.table import column_docs_from_parquet
from nmc_assets.paths import DataLayout
from nmc_assets_tests.features.constructed import ball_mask, phase_image


def _scan_frame(scan_id: str, cycles: int, n_side: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    spacing = 14
    shape = (spacing * n_side,) * 3
    labels = np.zeros(shape, np.uint16)
    solid = np.zeros(shape, bool)
    k = 0
    for iz in range(n_side):
        for iy in range(n_side):
            for ix in range(n_side):
                k += 1
                c = ((iz + 0.5) * spacing, (iy + 0.5) * spacing, (ix + 0.5) * spacing)
                ball = ball_mask(shape, c, 6)
                labels[ball] = k
                solid |= ball & ~ball_mask(shape, c, rng.uniform(0, 3.5))
    return compute_particle_features(labels, phase_image(solid), 0.5, scan_id=scan_id, cycles=cycles)


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> DataLayout:
    layout = DataLayout.from_path(tmp_path_factory.mktemp("catalog_root"))
    layout.incoming.mkdir(parents=True)
    for scan_id, cycles, n_side, seed in (("s10", 10, 3, 0), ("s50", 50, 2, 1)):
        write_features(_scan_frame(scan_id, cycles, n_side, seed), layout.particle_features(scan_id))
        (layout.incoming / f"{scan_id}.tif").write_bytes(b"")  # drop-folder presence only
        (layout.incoming / f"{scan_id}.json").write_text(json.dumps({"voxel_size_um": 0.5, "cycles": cycles, "sample": "nmc"}))
    (layout.incoming / "waiting.tif").write_bytes(b"")  # a scan not processed yet
    return layout


def test_parquet_roundtrip_with_units_and_descriptions(layout):
    path = layout.particle_features("s10")
    df = read_features(path)
    assert list(df.columns) == FEATURE_COLUMNS and len(df) == 27
    docs = column_docs_from_parquet(path)
    assert docs["volume_um3"] == {"description": COLUMN_DOCS["volume_um3"]["description"], "unit": "um3"}
    assert docs["surface_outer_um2"]["unit"] == "um2" and docs["damage"]["unit"] == "1"
    assert all(docs[c]["description"] for c in FEATURE_COLUMNS)


def test_write_features_rejects_incomplete_frames(tmp_path, layout):
    df = read_features(layout.particle_features("s10")).drop(columns=["damage"])
    with pytest.raises(ValueError, match="missing columns \\['damage'\\]"):
        write_features(df, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_catalog_views_and_example_queries(layout):
    path = build_catalog(layout)
    assert path == layout.catalog and path.exists()
    counts = query_catalog_df(EXAMPLE_QUERIES["particles_per_scan"], path)
    assert counts.set_index("scan_id")["particles"].to_dict() == {"s10": 27, "s50": 8, "waiting": 0}
    assert counts.set_index("scan_id")["status"].to_dict() == {"s10": "features", "s50": "features", "waiting": "incoming"}
    scans = query_catalog_df("SELECT * FROM scans", path).set_index("scan_id")
    assert scans.loc["s50", "cycles"] == 50 and scans.loc["s50", "voxel_size_um"] == 0.5
    assert scans.loc["s50", "metadata_from"] == "sidecar" and scans.loc["s50", "n_particles"] == 8

    by_depth = query_catalog_df(EXAMPLE_QUERIES["damage_by_depth_and_cycles"], path)
    assert set(by_depth["cycles"]) <= {10, 50} and (by_depth["mean_damage"] >= 0).all()
    pf = query_catalog_df("SELECT * FROM particle_features", path)
    inside = pf[~pf["touches_border"]]
    assert by_depth["particles"].sum() == len(inside)

    top = query_catalog_df(EXAMPLE_QUERIES["most_damaged_with_neighbour_contact"], path)
    assert len(top) == min(10, len(inside))
    assert top["damage"].is_monotonic_decreasing
    assert top["damage"].iloc[0] == pytest.approx(inside["damage"].max(), abs=5e-4)
    assert (top["neighbours"] == 6).all()


def test_catalog_without_features_is_valid(tmp_path):
    layout = DataLayout.from_path(tmp_path)
    path = build_catalog(layout)
    con = duckdb.connect(str(path), read_only=True)
    cols = [r[0] for r in con.sql("DESCRIBE particle_features").fetchall()]
    assert cols == FEATURE_COLUMNS
    assert con.sql("SELECT count(*) FROM particle_features").fetchall()[0][0] == 0
    assert con.sql("SELECT count(*) FROM scans").fetchall()[0][0] == 0
    assert [r[0] for r in con.sql("DESCRIBE damage_drivers").fetchall()] == ["condition", "attribute", "mean_abs_shap", "std_abs_shap", "rank"]
    con.close()


def test_catalog_rebuild_is_atomic_and_readers_are_read_only(layout, tmp_path):
    path = build_catalog(layout)
    reader = duckdb.connect(str(path), read_only=True)
    with pytest.raises(duckdb.Error):
        reader.execute("CREATE TABLE x (a INT)")
    # damage drivers written by analytics appear after the next rebuild, while a reader holds the old file
    layout.analytics.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"condition": ["10", "10"], "attribute": ["contact", "z_um"], "mean_abs_shap": [0.02, 0.01],
         "std_abs_shap": [0.001, 0.002], "rank": [1, 2]}
    ).to_parquet(layout.analytics / "damage_drivers.parquet")
    build_catalog(layout)
    assert reader.sql("SELECT count(*) FROM damage_drivers").fetchall()[0][0] == 0  # old snapshot, still whole
    reader.close()
    assert query_catalog_df("SELECT attribute FROM damage_drivers ORDER BY rank", path)["attribute"].tolist() == ["contact", "z_um"]
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(".nmc.duckdb")]
    assert leftovers == []
    with pytest.raises(CatalogQueryError, match="read-only: only SELECT"):
        query_catalog("DROP VIEW scans", path)


def test_cli_sql_prints_table(layout, capsys):
    build_catalog(layout)
    rc = main(["sql", "SELECT scan_id, count(*) AS n FROM particle_features GROUP BY scan_id ORDER BY scan_id",
               "--data-dir", str(layout.root)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "s10" in out and "27" in out and "s50" in out and "(2 rows)" in out
    rc = main(["sql", "SELECT scan_id FROM scans", "--data-dir", str(layout.root), "--csv"])
    assert rc == 0 and capsys.readouterr().out.splitlines()[0] == "scan_id"


def test_cli_sql_errors(tmp_path, layout, capsys):
    rc = main(["sql", "SELECT 1", "--data-dir", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert rc == 2 and "make demo" in err and "nmc.duckdb" in err
    build_catalog(layout)
    rc = main(["sql", "SELECT no_such_column FROM particle_features", "--data-dir", str(layout.root)])
    assert rc == 1 and "no_such_column" in capsys.readouterr().err
    assert main([]) == 2
