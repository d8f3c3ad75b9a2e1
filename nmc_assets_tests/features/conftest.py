"""Shared fixtures of the feature tests: a two-process Dask cluster for the blockwise paths."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def dask_cluster_address():
    """Address of a ``distributed.LocalCluster`` with 2 worker processes of 1 thread (started once)."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       silence_logs=40)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()
