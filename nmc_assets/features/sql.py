"""Read-only SQL on the catalog ``warehouse/nmc.duckdb``, locked to the catalog (``nmc-assets sql``).

A query connection is opened ``read_only`` and then locked down before any user SQL runs:

- file access only to the feature Parquet files the catalog's views read
  (``allowed_directories`` = ``<warehouse>/particle_features/``; ``enable_external_access = false``):
  no ``read_csv('/etc/passwd')``, ``glob('/root/*')``, ``ATTACH``, ``COPY ... TO``, ``EXPORT``;
- no extension installs or loads (``autoinstall/autoload_known_extensions = false``);
- ``lock_configuration = true``: ``SET``/``RESET`` cannot undo any of it;
- only ``SELECT`` (with ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``PRAGMA`` informational calls, which
  DuckDB plans as selects) and ``EXPLAIN`` statements run; anything else is refused before execution;
- several statements separated by ``;`` are each run and each result is returned, in order.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

#: Statement types a catalog query may contain.
ALLOWED_STATEMENTS = ("SELECT", "EXPLAIN")
#: Default cap on the rows of one result held in memory and printed.
DEFAULT_MAX_ROWS = 200


class CatalogMissingError(FileNotFoundError):
    """The catalog file does not exist yet."""


class CatalogQueryError(ValueError):
    """A query that the read-only catalog connection refuses (not a SELECT, or no statement at all)."""


def connect_readonly(path: str | os.PathLike):
    """A DuckDB connection to the catalog at ``path``, read-only and locked as the module says."""
    import duckdb

    path = Path(path)
    if not path.exists():
        raise CatalogMissingError(
            f"catalog {path} does not exist; materialize particle_catalog first (for example: make demo)"
        )
    features_dir = path.resolve().parent / "particle_features"
    con = duckdb.connect(str(path), read_only=True,
                         config={"autoload_known_extensions": False, "autoinstall_known_extensions": False})
    try:
        con.execute("SET allowed_directories = [?]", [str(features_dir) + os.sep])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except Exception:
        con.close()
        raise
    return con


def split_statements(sql: str) -> list[str]:
    """The statements of ``sql``; :class:`CatalogQueryError` for none or for any non-read statement."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise CatalogQueryError(f"cannot parse the query: {exc}") from None
    if not statements:
        raise CatalogQueryError("the query is empty")
    refused = [st for st in statements if st.type.name not in ALLOWED_STATEMENTS]
    if refused:
        kinds = ", ".join(sorted({st.type.name for st in refused}))
        raise CatalogQueryError(f"the catalog is read-only: only SELECT / EXPLAIN queries run; refused {kinds} "
                                f"({refused[0].query.strip()[:80]!r})")
    return [st.query.strip() for st in statements]


def query_catalog_frames(sql: str, path: str | os.PathLike) -> list[tuple[str, pd.DataFrame]]:
    """Run every statement of ``sql`` on the locked catalog; ``[(statement, result frame), ...]`` in order."""
    statements = split_statements(sql)
    con = connect_readonly(path)
    try:
        return [(text, con.sql(text).df()) for text in statements]
    finally:
        con.close()


def query_catalog_df(sql: str, path: str | os.PathLike) -> pd.DataFrame:
    """The result of a single-statement query as a frame (:class:`CatalogQueryError` for several)."""
    frames = query_catalog_frames(sql, path)
    if len(frames) != 1:
        raise CatalogQueryError(f"expected one statement, got {len(frames)}; use query_catalog_frames")
    return frames[0][1]


def query_catalog(sql: str, path: str | os.PathLike, *, max_rows: int = DEFAULT_MAX_ROWS) -> str:
    """Run ``sql`` (one or more statements) and return every result as a plain-text table."""
    frames = query_catalog_frames(sql, path)
    if len(frames) == 1:
        return format_table(frames[0][1], max_rows=max_rows)
    return "\n\n".join(f"-- [{k}] {text}\n{format_table(df, max_rows=max_rows)}"
                       for k, (text, df) in enumerate(frames, 1))


def catalog_row_counts(path: str | os.PathLike) -> dict[str, int]:
    """Rows in ``particle_features``, ``scans`` and ``damage_drivers``."""
    con = connect_readonly(path)
    try:
        return {
            name: int(con.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0])
            for name in ("particle_features", "scans", "damage_drivers")
        }
    finally:
        con.close()


def format_table(df: pd.DataFrame, *, max_rows: int = DEFAULT_MAX_ROWS) -> str:
    """A readable fixed-width table (floats to 4 significant digits) with a row-count footer."""
    shown = df.head(max_rows)
    with pd.option_context("display.max_columns", None, "display.width", 250, "display.float_format", "{:.4g}".format):
        text = shown.to_string(index=False) if len(shown) else "(no rows) columns: " + ", ".join(map(str, df.columns))
    n = len(df)
    footer = f"({n} row{'s' if n != 1 else ''}" + (f", first {max_rows} shown)" if n > max_rows else ")")
    return f"{text}\n{footer}"
