"""Outer shell of an NMC secondary particle: a star-shaped body whose radius function is an isotropic
Gaussian random field on the sphere, expanded in real spherical harmonics (docs/design.md §4).

Conventions (used by the beamline and by the synthesis fitting alike):

* Directions are unit vectors ``(n, 3)`` in the order **(z, y, x)**, matching volume axes (z, y, x).
  The polar angle ``theta`` is measured from the +z axis, the azimuth ``phi`` in the y-x plane,
  ``phi = atan2(y, x)``.
* Real spherical harmonics are orthonormal on the unit sphere (``integral Y_lm Y_l'm' dOmega = delta``);
  coefficient index ``k = l*l + l + m`` for ``-l <= m <= l`` (so ``(lmax+1)**2`` coefficients).
* ``Shell.coeffs`` are in **um**: ``r(theta, phi) = sum_k coeffs[k] * Y_k(theta, phi)``.
* The angular power spectrum ``A_l`` (:class:`ShellParams`) is defined on the **relative** radius
  ``r / r_mean`` (dimensionless), where ``r_mean = coeffs[0] / sqrt(4 pi)`` is the spherical mean of r:
  ``A_l = mean over m of (a_lm / r_mean)**2``. :func:`angular_power_spectrum` of
  ``shell.coeffs / shell.mean_radius_um`` estimates it from one particle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ShellParams",
    "Shell",
    "sample_shell",
    "shell_radius",
    "shell_mask",
    "shell_normalised_distance",
    "real_sph_harm_matrix",
    "angular_power_spectrum",
    "fit_sph_coeffs",
    "fibonacci_directions",
    "directions_to_angles",
]

_SQRT_4PI = float(np.sqrt(4.0 * np.pi))


@dataclass(frozen=True)
class ShellParams:
    """Parameters of the outer-shell random field.

    mean_diameter_um: median volume-equivalent diameter of the log-normal size law, in um.
    size_sigma: log-normal spread of the equivalent diameter (sd of ln d), dimensionless.
    amplitude, exponent: angular power spectrum of the relative radius r / r_mean,
        ``A_l = amplitude * (l + 1) ** (-exponent)`` for ``1 <= l <= max_degree`` (A_0 is the mean itself).
    max_degree: highest spherical-harmonic degree L.
    min_diameter_um, max_diameter_um: the size law is truncated to this range (resampled, not clipped).
    """

    mean_diameter_um: float = 8.0
    size_sigma: float = 0.22
    amplitude: float = 0.02
    exponent: float = 2.5
    max_degree: int = 10
    min_diameter_um: float = 5.0
    max_diameter_um: float = 12.0

    def spectrum(self) -> np.ndarray:
        """``A_l`` for l = 0..max_degree (A_0 = 0: the mean radius is not random in shape)."""
        l = np.arange(self.max_degree + 1, dtype=np.float64)
        a = self.amplitude * (l + 1.0) ** (-self.exponent)
        a[0] = 0.0
        return a

    def __post_init__(self) -> None:
        if self.mean_diameter_um <= 0 or self.size_sigma < 0 or self.amplitude < 0 or self.max_degree < 0:
            raise ValueError(f"invalid ShellParams: {self}")
        if not self.min_diameter_um < self.max_diameter_um:
            raise ValueError(f"ShellParams: min_diameter_um must be < max_diameter_um, got {self}")


@dataclass(frozen=True)
class Shell:
    """One realised outer shell.

    coeffs: real SH coefficients of r(theta, phi) in um, shape ((lmax+1)**2,).
    equivalent_radius_um: radius of the ball of equal volume, in um.
    """

    coeffs: np.ndarray
    equivalent_radius_um: float
    lmax: int = field(init=False)

    def __post_init__(self) -> None:
        c = np.asarray(self.coeffs, dtype=np.float64)
        lmax = int(round(np.sqrt(c.size))) - 1
        if (lmax + 1) ** 2 != c.size:
            raise ValueError(f"Shell: coefficient count {c.size} is not a square (lmax+1)**2")
        object.__setattr__(self, "coeffs", c)
        object.__setattr__(self, "lmax", lmax)

    @property
    def mean_radius_um(self) -> float:
        """Spherical mean of r(theta, phi), in um."""
        return float(self.coeffs[0] / _SQRT_4PI)

    @property
    def equivalent_diameter_um(self) -> float:
        return 2.0 * self.equivalent_radius_um

    def max_radius_um(self) -> float:
        """Upper bound of r over the sphere (evaluated on a dense direction set, plus 1 % margin)."""
        return float(_matvec(_dense_basis(self.lmax), self.coeffs).max() * 1.01)

    def min_radius_um(self) -> float:
        return float(max(_matvec(_dense_basis(self.lmax), self.coeffs).min() * 0.99, 0.0))


def directions_to_angles(directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z, y, x) unit vectors -> (theta polar from +z, phi = atan2(y, x)), radians."""
    d = np.asarray(directions, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] != 3:
        raise ValueError(f"directions must have shape (n, 3), got {d.shape}")
    n = np.linalg.norm(d, axis=1)
    n = np.where(n > 0, n, 1.0)
    theta = np.arccos(np.clip(d[:, 0] / n, -1.0, 1.0))
    phi = np.arctan2(d[:, 1], d[:, 2])
    return theta, phi


