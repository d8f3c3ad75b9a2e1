"""Phase-contrast-like image formation for the virtual beamline.

From a phase-class volume (0 = pore, 1 = carbon-binder domain (CBD), 2 = NMC solid; cracks and voids
are pore) the reconstructed grey value is modelled as

    phase    = value[class] + texture (NMC only, smooth random field) - core darkening (NMC)
               + slow density modulation (CBD only)
    blurred  = G_psf * phase                                  (point-spread function, Gaussian)
    image    = blurred - halo * LoG_halo(phase)               (phase-contrast edge fringes)
               + noise (band-limited Gaussian)                (reconstruction noise)
               + rings(r around the rotation axis)            (ring artifacts, constant along z)
               + background(z, y, x)                          (cupping + slow drift)
    grey     = clip(round(offset + gain * image), 0, 255)     (8-bit, like the real slice)

Lengths in the parameters are in um (converted to voxels with the scan's voxel size) except the ring
width, which is a detector property in pixels. Every random draw comes from the generator passed in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi

from nmc_assets.settings import setting

__all__ = ["RenderParams", "carbon_binder", "render_image", "smooth_noise"]


@dataclass(frozen=True)
class RenderParams:
    """Image formation (module docstring). Phases are relative to the NMC phase (1.0): the binder/particle
    contrast is ``phase_nmc - phase_cbd`` (default 0.62; the ``hard`` preset halves it)."""

    phase_pore: float = setting(0.15, "phase of pores, cracks and voids")
    phase_cbd: float = setting(0.38, "phase of the carbon-binder domain (binder grey level; NMC = phase_nmc)")
    phase_nmc: float = setting(1.0, "phase of the NMC solid")
    cbd_fraction: float = setting(0.8, "share of the pore space filled with CBD")
    cbd_scale_um: float = setting(0.15, "correlation length of the field that places the CBD (um)")
    cbd_modulation: float = setting(0.3, "binder lumpiness: sd of the CBD density texture, relative to phase_cbd")
    cbd_modulation_scale_um: float = setting(1.2, "correlation length of the binder lumpiness (um)")
    core_darkening: float = setting(0.12, "NMC phase loss at the particle core (needs nmc_depth)")
    texture_sd: float = setting(0.1, "NMC intensity texture (phase units)")
    texture_scale_um: float = setting(0.2, "correlation length of the NMC texture (um)")
    psf_sigma_um: float = setting(0.12, "Gaussian point-spread function sigma (um)")
    psf_min_px: float = setting(0.8, "PSF sigma floor in voxels (reconstructions are never sharper than ~2 voxels FWHM)")
    halo: float = setting(0.15, "strength of the LoG phase-contrast edge fringe")
    halo_sigma_um: float = setting(0.12, "width of the edge fringe (um)")
    noise_sd: float = setting(0.045, "noise sd (phase units) at voxels <= noise_ref_voxel_um; x (ref / voxel) ** 0.5 above")
    noise_ref_voxel_um: float = setting(0.06, "voxel size (um) below which the noise sd no longer grows")
    noise_scale_um: float = setting(0.07, "noise correlation length: sigma of the Gaussian low-pass of white noise (um)")
    ring_count: int = setting(14, "number of ring artefacts")
    ring_amplitude: float = setting(0.04, "ring artefact amplitude sd (phase units)")
    ring_width_px: float = setting(0.8, "ring width (detector pixels)")
    cupping: float = setting(0.06, "background rise from the rotation axis to the corner (phase units)")
    drift_amplitude: float = setting(0.04, "slow 3D background waves (phase units)")
    drift_scale_um: float = setting(15.0, "wavelength of the background waves (um)")
    grey_offset: float = setting(48.0, "grey value of phase 0")
    grey_gain: float = setting(138.0, "grey per unit phase (NMC ~ 186, pore ~ 69)")

    def to_dict(self) -> dict:
        return asdict(self)


def smooth_noise(rng: np.random.Generator, shape, sigma_px: float) -> np.ndarray:
    """Gaussian white noise low-passed with ``sigma_px`` and rescaled to unit sd (float32)."""
    w = rng.standard_normal(shape, dtype=np.float32)
    if sigma_px > 0.3:
        w = ndi.gaussian_filter(w, sigma_px, mode="wrap")
        w /= max(float(w.std()), 1e-6)
    return w


def carbon_binder(rng: np.random.Generator, particles: np.ndarray, voxel_size_um: float,
                  params: RenderParams) -> np.ndarray:
    """Boolean CBD mask in the pore space: a thresholded smooth field biased towards particle surfaces
    (binder collects in the necks between particles), filling ``cbd_fraction`` of the pore space."""
    pore = ~particles
    if not pore.any():
        return np.zeros_like(particles)
    # correlated field at reduced resolution (cheap), upsampled
    f = 2
    small_shape = tuple(max(2, -(-s // f)) for s in particles.shape)
    field = smooth_noise(rng, small_shape, max(params.cbd_scale_um / voxel_size_um / f, 0.5))
    field = _upsample(field, f, particles.shape)
    near = ndi.gaussian_filter(particles.astype(np.float32), max(0.6 / voxel_size_um, 1.0))
    score = field + 2.0 * near
    vals = score[pore]
    thr = np.quantile(vals, 1.0 - params.cbd_fraction)
    return pore & (score > thr)


def _upsample(small: np.ndarray, factor: int, shape) -> np.ndarray:
    """Trilinear upsampling by an integer factor (torch, single-threaded), cropped to ``shape``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = torch.from_numpy(np.ascontiguousarray(small, dtype=np.float32))[None, None]
        up = torch.nn.functional.interpolate(t, scale_factor=factor, mode="trilinear", align_corners=False)
    finally:
        torch.set_num_threads(threads)
    return up[0, 0].numpy()[tuple(slice(0, s) for s in shape)]


