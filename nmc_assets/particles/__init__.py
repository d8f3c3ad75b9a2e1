"""Particle model shared by the virtual beamline and the synthesis calibration.

* :mod:`nmc_assets.particles.shell`: star-shaped outer shell, radius r(theta, phi) as a spherical-harmonic
  Gaussian random field (lengths in um, directions (z, y, x)).
* :mod:`nmc_assets.particles.grains`: radial generalized balanced power diagram of grains inside the
  shell: parameters and sampler.
* :mod:`nmc_assets.particles.tessellation`: cell distances (torch), hard voxel labels, grain principal axes.
* :mod:`nmc_assets.particles.soft_tessellation`: softmax assignments and soft boundary maps.

numpy-only at import; torch is imported inside the functions that need it.
"""

from nmc_assets.particles.grains import GrainParams, Grains, radial_metrics, sample_grains
from nmc_assets.particles.shell import (
    Shell,
    ShellParams,
    angular_power_spectrum,
    fibonacci_directions,
    fit_sph_coeffs,
    real_sph_harm_matrix,
    sample_shell,
    shell_mask,
    shell_normalised_distance,
    shell_radius,
)
from nmc_assets.particles.soft_tessellation import soft_assignment
from nmc_assets.particles.tessellation import cell_distances, grain_principal_axes, hard_labels, render_grain_labels

__all__ = [
    "GrainParams", "Grains", "cell_distances", "grain_principal_axes", "hard_labels", "radial_metrics",
    "render_grain_labels", "sample_grains", "soft_assignment",
    "Shell", "ShellParams", "angular_power_spectrum", "fibonacci_directions", "fit_sph_coeffs",
    "real_sph_harm_matrix", "sample_shell", "shell_mask", "shell_normalised_distance", "shell_radius",
]
