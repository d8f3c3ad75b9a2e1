"""Particle model shared by the virtual beamline and the synthesis calibration.

* :mod:`nmc_assets.particles.shell`: star-shaped outer shell, radius r(theta, phi) as a spherical-harmonic
  Gaussian random field (lengths in um, directions (z, y, x)).
* :mod:`nmc_assets.particles.grains`: the radial generalized balanced power diagram of grains inside the
  shell: its parameters (:class:`GrainParams`), noise sampler and differentiable geometry (torch).
* :mod:`nmc_assets.particles.tessellation`: cell distances, hard voxel labels, grain principal axes.
* :mod:`nmc_assets.particles.soft_tessellation`: softmax assignments and soft boundary maps.
* :mod:`nmc_assets.particles.sections`: planar sections of model particles, hard and soft.

numpy-only at import; torch is imported inside the functions that need it.
"""

from nmc_assets.particles.grains import (
    CALIBRATION_MARGIN_CELLS,
    GrainNoise,
    GrainParams,
    Grains,
    grain_geometry,
    radial_metrics,
    sample_grain_noise,
    sample_grains,
)
from nmc_assets.particles.sections import (
    Section,
    SectionPlane,
    SoftSection,
    hard_section,
    hard_sections,
    random_plane,
    soft_section,
)
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
    "CALIBRATION_MARGIN_CELLS", "GrainNoise", "GrainParams", "Grains", "grain_geometry", "radial_metrics",
    "sample_grain_noise", "sample_grains",
    "Section", "SectionPlane", "SoftSection", "hard_section", "hard_sections", "random_plane", "soft_section",
    "Shell", "ShellParams", "angular_power_spectrum", "fibonacci_directions", "fit_sph_coeffs",
    "real_sph_harm_matrix", "sample_shell", "shell_mask", "shell_normalised_distance", "shell_radius",
    "soft_assignment", "cell_distances", "grain_principal_axes", "hard_labels", "render_grain_labels",
]
