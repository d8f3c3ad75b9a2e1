"""Shared fixture of the particle-model tests."""

import numpy as np
import pytest

from nmc_assets.particles.grains import GrainParams, sample_grains
from nmc_assets.particles.shell import ShellParams, sample_shell


@pytest.fixture(scope="session")
def particle():
    """A 5 um particle (SH shell) with grains at 1.5 /um^3 (about 90 grains), seed 11."""
    rng = np.random.default_rng(11)
    shell = sample_shell(rng, ShellParams(mean_diameter_um=5.0, size_sigma=0.0))
    grains = sample_grains(rng, GrainParams(density_per_um3=1.5), shell.max_radius_um())
    return shell, grains
