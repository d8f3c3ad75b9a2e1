"""Writing and reading ``particle_features`` Parquet files with the documented schema."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from nmc_assets.features.columns import FEATURE_COLUMNS, arrow_schema


def features_to_arrow(df: pd.DataFrame, feature_set: str | None = None):
    """The frame as a ``pyarrow.Table`` with exactly :data:`FEATURE_COLUMNS` and the field metadata of
    ``feature_set`` (default: ``df.attrs["feature_set"]``, else "default"; stored as schema metadata).

    Raises ``ValueError`` naming missing or unexpected columns.
    """
    import pyarrow as pa

    missing = [c for c in FEATURE_COLUMNS if c not in df.columns]
    extra = [c for c in df.columns if c not in FEATURE_COLUMNS]
    if missing or extra:
        raise ValueError(f"particle_features frame: missing columns {missing}, unexpected columns {extra}")
    feature_set = feature_set or df.attrs.get("feature_set", "default")
    return pa.Table.from_pandas(df[FEATURE_COLUMNS], schema=arrow_schema(feature_set), preserve_index=False)


def write_features(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the features atomically to ``path`` (zstd Parquet; descriptions and units in field metadata)."""
    from nmc_assets.storage import atomic_write_parquet

    return atomic_write_parquet(path, features_to_arrow(df))


def read_features(path: str | os.PathLike) -> pd.DataFrame:
    """Read one ``features.parquet`` back into a frame (columns in :data:`FEATURE_COLUMNS` order)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return table.to_pandas()[FEATURE_COLUMNS]


def column_docs_from_parquet(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """``{column: {"description", "unit"}}`` as stored in the Parquet schema's field metadata."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    return {
        f.name: {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
        for f in schema
    }
