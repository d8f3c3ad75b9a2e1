"""The virtual beamline: pack particles, grow grains, crack them by the damage law, render, write.

``simulate_scan`` returns the image, labels, truth table and sidecar in memory; ``write_scan`` writes
``<scan>.tif``, ``<scan>.json``, ``<scan>.labels.tif`` and ``<scan>.truth.parquet`` atomically into the
drop folder (companions first, the volume last, so a watcher that sees the volume sees a complete scan).
Everything is seeded: the same arguments give byte-identical files.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from nmc_assets.beamline.cracks import crack_particle
from nmc_assets.beamline.damage import DEFAULT_DAMAGE_LAW, DamageLaw, DamageOverride
from nmc_assets.beamline.packing import contact_fractions, label_packing, pack_particles
from nmc_assets.beamline.render import RenderParams, carbon_binder, render_image
from nmc_assets.particles.grains import RENAMED_FIELDS, GrainParams, sample_grains
from nmc_assets.particles.shell import ShellParams, shell_normalised_distance
from nmc_assets.particles.tessellation import hard_labels
from nmc_assets.settings import DESCRIPTION, setting

__all__ = ["SIMULATOR_VERSION", "ScanConfig", "SimulatedScan", "simulate_scan", "write_scan",
           "DEFAULT_SHELL_PARAMS", "DEFAULT_GRAIN_PARAMS", "sidecar_grain_params"]

SIMULATOR_VERSION = "1.4.0"

#: Outer shells of the virtual particles: 5-12 um, median 8 um.
DEFAULT_SHELL_PARAMS = ShellParams(mean_diameter_um=8.0, size_sigma=0.22, amplitude=0.03, exponent=2.2,
                                   max_degree=10)
#: Grains at crack scale: ~40 radial grains (agglomerates of primary grains) in an 8 um particle, so that
#: the grain boundaries that open as cracks are resolved at 0.05-0.25 um voxels.
DEFAULT_GRAIN_PARAMS = GrainParams(density_per_um3=0.15, hard_core_fraction=0.5,
                                   elongation_log_mean=0.7, elongation_log_sd=0.2,
                                   alignment_spread_deg=15.0, weight_spread=0.1)


@dataclass(frozen=True)
class ScanConfig:
    """Everything that decides a scan (same config, same bytes). Named presets (``default``, ``hard``):
    :data:`nmc_assets.beamline.defaults.PRESETS`. Grey levels, binder texture and noise are the
    :class:`~nmc_assets.beamline.render.RenderParams` in ``render``; the damage law is ``damage``."""

    shape: tuple[int, int, int] = setting((160, 384, 384), "scan size in voxels (z, y, x); z = thickness axis")
    voxel_size_um: float = setting(0.2, "isotropic voxel edge (um)")
    cycles: int = setting(50, "charge/discharge cycles (a driver of the damage law)")
    seed: int = setting(0, "seed of every random draw")
    sample: str = setting("virtual NMC811 cathode", "sample name written to the sidecar")
    target_fraction: float = setting(0.52, "particle (filled) volume fraction of the packing (equivalent balls), < 0.7; "
                                           "ignored when target_solid_fraction is set")
    target_solid_fraction: float | None = setting(
        None, "solid (particle minus cracks and voids) volume fraction of the scan, up to ~0.62; the packing "
              "fraction is found for it (up to 4 packings; about +-0.01); None = use target_fraction")
    overlap: float = setting(0.06, "allowed overlap of neighbours (fraction of the sum of their radii)")
    min_particle_voxels: int = setting(0, "smaller border fragments are dropped; 0 = a ball of 1.5 um diameter")
    crack_width_um: float = setting(0.25, "opened boundary width (um; 1-3 voxels)")
    void_share_range: tuple[float, float] = setting((0.15, 0.5), "range of each particle's share of damage in its central void")
    shell: ShellParams = setting(DEFAULT_SHELL_PARAMS, "outer shell (size, shape) law of the particles")
    grains: GrainParams = setting(DEFAULT_GRAIN_PARAMS, "grain (crack path) law inside the particles")
    damage: DamageLaw = setting(DEFAULT_DAMAGE_LAW, "damage law: target crack + void fraction per particle")
    damage_override: DamageOverride | None = setting(
        None, "replaces the law's distribution of the targets (mean, max), keeping its ranking; None = the law's")
    render: RenderParams = field(default_factory=RenderParams,
                                 metadata={DESCRIPTION: "image formation: grey levels, binder texture, PSF, noise, artefacts"})
    device: str = setting("cpu", "torch device of the grain tessellation (never changes the result)")

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 8:
            raise ValueError(f"shape must be three sizes >= 8 (z, y, x), got {self.shape}")
        if self.voxel_size_um <= 0:
            raise ValueError(f"voxel_size_um must be > 0, got {self.voxel_size_um}")
        if self.cycles < 0:
            raise ValueError(f"cycles must be >= 0, got {self.cycles}")
        if self.target_solid_fraction is not None and not 0 < self.target_solid_fraction <= 0.65:
            raise ValueError(f"target_solid_fraction must be in (0, 0.65], got {self.target_solid_fraction}")


@dataclass
class SimulatedScan:
    image: np.ndarray          # uint8 (z, y, x)
    labels: np.ndarray         # uint16/uint32 (z, y, x), filled particles
    truth: "object"            # pandas DataFrame, one row per label
    sidecar: dict
    timings_s: dict
    classes: np.ndarray | None = None  # uint8 (z, y, x) phase classes: 0 pore (cracks too), 1 CBD, 2 NMC


def sidecar_grain_params(grains: GrainParams) -> dict:
    """The sidecar's ``grain_params``: every field, under the names of the sidecar format (the density as
    ``number_density_per_um3``); :meth:`GrainParams.from_dict` reads it back."""
    sidecar_names = {new: old for old, new in RENAMED_FIELDS.items()}
    return {sidecar_names.get(k, k): v for k, v in asdict(grains).items()}


def _rng(seed: int, *tags: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *tags]))


def _min_voxels(config: ScanConfig) -> int:
    return int(config.min_particle_voxels or int(np.pi / 6 * (1.5 / config.voxel_size_um) ** 3))


def _pack_and_damage(config: ScanConfig, shape, vs: float, extent: np.ndarray):
    """Pack, label and draw each particle's target damage. With ``target_solid_fraction`` the packing is
    redone (same random stream, up to 4 times) with the ball target moved by the miss of the expected
    solid fraction, sum(voxels * (1 - target damage)) / scan voxels; the closest attempt is kept (within
    ~0.01 on 160 x 384 x 384 scans; small scans add particles in coarse steps)."""
    tsf = config.target_solid_fraction
    ball_target = config.target_fraction if tsf is None else min(tsf / 0.88, 0.69)
    best, best_miss = None, np.inf
    for _ in range(1 if tsf is None else 4):
        packing = pack_particles(_rng(config.seed, 1), extent, config.shell,
                                 target_fraction=ball_target, overlap=config.overlap)
        labels, index = label_packing(packing, shape, vs, min_voxels=_min_voxels(config))
        n = len(index)
        contact = contact_fractions(labels, n)
        centres = packing.centres_um[index]
        law_d = np.array([packing.shells[i].equivalent_diameter_um for i in index])
        z_norm = np.clip(centres[:, 0] / extent[0], 0.0, 1.0)
        target, noise = config.damage.sample(_rng(config.seed, 2), law_d, z_norm, contact, config.cycles)
        if config.damage_override is not None:
            target = config.damage_override.apply(_rng(config.seed, 6), target)
        result = (packing, labels, index, contact, law_d, z_norm, target, noise, ball_target)
        if tsf is None:
            return result
        counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        solid = float((counts * (1.0 - target)).sum()) / labels.size
        if abs(solid - tsf) < best_miss:
            best, best_miss = result, abs(solid - tsf)
        if best_miss <= 0.005:
            break
        # the ball fraction this solid fraction needs, less the packer's overshoot at this target
        want = packing.ball_fraction * tsf / max(solid, 1e-3)
        ball_target = float(np.clip(ball_target + want - packing.ball_fraction, 0.05, 0.695))
    return best


def simulate_scan(config: ScanConfig) -> SimulatedScan:
    """Simulate one scan (see the module docstring). BLAS runs single-threaded inside: the products here
    are small, and extra BLAS threads only contend on a shared CPU."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return _simulate_scan(config)
    with threadpool_limits(limits=1, user_api="blas"):
        return _simulate_scan(config)


