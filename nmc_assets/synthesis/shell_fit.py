"""Fit the outer-shell model (angular power spectrum + size law, :class:`particles.shell.ShellParams`)
from 3D particle label volumes (the nano-CT side of the multi-scale model).

Per particle (skipping particles cut by the volume border and tiny ones): rays from the centroid along
Fibonacci directions find the boundary radius r(direction) (um); real spherical-harmonic coefficients up
to degree L are fitted by least squares; divided by the spherical mean radius they give a per-particle
spectrum A_l = mean_m a_lm^2. Voxelisation noise (white on the sphere) adds sigma^2 * 4 pi / n_dirs to
every coefficient's variance; sigma^2 is estimated from the fit residual and subtracted. The mean
spectrum over particles, for l = 2..L, is fitted by A_l = amplitude * (l + 1)^(-exponent) (least squares in
log space; l = 1 is left out because the centroid, not the SH origin, is the ray origin). Sizes: volume-
equivalent diameters, log-normal (median, sd of ln d).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

#: Prior used when no label volume exists (docs/design.md §4): the particle model's defaults, NMC811 secondary
#: particles of about 8 um with mild shape fluctuations (Furat et al. 2021 report d ~ 5-12 um).
PRIOR_NOTE = "prior: particles.shell.ShellParams defaults (no segmented particles were available)"


def particle_radii(mask: np.ndarray, voxel_size_um: float, directions: np.ndarray, step_vox: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Boundary radius (um) along each direction ((n,3) z,y,x) from the mask centroid; returns (radii, centroid_vox).

    The radius is the first distance at which the ray leaves the mask (nearest-voxel sampling).
    """
    from scipy.ndimage import map_coordinates

    coords = np.argwhere(mask)
    centre = coords.mean(axis=0)
    rmax = float(np.linalg.norm(np.array(mask.shape), ord=2))
    t = np.arange(0, rmax, step_vox)
    pts = centre[None, None, :] + directions[:, None, :] * t[None, :, None]  # (n, nt, 3)
    inside = map_coordinates(mask.astype(np.uint8), pts.reshape(-1, 3).T, order=0, mode="constant", cval=0).reshape(len(directions), len(t)) > 0
    first_out = np.argmax(~inside, axis=1)
    first_out[inside.all(axis=1)] = len(t) - 1
    radii = (t[first_out] - step_vox / 2) * voxel_size_um
    return np.clip(radii, 0, None), centre


def particle_shapes(labels: np.ndarray, voxel_size_um: float, lmax: int = 10, n_directions: int = 600, min_voxels: int = 1000) -> dict:
    """Per-particle SH analysis of a label volume (z, y, x): equivalent diameters (um), relative spectra
    (noise-corrected, (n, lmax+1)) and the number of particles skipped (border / tiny)."""
    from scipy import ndimage as ndi

    from nmc_assets.particles.shell import angular_power_spectrum, fibonacci_directions, real_sph_harm_matrix

    dirs = fibonacci_directions(n_directions)
    Y = real_sph_harm_matrix(lmax, dirs)
    pinv = np.linalg.pinv(Y)
    diam, spectra, skipped_border, skipped_small = [], [], 0, 0
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        if any(s.start == 0 or s.stop == n for s, n in zip(sl, labels.shape)):
            skipped_border += 1
            continue
        pad = tuple(slice(max(s.start - 2, 0), min(s.stop + 2, n)) for s, n in zip(sl, labels.shape))
        m = labels[pad] == k
        nvox = int(m.sum())
        if nvox < min_voxels:
            skipped_small += 1
            continue
        r, _ = particle_radii(m, voxel_size_um, dirs)
        coeffs = pinv @ r
        resid = r - Y @ coeffs
        dof = max(len(r) - Y.shape[1], 1)
        noise_var = float(resid @ resid) / dof  # um^2 per direction
        r_mean = coeffs[0] / np.sqrt(4 * np.pi)
        spec = angular_power_spectrum(coeffs / r_mean)
        spec = spec - noise_var * 4 * np.pi / len(dirs) / r_mean**2
        spectra.append(spec)
        diam.append(float((6 * nvox * voxel_size_um**3 / np.pi) ** (1 / 3)))
    return {
        "equivalent_diameter_um": np.array(diam),
        "spectra": np.array(spectra).reshape(-1, lmax + 1),
        "skipped_border": skipped_border,
        "skipped_small": skipped_small,
    }