def real_sph_harm_matrix(lmax: int, directions: np.ndarray) -> np.ndarray:
    """Orthonormal real spherical harmonics up to degree ``lmax`` at ``directions`` ((n, 3), (z, y, x)).

    Returns ``(n, (lmax+1)**2)`` float64; column ``l*l + l + m``. Built from ``scipy.special.sph_harm_y``:
    ``Y_l0``; ``sqrt(2) (-1)^m Re Y_l^m`` for m > 0; ``sqrt(2) (-1)^m Im Y_l^|m|`` for m < 0.
    """
    from scipy.special import sph_harm_y

    theta, phi = directions_to_angles(directions)
    out = np.empty((theta.size, (lmax + 1) ** 2), dtype=np.float64)
    for l in range(lmax + 1):
        for m in range(0, l + 1):
            y = sph_harm_y(l, m, theta, phi)
            if m == 0:
                out[:, l * l + l] = y.real
            else:
                s = np.sqrt(2.0) * (-1.0) ** m
                out[:, l * l + l + m] = s * y.real
                out[:, l * l + l - m] = s * y.imag
    return out


def angular_power_spectrum(coeffs: np.ndarray) -> np.ndarray:
    """``A_l = mean_m a_lm**2`` for l = 0..lmax from real SH coefficients (``(..., (lmax+1)**2)``).

    Pass ``shell.coeffs / shell.mean_radius_um`` to get the dimensionless spectrum of :class:`ShellParams`.
    Works on a batch (leading axes are kept).
    """
    c = np.asarray(coeffs, dtype=np.float64)
    lmax = int(round(np.sqrt(c.shape[-1]))) - 1
    if (lmax + 1) ** 2 != c.shape[-1]:
        raise ValueError(f"coefficient count {c.shape[-1]} is not (lmax+1)**2")
    return np.stack([np.mean(c[..., l * l: (l + 1) ** 2] ** 2, axis=-1) for l in range(lmax + 1)], axis=-1)


