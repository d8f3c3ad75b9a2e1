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
from nmc_assets.beamline.damage import DEFAULT_DAMAGE_LAW, DamageLaw
from nmc_assets.beamline.packing import contact_fractions, label_packing, pack_particles
from nmc_assets.beamline.render import RenderParams, carbon_binder, render_image
from nmc_assets.particles.grains import RENAMED_FIELDS, GrainParams, sample_grains
from nmc_assets.particles.shell import ShellParams, shell_normalised_distance
from nmc_assets.particles.tessellation import hard_labels

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
    shape: tuple[int, int, int] = (160, 384, 384)
    voxel_size_um: float = 0.2
    cycles: int = 50
    seed: int = 0
    sample: str = "virtual NMC811 cathode"
    target_fraction: float = 0.52      # particle (filled) volume fraction of the packing (balls)
    overlap: float = 0.06              # allowed overlap of neighbours (fraction of radius sum)
    min_particle_voxels: int = 0       # smaller border fragments are dropped; 0 = ball of 1.5 um diameter
    crack_width_um: float = 0.25       # opened boundary width (1-3 voxels)
    void_share_range: tuple[float, float] = (0.15, 0.5)
    shell: ShellParams = DEFAULT_SHELL_PARAMS
    grains: GrainParams = DEFAULT_GRAIN_PARAMS
    damage: DamageLaw = DEFAULT_DAMAGE_LAW
    render: RenderParams = field(default_factory=RenderParams)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 8:
            raise ValueError(f"shape must be three sizes >= 8 (z, y, x), got {self.shape}")
        if self.voxel_size_um <= 0:
            raise ValueError(f"voxel_size_um must be > 0, got {self.voxel_size_um}")
        if self.cycles < 0:
            raise ValueError(f"cycles must be >= 0, got {self.cycles}")


@dataclass
class SimulatedScan:
    image: np.ndarray          # uint8 (z, y, x)
    labels: np.ndarray         # uint16/uint32 (z, y, x), filled particles
    truth: "object"            # pandas DataFrame, one row per label
    sidecar: dict
    timings_s: dict


def sidecar_grain_params(grains: GrainParams) -> dict:
    """The sidecar's ``grain_params``: every field, under the names of the sidecar format (the density as
    ``number_density_per_um3``); :meth:`GrainParams.from_dict` reads it back."""
    sidecar_names = {new: old for old, new in RENAMED_FIELDS.items()}
    return {sidecar_names.get(k, k): v for k, v in asdict(grains).items()}


def _rng(seed: int, *tags: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *tags]))


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
    packing = pack_particles(_rng(config.seed, 1), extent, config.shell,
                             target_fraction=config.target_fraction, overlap=config.overlap)
    min_vox = config.min_particle_voxels or int(np.pi / 6 * (1.5 / vs) ** 3)
    labels, index = label_packing(packing, shape, vs, min_voxels=min_vox)
    n = len(index)
    timings["pack_and_label"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    contact = contact_fractions(labels, n)
    objects = ndi.find_objects(labels, max_label=n)
    shells = [packing.shells[i] for i in index]
    centres = packing.centres_um[index]
    law_d = np.array([s.equivalent_diameter_um for s in shells])
    z_norm = np.clip(centres[:, 0] / extent[0], 0.0, 1.0)
    target, noise = config.damage.sample(_rng(config.seed, 2), law_d, z_norm, contact, config.cycles)
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
                    "min_particle_voxels": int(min_vox), "crack_width_um": config.crack_width_um,
                    "void_share_range": list(config.void_share_range)},
    }
    timings["total"] = time.perf_counter() - t0
    return SimulatedScan(image=image, labels=labels.astype(label_dtype), truth=truth, sidecar=sidecar,
                         timings_s=timings)


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