def fit_power_law(spectrum: np.ndarray, l_min: int = 2) -> tuple[float, float]:
    """(amplitude, exponent) of A_l = amplitude (l+1)^(-exponent) by least squares in log space over l >= l_min
    (non-positive entries, i.e. below the noise floor, are left out)."""
    l = np.arange(len(spectrum))
    ok = (l >= l_min) & (spectrum > 0)
    if ok.sum() < 2:
        raise ValueError("shell fit: fewer than two positive spectrum values; cannot fit amplitude and exponent")
    slope, intercept = np.polyfit(np.log(l[ok] + 1.0), np.log(spectrum[ok]), 1)
    return float(np.exp(intercept)), float(-slope)


def fit_shell_params(shapes: list[dict], lmax: int = 10, min_particles: int = 3) -> tuple[object, dict]:
    """ShellParams from one or more :func:`particle_shapes` results; returns (params, summary dict).

    With fewer than ``min_particles`` usable particles the documented prior (``ShellParams()``) is returned.
    """
    from nmc_assets.particles.shell import ShellParams

    diam = np.concatenate([s["equivalent_diameter_um"] for s in shapes]) if shapes else np.zeros(0)
    spectra = np.concatenate([s["spectra"] for s in shapes]) if shapes else np.zeros((0, lmax + 1))
    skipped = {"skipped_border": int(sum(s["skipped_border"] for s in shapes)), "skipped_small": int(sum(s["skipped_small"] for s in shapes))}
    if len(diam) < min_particles:
        p = ShellParams()
        return p, {"source": "prior", "note": PRIOR_NOTE, "n_particles": int(len(diam)), **skipped, "params": asdict(p)}
    mean_spec = spectra.mean(axis=0)
    amplitude, exponent = fit_power_law(mean_spec)
    logd = np.log(diam)
    median = float(np.exp(logd.mean()))
    sigma = float(logd.std(ddof=1)) if len(diam) > 1 else 0.0
    p = ShellParams(
        mean_diameter_um=median,
        size_sigma=sigma,
        amplitude=amplitude,
        exponent=exponent,
        max_degree=lmax,
        min_diameter_um=float(diam.min() * 0.9),
        max_diameter_um=float(diam.max() * 1.1),
    )
    summary = {
        "source": "fitted",
        "n_particles": int(len(diam)),
        **skipped,
        "params": asdict(p),
        "mean_spectrum": mean_spec.tolist(),
        "diameter_quantiles_um": {q: float(np.quantile(diam, float(q))) for q in ("0.05", "0.5", "0.95")},
    }
    return p, summary


def read_label_volume(path: str | Path) -> tuple[np.ndarray, float]:
    """Labels and voxel size (um) from a fused-labels Zarr (attr ``voxel_size_um``) or a ``<scan>.labels.tif``
    (voxel size from the scan's ``<scan>.json`` sidecar, default 0.07)."""
    import json

    path = Path(path)
    if path.suffix == ".zarr":
        from nmc_assets.storage import open_zarr

        arr = open_zarr(path)
        vs = arr.attrs.get("voxel_size_um")
        if vs is None:
            raise ValueError(f"{path}: fused labels have no 'voxel_size_um' attribute")
        return np.asarray(arr[...]), float(vs)
    import tifffile

    labels = tifffile.imread(path)
    if labels.ndim != 3:
        raise ValueError(f"{path}: label volume must be 3D, got shape {labels.shape}")
    scan = path.name[: -len(".labels.tif")] if path.name.endswith(".labels.tif") else path.stem
    sidecar = path.with_name(f"{scan}.json")
    vs = 0.07
    if sidecar.exists():
        vs = float(json.loads(sidecar.read_text()).get("voxel_size_um", 0.07))
    return labels, vs
