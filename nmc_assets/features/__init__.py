"""Per-particle features (DESIGN 3.3) and the DuckDB catalog over them.

- :func:`compute_particle_features`: labels + tomogram -> one row per particle (``extract``).
- :func:`write_features` / :func:`read_features`: Parquet with column descriptions and units (``table``).
- :func:`build_catalog` / :func:`query_catalog`: ``warehouse/nmc.duckdb`` views, read-only SQL (``catalog``).
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
