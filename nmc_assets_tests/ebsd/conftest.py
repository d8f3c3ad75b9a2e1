"""Fixtures of the EBSD tests: the shared real maps (skipped when ``../shared`` is absent) and small
virtual maps with truth (session-scoped)."""

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_EBSD = REPO.parent / "shared" / "data" / "ebsd"


@pytest.fixture(scope="session")
def shared_ebsd() -> Path:
    if not (SHARED_EBSD / "defdap" / "testDataEBSD.cpr").is_file():
        pytest.skip(f"shared EBSD data not found at {SHARED_EBSD}")
    return SHARED_EBSD


@pytest.fixture(scope="session")
def virtual_dir(tmp_path_factory) -> Path:
    """Two square-grid and two hexagonal-grid virtual .ang maps (R = 2.5 um, 0.1 um step) with truth."""
    from nmc_assets.ebsd.virtual import VirtualEbsdSettings, write_virtual_maps

    root = tmp_path_factory.mktemp("virtual_ebsd")
    write_virtual_maps(root / "square", 2, VirtualEbsdSettings(grid="square"), seed=1)
    write_virtual_maps(root / "hex", 2, VirtualEbsdSettings(grid="hex"), seed=2)
    return root


def two_grain_map(euler_left, euler_right, laue: str = "m-3m", shape=(12, 16), step: float = 0.5):
    """An EbsdMap: left half one orientation, right half another (Bunge, rad), one phase of ``laue``."""
    from nmc_assets.ebsd.maps import EbsdMap, phase_from_point_group

    euler = np.zeros(shape + (3,))
    euler[:, : shape[1] // 2] = euler_left
    euler[:, shape[1] // 2 :] = euler_right
    phase = {1: phase_from_point_group(1, "test", laue, "test")}
    return EbsdMap(euler, np.ones(shape, np.int32), phase, step, "test.ang")
