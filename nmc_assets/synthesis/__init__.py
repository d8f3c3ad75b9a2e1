"""Generative side: shell fitting, 2D grain sections, the stereological GAN and the virtual-particle dataset.

Modules (science core, no Dagster):

- :mod:`.sections`     2D grain-label sections: reading/writing, section descriptors, Wasserstein distances.
- :mod:`.soft_model`   the radial-GBPD grain model's global parameters, a reparameterisable sampler and
                       hard / soft (differentiable) planar sections.
- :mod:`.gan`          stereological WGAN-GP calibration of the global parameters (checkpoint + resume).
- :mod:`.baseline`     non-adversarial calibration: Nelder-Mead on section-descriptor distances.
- :mod:`.shell_fit`    spherical-harmonic power spectrum and size distribution from label volumes.
- :mod:`.dataset`      synthetic particles (hard tessellation in SH shells), descriptors, published release.
- :mod:`.section_geometry` how observed sections were cut (particle radius law), and sections cut the same way.
- :mod:`.quality`      calibration quality: descriptor distances and parameter recovery.
- :mod:`.store`        the steps' files: grain sections, shell model, grain-model versions and fingerprints.
- :mod:`.plots`        the calibration's training-history plot.
"""
