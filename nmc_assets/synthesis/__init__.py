"""Generative side: shell fitting, 2D grain sections, the stereological GAN and the virtual-particle dataset.

Modules (science core, no Dagster):

- :mod:`.sections`     2D grain-label sections: reading/writing, section descriptors, Wasserstein distances.
- :mod:`.soft_model`   the radial-GBPD grain model's global parameters, a reparameterisable sampler and
                       hard / soft (differentiable) planar sections.
- :mod:`.gan`          stereological WGAN-GP calibration of the global parameters (checkpoint + resume).
- :mod:`.baseline`     non-adversarial calibration: Nelder-Mead on section-descriptor distances.
- :mod:`.shell_fit`    spherical-harmonic power spectrum and size distribution from label volumes.
- :mod:`.dataset`      synthetic particles (hard tessellation in SH shells), descriptors, published release.
"""