def _coarse_noise(rng: np.random.Generator, shape, sigma_px: float, factor: int = 4) -> np.ndarray:
    """Unit-sd smooth noise with a long correlation length, made at 1/factor resolution and upsampled."""
    small = tuple(max(2, -(-s // factor)) for s in shape)
    return _upsample(smooth_noise(rng, small, max(sigma_px / factor, 0.5)), factor, shape)


def render_image(rng: np.random.Generator, classes: np.ndarray, voxel_size_um: float,
                 params: RenderParams = RenderParams(), nmc_depth: np.ndarray | None = None) -> np.ndarray:
    """uint8 (z, y, x) image from a class volume (0 pore, 1 CBD, 2 NMC).

    ``nmc_depth`` (optional, float32, same shape): normalised radius inside each particle (0 centre,
    1 surface); the NMC phase drops by ``core_darkening * (1 - q)^2`` towards the core (the porous,
    lower-density core of cycled secondary particles).
    """
    vs = float(voxel_size_um)
    lut = np.array([params.phase_pore, params.phase_cbd, params.phase_nmc], dtype=np.float32)
    phase = lut[classes]
    nmc = classes == 2
    if nmc_depth is not None and params.core_darkening > 0:
        phase -= np.float32(params.core_darkening) * (1 - np.clip(nmc_depth, 0, 1)) ** 2 * nmc
    if params.cbd_modulation > 0:
        mod = _coarse_noise(rng, classes.shape, params.cbd_modulation_scale_um / vs)
        phase += np.float32(params.cbd_modulation * params.phase_cbd) * mod * (classes == 1)
    phase += np.float32(params.texture_sd) * smooth_noise(rng, classes.shape, params.texture_scale_um / vs) * nmc
    psf_px = max(params.psf_sigma_um / vs, params.psf_min_px)
    img = ndi.gaussian_filter(phase, psf_px)
    if params.halo > 0:
        halo_px = max(params.halo_sigma_um / vs, params.psf_min_px)
        # LoG = discrete Laplacian of the Gaussian-smoothed phase; reuse the PSF pass when the widths agree
        smooth = img if abs(halo_px - psf_px) < 1e-6 else ndi.gaussian_filter(phase, halo_px)
        img -= np.float32(params.halo) * ndi.laplace(smooth)
        del smooth
    del phase
    # coarser voxels average more signal: noise sd ~ (reference voxel / voxel) ** 0.5 above the reference
    noise_sd = params.noise_sd * min(1.0, params.noise_ref_voxel_um / vs) ** 0.5
    img += np.float32(noise_sd) * smooth_noise(rng, classes.shape, params.noise_scale_um / vs)
    nz, ny, nx = classes.shape
    # ring artifacts about a rotation axis along z, slightly off the volume centre
    yc = (ny - 1) / 2 + rng.uniform(-0.1, 0.1) * ny
    xc = (nx - 1) / 2 + rng.uniform(-0.1, 0.1) * nx
    yy, xx = np.ogrid[:ny, :nx]
    r = np.sqrt((yy - yc) ** 2 + (xx - xc) ** 2).astype(np.float32)
    rmax = float(r.max())
    rings = np.zeros((ny, nx), np.float32)
    for _ in range(int(params.ring_count)):
        rk = rng.uniform(2.0, rmax)
        ak = params.ring_amplitude * rng.standard_normal()
        rings += np.float32(ak) * np.exp(-0.5 * ((r - rk) / params.ring_width_px) ** 2)
    ring_z = 1.0 + 0.3 * np.sin(np.linspace(0, 2 * np.pi, nz) * rng.uniform(0.5, 2) + rng.uniform(0, 6.3))
    background = np.float32(params.cupping) * (r / rmax) ** 2
    # slow drift: a few random plane waves with wavelength ~ drift_scale_um
    zz, yv, xv = (np.arange(n, dtype=np.float32) * np.float32(vs) for n in classes.shape)
    for _ in range(3):
        k = rng.standard_normal(3)
        k *= 2 * np.pi / params.drift_scale_um / np.linalg.norm(k)
        ph = rng.uniform(0, 2 * np.pi)
        a = np.float32(params.drift_amplitude / np.sqrt(3))
        cz = np.cos(k[0] * zz + ph)[:, None, None]
        sz = np.sin(k[0] * zz + ph)[:, None, None]
        cyx = (np.cos(k[1] * yv[:, None] + k[2] * xv[None, :])).astype(np.float32)
        syx = (np.sin(k[1] * yv[:, None] + k[2] * xv[None, :])).astype(np.float32)
        img += a * (cz * cyx[None] - sz * syx[None])  # cos(kz z + ph + kyx . yx)
    img += ring_z.astype(np.float32)[:, None, None] * rings[None] + background[None]
    img *= np.float32(params.grey_gain)
    img += np.float32(params.grey_offset)
    np.rint(img, out=img)
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)
