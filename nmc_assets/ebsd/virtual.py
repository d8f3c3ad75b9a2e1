"""Virtual EBSD maps with ground truth: random planar sections of the particle model's particles
(:mod:`nmc_assets.particles`, the calibrated law: seeds within :data:`CALIBRATION_MARGIN_CELLS`, hard
tessellation) written as EDAX/TSL ``.ang`` files on a square or hexagonal grid.

Each grain gets an NMC orientation (phase ``NMC811``, trigonal, TSL symmetry 32 = Laue group -3m): its
c-axis is the radial direction of its seed tilted by a 3D Gaussian of sd tan(``c_axis_spread_deg``)
(as the grain model tilts elongation axes), with a uniform rotation about the c-axis. Measurement noise:
points with a 4-neighbour in another grain are misindexed (random orientation, confidence index < 0.08)
with probability ``boundary_misindex``; a fraction ``low_confidence_fraction`` of the other points too.
Outside the particle: not indexed (phase 0, CI -1). Lengths in um; map frame x = columns, y = rows
(down), z = x cross y; Euler angles Bunge, radians, in orix's convention (lab -> crystal).

Truth (``<folder>/truth/<name>.tif``: uint16 grain labels on the square grid that
:func:`~nmc_assets.ebsd.readers.read_map` gives, 0 outside; ``<name>.json``: the parameters, the plane and
each grain's c-axis) lies beside the maps, out of the way of ``cross_sections/`` readers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nmc_assets.particles.grains import CALIBRATION_MARGIN_CELLS, GrainParams
from nmc_assets.settings import setting

__all__ = ["VirtualEbsdSettings", "VirtualMap", "virtual_map", "write_ang", "write_virtual_maps", "NMC_PHASE"]

#: The phase written to virtual maps: name, TSL symmetry code (32: point group 321, Laue group -3m), lattice (A, deg).
NMC_PHASE = {"name": "NMC811", "symmetry": "32", "lattice": (2.87, 2.87, 14.2, 90.0, 90.0, 120.0)}
_UNINDEXED_EULER = 4 * math.pi  # what TSL writes for points without a solution


@dataclass(frozen=True)
class VirtualEbsdSettings:
    """Geometry and noise of virtual EBSD maps (the grain parameters are passed separately)."""

    radius_um: float = setting(2.5, "particle radius (um)")
    step_um: float = setting(0.1, "map step (um)")
    grid: str = setting("square", "square | hex (TSL hexagonal grid, rows step*sqrt(3)/2 apart)")
    c_axis_spread_deg: float = setting(15.0, "spread of the grains' c-axes around their seed's radial direction (deg)")
    boundary_misindex: float = setting(0.3, "probability that a point next to another grain is misindexed")
    low_confidence_fraction: float = setting(0.02, "fraction of the other particle points misindexed with a low confidence index")
    margin_px: int = setting(4, "unindexed border around the particle section (points)")

    def __post_init__(self) -> None:
        if self.grid not in ("square", "hex"):
            raise ValueError(f"grid must be 'square' or 'hex', got {self.grid!r}")
        if not (self.radius_um > 0 and self.step_um > 0):
            raise ValueError("radius_um and step_um must be > 0")


@dataclass
class VirtualMap:
    """Per-point arrays (n points, row-major in the file's order): ``x``, ``y`` (um), ``euler`` (n, 3) rad,
    ``phase`` (0/1), ``ci``, ``iq``, ``fit``, ``truth`` (grain 1..K, 0 outside); ``c_axes`` (K, 3) per truth
    grain (map frame); grid shape ``nrows``, ``ncols_odd``, ``ncols_even``; the plane's ``offset_um``."""

    x: np.ndarray
    y: np.ndarray
    euler: np.ndarray
    phase: np.ndarray
    ci: np.ndarray
    iq: np.ndarray
    fit: np.ndarray
    truth: np.ndarray
    c_axes: np.ndarray
    nrows: int
    ncols_odd: int
    ncols_even: int
    offset_um: float


def _grid(s: VirtualEbsdSettings, half_width_um: float):
    from nmc_assets.ebsd.readers import hex_grid_xy

    if s.grid == "square":
        n = 2 * int(math.ceil(half_width_um / s.step_um)) + 1
        rr, cc = np.mgrid[0:n, 0:n]
        return cc.ravel() * s.step_um, rr.ravel() * s.step_um, n, n, n
    n = 2 * int(math.ceil(half_width_um / s.step_um)) + 1
    nrows = 2 * int(math.ceil(half_width_um / (s.step_um * math.sqrt(3) / 2))) + 1
    x, y = hex_grid_xy(nrows, n, n - 1, s.step_um)
    return x, y, nrows, n, n - 1


def _tilted_axes(rng: np.random.Generator, radial: np.ndarray, spread_deg: float) -> np.ndarray:
    """Unit axes: ``radial`` (n, 3) plus a tangential Gaussian tilt of sd tan(spread) per component."""
    t = rng.standard_normal(radial.shape) * math.tan(math.radians(spread_deg))
    t -= (t * radial).sum(1, keepdims=True) * radial
    a = radial + t
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _euler_with_c_axis(c: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Bunge Euler angles (n, 3) of orientations whose crystal [001] lies along ``c`` (n, 3, map frame),
    rotated by ``psi`` (rad) about it (orix: O lab->crystal, so ~O * z = c)."""
    from orix.quaternion import Rotation

    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, c)
    norm = np.linalg.norm(axis, axis=1)
    axis = np.where(norm[:, None] > 1e-12, axis / np.maximum(norm, 1e-12)[:, None], [1.0, 0.0, 0.0])
    align = Rotation.from_axes_angles(axis, np.arccos(np.clip(c @ z, -1, 1)))
    spin = Rotation.from_axes_angles(np.tile(z, (len(c), 1)), psi)
    return (~(align * spin)).to_euler()


def virtual_map(params: GrainParams, s: VirtualEbsdSettings, rng: np.random.Generator) -> VirtualMap:
    """One virtual map of a fresh particle of radius ``s.radius_um`` cut by a random plane (offset up to R/2)."""
    import torch
    from orix.quaternion import Rotation
    from scipy.spatial import cKDTree

    from nmc_assets.particles.grains import grain_geometry, radial_metrics, sample_grain_noise
    from nmc_assets.particles.sections import near_plane, random_plane
    from nmc_assets.particles.tessellation import cell_distances

    plane = random_plane(rng, s.radius_um, s.step_um, size_px=3)
    r_sec = math.sqrt(max(s.radius_um**2 - plane.offset_um**2, 0.0))
    half = r_sec + s.margin_px * s.step_um
    x, y, nrows, n_odd, n_even = _grid(s, half)
    x, y = np.round(x, 5), np.round(y, 5)  # as written to the file (the truth is resampled from the same values)
    u, v = x - x.mean(), y - (y.max() + y.min()) / 2
    pts = plane.offset_um * plane.normal[None] + u[:, None] * plane.e1[None] + v[:, None] * plane.e2[None]
    inside = np.linalg.norm(pts, axis=1) <= s.radius_um
    noise = sample_grain_noise(rng, params, s.radius_um, CALIBRATION_MARGIN_CELLS)
    sel = noise.select(near_plane(noise, plane, math.exp(params.elongation_log_mean + 3 * params.elongation_log_sd)))
    with torch.no_grad():
        seeds, axes, elong, weights = grain_geometry(sel, params.tensors(), device="cpu")
        metrics, inner = radial_metrics(axes, elong), torch.as_tensor(pts[inside], dtype=torch.float64)
        chunk = max(1024, (1 << 24) // max(len(sel), 1))  # points per chunk: <= 128 MiB of float64 distances
        owner = torch.cat([cell_distances(inner[i:i + chunk], seeds, metrics, weights).argmin(1)
                           for i in range(0, len(inner), chunk)]).numpy()
    used, consecutive = np.unique(owner, return_inverse=True)
    truth = np.zeros(len(x), np.int64)
    truth[inside] = consecutive + 1
    c3 = _tilted_axes(rng, sel.radial[used], s.c_axis_spread_deg)  # (K, 3) in (z, y, x) particle axes
    # map frame: x along e1 (columns), y along e2 (rows), z = x cross y
    c_axes = np.stack([c3 @ plane.e1, c3 @ plane.e2, c3 @ np.cross(plane.e1, plane.e2)], axis=1)
    grain_euler = _euler_with_c_axis(c_axes, rng.uniform(0, 2 * math.pi, len(used)))
    n = len(x)
    euler = np.full((n, 3), _UNINDEXED_EULER)
    euler[inside] = grain_euler[consecutive]
    phase = inside.astype(np.int64)
    ci = np.where(inside, rng.uniform(0.3, 0.95, n), -1.0)
    iq = np.where(inside, rng.uniform(2000, 4000, n), 0.0)
    fit = np.where(inside, rng.uniform(0.3, 1.2, n), 180.0)
    pairs = cKDTree(np.column_stack([x, y])).query_pairs(1.01 * s.step_um, output_type="ndarray")
    diff = pairs[(truth[pairs[:, 0]] != truth[pairs[:, 1]]) & (truth[pairs[:, 0]] > 0) & (truth[pairs[:, 1]] > 0)]
    boundary = np.zeros(n, bool)
    boundary[diff.ravel()] = True
    bad = (boundary & (rng.random(n) < s.boundary_misindex)) | (inside & ~boundary & (rng.random(n) < s.low_confidence_fraction))
    if bad.any():
        q = rng.standard_normal((int(bad.sum()), 4))  # uniform random rotations (normalised 4D Gaussians)
        euler[bad] = Rotation(q / np.linalg.norm(q, axis=1, keepdims=True)).to_euler().reshape(-1, 3)
        ci[bad] = rng.uniform(0.0, 0.08, int(bad.sum()))
    return VirtualMap(x, y, euler, phase, ci, iq, fit, truth, c_axes, nrows, n_odd, n_even, float(plane.offset_um))


def write_ang(path: Path, vm: VirtualMap, step_um: float, grid: str) -> None:
    """Write ``vm`` as an EDAX/TSL ``.ang`` (10 columns: phi1 PHI phi2 x y IQ CI Phase SEM Fit), atomically."""
    from nmc_assets.storage import atomic_path

    a, b, c, al, be, ga = NMC_PHASE["lattice"]
    header = [
        "TEM_PIXperUM          1.000000", "x-star                 0.500000", "y-star                 0.500000",
        "z-star                 0.700000", "WorkingDistance        10.000000", "",
        "Phase 1", f"MaterialName    {NMC_PHASE['name']}", f"Formula    {NMC_PHASE['name']}", "Info    virtual EBSD (nmc_assets)",
        f"Symmetry              {NMC_PHASE['symmetry']}", f"LatticeConstants      {a:.3f} {b:.3f} {c:.3f} {al:.3f} {be:.3f} {ga:.3f}",
        "NumberFamilies        0",
        f"GRID: {'SqrGrid' if grid == 'square' else 'HexGrid'}", f"XSTEP: {step_um:.6f}",
        f"YSTEP: {step_um if grid == 'square' else step_um * math.sqrt(3) / 2:.6f}",
        f"NCOLS_ODD: {vm.ncols_odd}", f"NCOLS_EVEN: {vm.ncols_even}", f"NROWS: {vm.nrows}", "",
        "OPERATOR: nmc_assets virtual beamline", "", "SAMPLEID: virtual", "", "SCANID:", "",
    ]
    data = np.column_stack([vm.euler, vm.x, vm.y, vm.iq, vm.ci, vm.phase, np.zeros(len(vm.x)), vm.fit])
    with atomic_path(path) as tmp:
        np.savetxt(tmp, data, fmt=["%.5f"] * 5 + ["%.1f", "%.3f", "%d", "%d", "%.3f"],
                   header="\n".join(header), comments="# ")


def write_virtual_maps(folder: Path, n: int, s: VirtualEbsdSettings | None = None, params: GrainParams | None = None,
                       seed: int = 0) -> list[Path]:
    """Write ``n`` virtual maps ``virtual_XXXX.ang`` into ``folder`` and their truth into ``folder/truth/``."""
    import tifffile

    from nmc_assets.ebsd.readers import resample_hex_to_square
    from nmc_assets.storage import atomic_path, atomic_write_json

    s = s or VirtualEbsdSettings()
    params = params or GrainParams()
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    (folder / "truth").mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        name = f"virtual_{i:04d}"
        vm = virtual_map(params, s, rng)
        path = folder / f"{name}.ang"
        write_ang(path, vm, s.step_um, s.grid)
        if s.grid == "square":
            truth = vm.truth.reshape(vm.nrows, vm.ncols_odd)
        else:
            truth = resample_hex_to_square(vm.x, vm.y, s.step_um, {"t": vm.truth})[0]["t"]
        with atomic_path(folder / "truth" / f"{name}.tif") as tmp:
            tifffile.imwrite(tmp, truth.astype(np.uint16), compression="zlib", metadata=None)
        atomic_write_json(folder / "truth" / f"{name}.json", {
            "grain_params": params.to_dict(), "settings": asdict(s), "seed": seed, "index": i, "offset_um": vm.offset_um,
            "n_grains": int(vm.truth.max()), "c_axes_xyz": vm.c_axes.round(6).tolist()})
        paths.append(path)
    return paths