def fit_sph_coeffs(directions: np.ndarray, radii: np.ndarray, lmax: int, ridge: float = 1e-8) -> np.ndarray:
    """Least-squares real SH coefficients of a radius function sampled at ``directions`` (radii in any unit).

    Use many well-spread directions (e.g. :func:`fibonacci_directions` with n >= 4 (lmax+1)**2).
    """
    y = real_sph_harm_matrix(lmax, directions)
    r = np.asarray(radii, dtype=np.float64)
    a = y.T @ y + ridge * np.eye(y.shape[1])
    return np.linalg.solve(a, y.T @ r)


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors (z, y, x) on the sphere (Fibonacci lattice)."""
    i = np.arange(n, dtype=np.float64) + 0.5
    z = 1.0 - 2.0 * i / n
    rho = np.sqrt(np.clip(1.0 - z * z, 0.0, 1.0))
    ang = np.pi * (3.0 - np.sqrt(5.0)) * i
    return np.stack([z, rho * np.sin(ang), rho * np.cos(ang)], axis=1)


def _matvec(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Matrix-vector product without BLAS threads (einsum): on a busy machine multi-threaded BLAS
    gemv is 10x slower for these small products."""
    return np.einsum("ij,j->i", a, v)


_DENSE: dict[int, np.ndarray] = {}


def _dense_directions(n: int = 2048) -> np.ndarray:
    if n not in _DENSE:
        _DENSE[n] = fibonacci_directions(n)
    return _DENSE[n]


_BASIS_CACHE: dict[tuple[int, int], np.ndarray] = {}


def _dense_basis(lmax: int, n: int = 2048) -> np.ndarray:
    key = (lmax, n)
    if key not in _BASIS_CACHE:
        _BASIS_CACHE[key] = real_sph_harm_matrix(lmax, _dense_directions(n))
    return _BASIS_CACHE[key]


def _equivalent_radius(coeffs: np.ndarray, lmax: int) -> float:
    """Volume-equivalent radius: V = (1/3) integral r^3 dOmega, quadrature on the Fibonacci set."""
    r = _matvec(_dense_basis(lmax), coeffs)
    volume = 4.0 * np.pi / 3.0 * float(np.mean(np.clip(r, 0, None) ** 3))
    return float((3.0 * volume / (4.0 * np.pi)) ** (1.0 / 3.0))


def sample_shell(rng: np.random.Generator, params: ShellParams, *, min_relative_radius: float = 0.2,
                 max_tries: int = 50) -> Shell:
    """Draw one shell: equivalent diameter from the truncated log-normal law, shape from the SH field.

    Shape: ``a_00 = sqrt(4 pi)`` (mean relative radius 1), ``a_lm ~ N(0, A_l)`` independent for l >= 1.
    A realisation whose relative radius drops below ``min_relative_radius`` anywhere is rejected and
    redrawn (up to ``max_tries``; after that the last draw's fluctuation is scaled down to meet the floor).
    The whole coefficient vector is then scaled so the volume-equivalent radius equals the drawn size.
    """
    lmax = params.max_degree
    spectrum = params.spectrum()
    sd = np.sqrt(np.repeat(spectrum, 2 * np.arange(lmax + 1) + 1))
    # Size: truncated log-normal by resampling (bounded loop; falls back to clipping).
    d = params.mean_diameter_um
    for _ in range(100):
        d = float(params.mean_diameter_um * np.exp(params.size_sigma * rng.standard_normal()))
        if params.min_diameter_um <= d <= params.max_diameter_um:
            break
    d = float(np.clip(d, params.min_diameter_um, params.max_diameter_um))
    basis = _dense_basis(lmax)
    coeffs = None
    for _ in range(max_tries):
        c = sd * rng.standard_normal(sd.size)
        c[0] = _SQRT_4PI
        if _matvec(basis, c).min() >= min_relative_radius:
            coeffs = c
            break
    if coeffs is None:  # shrink the last draw's fluctuation until the floor holds
        fluct_min = float((basis[:, 1:] @ c[1:]).min())
        c[1:] *= (1.0 - min_relative_radius) / max(-fluct_min, 1e-12)
        coeffs = c
    req = _equivalent_radius(coeffs, lmax)
    coeffs = coeffs * (d / 2.0) / req
    return Shell(coeffs=coeffs, equivalent_radius_um=d / 2.0)


def shell_radius(shell: Shell, directions: np.ndarray) -> np.ndarray:
    """r(theta, phi) in um at unit ``directions`` ((n, 3), (z, y, x)); clipped at 0."""
    return np.clip(real_sph_harm_matrix(shell.lmax, directions) @ shell.coeffs, 0.0, None)


