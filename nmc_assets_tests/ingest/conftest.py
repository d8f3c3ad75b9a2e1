"""Ingest test fixtures (helpers live in scan_fixtures.py)."""

from pathlib import Path

import pytest


@pytest.fixture
def incoming(tmp_path) -> Path:
    """An empty drop folder ``<tmp>/incoming`` (the data root is ``tmp_path``)."""
    path = tmp_path / "incoming"
    path.mkdir()
    return path
