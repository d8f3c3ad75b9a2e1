import pytest

from nmc_assets.beamline.simulate import ScanConfig, simulate_scan, write_scan

SMALL = dict(shape=(48, 128, 128), voxel_size_um=0.2)


@pytest.fixture(scope="session")
def small_scan():
    """One small simulated scan (48 x 128 x 128 at 0.2 um, 50 cycles), in memory."""
    return simulate_scan(ScanConfig(cycles=50, seed=1, **SMALL))


@pytest.fixture(scope="session")
def written_scan(tmp_path_factory, small_scan):
    """The small scan written to a drop folder; returns the dict of paths."""
    return write_scan(small_scan, tmp_path_factory.mktemp("incoming"), "vs_c50")