def _simulate_scan(config: ScanConfig) -> SimulatedScan:
    import pandas as pd

    t0 = time.perf_counter()
    timings = {}
    shape = tuple(int(s) for s in config.shape)
    vs = float(config.voxel_size_um)
    extent = np.array(shape, float) * vs
    packing, labels, index, contact, law_d, z_norm, target, noise, ball_target = _pack_and_damage(config, shape, vs, extent)
    n = len(index)
    timings["pack_and_label"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    objects = ndi.find_objects(labels, max_label=n)
    shells = [packing.shells[i] for i in index]
    centres = packing.centres_um[index]
    crack = np.zeros(shape, dtype=bool)
    depth = np.ones(shape, dtype=np.float32)  # normalised radius inside particles (for the render)
    n_grains = np.zeros(n, dtype=np.int64)
    width_vox = int(np.clip(round((config.crack_width_um / vs - 1) / 2), 0, 1))
    void_lo, void_hi = config.void_share_range
    t_grains = 0.0
    for j in range(n):
        sl = objects[j]
        inside = labels[sl] == j + 1
        origin = np.array([s.start for s in sl], float)
        centre_vox = tuple(centres[j] / vs - origin)
        rng = _rng(config.seed, 3, int(index[j]))
        grains = sample_grains(rng, config.grains, shells[j].max_radius_um())
        idx = np.nonzero(inside)
        pts = (np.stack(idx, axis=1) + origin - centres[j] / vs) * vs
        tg = time.perf_counter()
        g = np.zeros(inside.shape, dtype=np.int32)
        g[idx] = hard_labels(pts.astype(np.float32), grains, device=config.device) + 1
        t_grains += time.perf_counter() - tg
        n_grains[j] = len(np.unique(g[idx]))
        q = shell_normalised_distance(shells[j], inside.shape, vs, centre_vox)
        void_share = rng.uniform(void_lo, void_hi)
        c = crack_particle(rng, inside, g, q, float(target[j]), width_vox=width_vox, void_share=void_share)
        crack[sl] |= c
        depth[sl][inside] = q[inside]
    timings["grains_and_cracks"] = time.perf_counter() - t1
    timings["grain_tessellation"] = t_grains

    t2 = time.perf_counter()
    particles = labels > 0
    solid = particles & ~crack
    cbd = carbon_binder(_rng(config.seed, 4), particles, vs, config.render)
    classes = np.zeros(shape, dtype=np.uint8)
    classes[cbd] = 1
    classes[solid] = 2
    image = render_image(_rng(config.seed, 5), classes, vs, config.render, nmc_depth=depth)
    del depth
    timings["render"] = time.perf_counter() - t2

    # truth table from the voxels
    lab_flat = labels.ravel()
    counts = np.bincount(lab_flat, minlength=n + 1)[1:].astype(np.int64)
    solid_counts = np.bincount(lab_flat[solid.ravel()], minlength=n + 1)[1:].astype(np.int64)
    coords = [np.bincount(lab_flat, weights=np.broadcast_to(
        np.arange(shape[a], dtype=np.float64).reshape([-1 if b == a else 1 for b in range(3)]), shape).ravel(),
        minlength=n + 1)[1:] / np.maximum(counts, 1) for a in range(3)]
    border = np.zeros(n + 1, bool)
    for a in range(3):
        for face in (0, -1):
            border[np.unique(np.take(labels, face, axis=a))] = True
    v = vs ** 3
    volume = counts * v
    truth = pd.DataFrame({
        "particle_id": np.arange(1, n + 1, dtype=np.int64),
        "x_um": coords[2] * vs,
        "y_um": coords[1] * vs,
        "z_um": coords[0] * vs,
        "volume_um3": volume,
        "solid_volume_um3": solid_counts * v,
        "damage": 1.0 - solid_counts / np.maximum(counts, 1),
        "equivalent_diameter_um": (6.0 * volume / np.pi) ** (1.0 / 3.0),
        "contact": contact,
        "cycles": np.full(n, int(config.cycles), dtype=np.int64),
        "n_grains": n_grains,
        "touches_border": border[1:],
        "law_diameter_um": law_d,
        "law_z_norm": z_norm,
        "law_contact": contact,
        "law_cycles": np.full(n, float(config.cycles)),
        "damage_target": target,
        "damage_noise": noise,
        "centre_x_um": centres[:, 2],
        "centre_y_um": centres[:, 1],
        "centre_z_um": centres[:, 0],
    })
    label_dtype = np.uint16 if n < 65535 else np.uint32
    sidecar = {
        "voxel_size_um": vs,
        "cycles": int(config.cycles),
        "sample": config.sample,
        "beamline": "virtual",
        "thickness_axis": "z",
        "shape": list(shape),
        "seed": int(config.seed),
        "simulator": "nmc_assets.beamline",
        "simulator_version": SIMULATOR_VERSION,
        "n_particles": int(n),
        "solid_fraction": float(solid.mean()),
        "particle_fraction": float(particles.mean()),
        "damage_law": config.damage.to_dict(),
        "shell_params": asdict(config.shell),
        "grain_params": sidecar_grain_params(config.grains),
        "render_params": config.render.to_dict(),
        "packing": {"target_fraction": config.target_fraction, "overlap": config.overlap,
                    "min_particle_voxels": _min_voxels(config), "crack_width_um": config.crack_width_um,
                    "void_share_range": list(config.void_share_range)},
    }
    # knobs of the non-default presets: recorded only when set, so default sidecars keep their bytes
    if config.target_solid_fraction is not None:
        sidecar["packing"].update(target_solid_fraction=config.target_solid_fraction, target_fraction=ball_target)
    if config.damage_override is not None:
        sidecar["damage_override"] = config.damage_override.to_dict()
    timings["total"] = time.perf_counter() - t0
    return SimulatedScan(image=image, labels=labels.astype(label_dtype), truth=truth, sidecar=sidecar,
                         timings_s=timings, classes=classes)


def _write_tif(path: Path, array: np.ndarray) -> None:
    import tifffile

    from nmc_assets.storage import atomic_path

    with atomic_path(path) as tmp:
        # ImageJ hyperstack: the header records images/slices, so a truncated file is detectable.
        tifffile.imwrite(tmp, array, imagej=True, metadata={"axes": "ZYX"})


def write_scan(scan: SimulatedScan, out_dir: str | Path, scan_id: str) -> dict[str, Path]:
    """Write the four files of one scan into ``out_dir`` (atomically; the volume last)."""
    from nmc_assets.paths import is_valid_scan_id
    from nmc_assets.storage import atomic_write_json, atomic_write_parquet

    if not is_valid_scan_id(scan_id):
        raise ValueError(f"invalid scan id {scan_id!r}: 1-64 letters, digits, '.', '_', '-', starting alphanumeric")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "sidecar": out / f"{scan_id}.json",
        "labels": out / f"{scan_id}.labels.tif",
        "truth": out / f"{scan_id}.truth.parquet",
        "volume": out / f"{scan_id}.tif",
    }
    atomic_write_json(paths["sidecar"], {**scan.sidecar, "scan_id": scan_id})
    _write_tif(paths["labels"], scan.labels)
    truth = scan.truth.copy()
    truth.insert(0, "scan_id", scan_id)
    atomic_write_parquet(paths["truth"], truth)
    _write_tif(paths["volume"], scan.image)
    return paths
