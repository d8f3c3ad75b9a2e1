"""Shared fixtures of the synthesis tests (tiny sizes; session-scoped where something is generated)."""

import numpy as np
import pytest

from nmc_assets.particles.grains import GrainParams
from nmc_assets.particles.sections import hard_sections

#: The reference of the tests: the particle model's default grain parameters.
REFERENCE = GrainParams(density_per_um3=1.0, elongation_log_mean=0.8, elongation_log_sd=0.25, alignment_spread_deg=15.0, weight_spread=0.1)


@pytest.fixture(scope="session")
def reference_params() -> GrainParams:
    return REFERENCE


@pytest.fixture(scope="session")
def observed_sections():
    """24 pseudo-EBSD sections (R = 2.5 um, 0.1 um pixels) of the reference model."""
    return hard_sections(REFERENCE, [2.5] * 24, [0.1] * 24, seed=11)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def disc_labels(size: int = 41) -> np.ndarray:
    return ((np.indices((size, size)) - size // 2) ** 2).sum(0) <= (size // 2 - 1) ** 2
