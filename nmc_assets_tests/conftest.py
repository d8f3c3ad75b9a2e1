"""Suite-wide test settings: quiet TensorFlow, a data root that is never the repository's ``data/``, and the
session fixtures that tests in several folders share (one instance per session)."""

import os

import pytest

#: Shared session fixtures: the tiny StarDist model (``segmentation/`` and ``defs/`` tests), a small complete
#: data root (``examples/`` and the viewer).
pytest_plugins = ["nmc_assets_tests.segmentation.fixtures", "nmc_assets_tests.examples.fixtures"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True, scope="session")
def _isolated_data_root(tmp_path_factory):
    """Point ``NMC_DATA_DIR`` at a session temp dir so no test writes into the repository's data root."""
    old = os.environ.get("NMC_DATA_DIR")
    os.environ["NMC_DATA_DIR"] = str(tmp_path_factory.mktemp("nmc_data_root"))
    yield
    if old is None:
        os.environ.pop("NMC_DATA_DIR", None)
    else:
        os.environ["NMC_DATA_DIR"] = old


@pytest.fixture(scope="session")
def dask_cluster_address():
    """A ``distributed.LocalCluster`` with 2 worker processes (1 thread each), shared by the session."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=40) as cluster:
        yield cluster.scheduler_address
