"""Generative side: shell fitting, 2D grain sections, the stereological GAN and the virtual-particle dataset.

Modules (science core, no Dagster):

The grain model itself (parameters, sampler, hard and soft planar sections) is
:mod:`nmc_assets.particles`.

- :mod:`.sections`     2D grain-label sections: reading/writing, section descriptors, Wasserstein distances.
- :mod:`.parameter_space` the learned parameters and the optimisers' unconstrained coordinates.
- :mod:`.soft_descriptors` differentiable per-grain descriptors of soft sections, statistics matching.
- :mod:`.gan`          stereological WGAN-GP calibration of the global parameters (checkpoint + resume).
- :mod:`.baseline`     non-adversarial calibration: Nelder-Mead on section-descriptor distances.
- :mod:`.shell_fit`    spherical-harmonic power spectrum and size distribution from label volumes.
- :mod:`.dataset`      synthetic particles (hard tessellation in SH shells), descriptors, published release.
- :mod:`.section_geometry` how observed sections were cut (particle radius law), and sections cut the same way.
- :mod:`.quality`      calibration quality: descriptor distances and parameter recovery.
- :mod:`.store`        the steps' files: grain sections, shell model, grain-model versions and fingerprints.
- :mod:`.plots`        the calibration's training-history plot.
"""
