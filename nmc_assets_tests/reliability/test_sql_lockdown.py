"""``nmc-assets sql`` touches the catalog and its feature files only, and prints every statement's result."""

import pytest

from nmc_assets.cli import main
from nmc_assets.features.catalog import build_catalog
from nmc_assets.features.sql import CatalogQueryError, query_catalog, query_catalog_frames
from nmc_assets.paths import DataLayout


@pytest.fixture()
def catalog(tmp_path):
    import pandas as pd

    from nmc_assets.features.columns import FEATURE_COLUMNS
    from nmc_assets.storage import atomic_write_parquet

    layout = DataLayout.from_path(tmp_path / "root")
    row = {c: 0.5 for c in FEATURE_COLUMNS}
    row.update(scan_id="s1", particle_id=1, touches_border=False, cycles=10)
    frame = pd.DataFrame([row]).drop(columns=["scan_id"])
    atomic_write_parquet(layout.particle_features("s1"), frame)
    return layout, build_catalog(layout)


def _sql(layout, query, capsys):
    rc = main(["sql", query, "--data-dir", str(layout.root)])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("query, words", [
    ("COPY (SELECT 1) TO '{outside}/x.csv'", "refused COPY"),
    ("COPY (SELECT 1) TO '{warehouse}/particle_features/x.csv'", "refused COPY"),
    ("SELECT * FROM read_csv('/etc/passwd')", "disabled"),
    ("SELECT * FROM read_text('/etc/hostname')", "disabled"),
    ("SELECT * FROM glob('/root/*')", "disabled"),
    ("SELECT * FROM read_parquet('{warehouse}/../x.parquet')", "disabled"),
    ("INSTALL httpfs", "refused"),
    ("LOAD httpfs", "refused"),
    ("SET threads = 1", "refused"),
    ("ATTACH '{outside}/y.duckdb' AS y", "refused"),
    ("SELECT 1; COPY (SELECT 1) TO '{outside}/z.csv'", "refused COPY"),
    ("DROP VIEW scans", "refused"),
    ("", "empty"),
])
def test_hostile_sql_is_refused_and_touches_nothing(catalog, tmp_path, capsys, query, words):
    layout, path = catalog
    outside = tmp_path / "outside"
    outside.mkdir()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    rc, out, err = _sql(layout, query.format(outside=outside, warehouse=layout.warehouse), capsys)
    assert rc in (1, 2) and words in err and out == ""
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_every_statement_result_is_printed(catalog, capsys):
    layout, _ = catalog
    rc, out, err = _sql(layout, "SELECT 41 + 1 AS answer; SELECT count(*) AS n FROM particle_features", capsys)
    assert rc == 0 and err == ""
    assert "-- [1/2] SELECT 41 + 1 AS answer" in out and "42" in out
    assert "-- [2/2]" in out and out.rstrip().endswith("(1 row)")


def test_reading_the_catalog_and_its_feature_files_still_works(catalog):
    layout, path = catalog
    frames = query_catalog_frames("DESCRIBE particle_features; SHOW TABLES; PRAGMA version; "
                                  "EXPLAIN SELECT * FROM scans; SELECT scan_id FROM particle_features", path)
    assert [len(df) > 0 for _, df in frames] == [True] * 5
    assert frames[-1][1]["scan_id"].tolist() == ["s1"]
    with pytest.raises(CatalogQueryError, match="refused CREATE"):
        query_catalog("CREATE TABLE t (x INT)", path)