_LUT_BASIS: dict[tuple[int, int, int], np.ndarray] = {}


def _radius_lut(shell: Shell, n_theta: int = 61, n_phi: int = 120) -> tuple[np.ndarray, float, float]:
    """Radius on a regular 3-degree (theta, phi) grid with one wrap column, for bilinear lookup
    (basis cached per lmax, table cached on the shell)."""
    cached = shell.__dict__.get("_lut")
    if cached is not None and cached[0] == (n_theta, n_phi):
        return cached[1]
    key = (shell.lmax, n_theta, n_phi)
    if key not in _LUT_BASIS:
        theta = np.linspace(0.0, np.pi, n_theta)
        phi = np.linspace(-np.pi, np.pi, n_phi + 1)
        tt, pp = np.meshgrid(theta, phi, indexing="ij")
        dirs = np.stack([np.cos(tt), np.sin(tt) * np.sin(pp), np.sin(tt) * np.cos(pp)], axis=-1).reshape(-1, 3)
        _LUT_BASIS[key] = real_sph_harm_matrix(shell.lmax, dirs)
    r = np.clip(_matvec(_LUT_BASIS[key], shell.coeffs), 0.0, None).reshape(n_theta, n_phi + 1)
    result = (r, np.pi / (n_theta - 1), 2 * np.pi / n_phi)
    object.__setattr__(shell, "_lut", ((n_theta, n_phi), result))
    return result


def shell_normalised_distance(shell: Shell, shape: tuple[int, int, int], voxel_size_um: float,
                              center_vox: tuple[float, float, float]) -> np.ndarray:
    """``q(x) = |x - c| / r(direction of x - c)`` on a voxel grid (float32, (z, y, x)); inside: q <= 1.

    ``center_vox``: particle centre in voxel coordinates (may be fractional or outside the grid).
    The radius is looked up on a 3-degree (theta, phi) table with bilinear interpolation; voxels
    beyond r_max skip the lookup (their q = |x-c| / r_min > 1). Voxel centres are at integer coordinates.
    """
    from scipy.ndimage import map_coordinates

    if voxel_size_um <= 0:
        raise ValueError(f"voxel_size_um must be > 0, got {voxel_size_um}")
    zz, yy, xx = (np.arange(n, dtype=np.float32) - np.float32(c) for n, c in zip(shape, center_vox))
    vs = np.float32(voxel_size_um)
    dz, dy, dx = zz[:, None, None] * vs, yy[None, :, None] * vs, xx[None, None, :] * vs
    dist = np.sqrt(dz * dz + dy * dy + dx * dx)
    lut, dth, dph = _radius_lut(shell)
    rmin, rmax = float(lut.min()), float(lut.max())
    # Beyond r_max every voxel is outside; q = dist / r_min (> 1) there is only an ordering proxy.
    q = dist / np.float32(max(rmin, 1e-9))
    band = dist <= rmax * 1.02
    if band.any():
        bz, by, bx = np.nonzero(band)
        pz, py, px = zz[bz] * vs, yy[by] * vs, xx[bx] * vs
        d = dist[band]
        theta = np.arccos(np.clip(pz / np.maximum(d, 1e-12), -1.0, 1.0))
        phi = np.arctan2(py, px)
        r = map_coordinates(lut, [theta / dth, (phi + np.pi) / dph], order=1, mode="nearest")
        q[band] = d / np.maximum(r, 1e-9)
    return q.astype(np.float32, copy=False)


def shell_mask(shell: Shell, shape: tuple[int, int, int], voxel_size_um: float,
               center_vox: tuple[float, float, float]) -> np.ndarray:
    """Boolean (z, y, x) volume: voxels whose centre lies inside the star-shaped shell."""
    return shell_normalised_distance(shell, shape, voxel_size_um, center_vox) <= 1.0
