"""Per-particle features (docs/design.md) and the DuckDB catalog over them.

- :func:`compute_particle_features`: labels + tomogram -> one row per particle (``extract``), in the
  ``default`` definitions or, with ``FeatureSettings(feature_set="li2022")``, as the paper's
  ``getAllFeatures.m`` computes them (``li2022``; docs/features.md compares the two);
  :func:`~nmc_assets.features.blockwise.compute_particle_features_zarr`: the same table from the Zarr
  stores, block by block on Dask in bounded memory (``blockwise``).
- :func:`write_features` / :func:`read_features`: Parquet with column descriptions and units (``table``).
- :func:`~nmc_assets.features.catalog.build_catalog`: the ``warehouse/nmc.duckdb`` views (``catalog``);
  :func:`~nmc_assets.features.sql.query_catalog`: read-only SQL locked to the catalog (``sql``).
"""

from nmc_assets.features.columns import (
    COLUMN_DOCS,
    FEATURE_COLUMNS,
    NULLABLE_COLUMNS,
    REQUIRED_COLUMNS,
)
from nmc_assets.features.extract import (
    FeatureSettings,
    compute_particle_features,
    estimate_solid_threshold,
)
from nmc_assets.features.table import read_features, write_features

__all__ = [
    "COLUMN_DOCS",
    "FEATURE_COLUMNS",
    "NULLABLE_COLUMNS",
    "REQUIRED_COLUMNS",
    "FeatureSettings",
    "compute_particle_features",
    "estimate_solid_threshold",
    "read_features",
    "write_features",
]
