"""Synthetic particles (SH shell + radial GBPD, hard tessellation) and the published release folder.

Every particle lives in its own cubic grid of ``grid_size`` voxels; the voxel size is fixed for a
dataset (``max_diameter_um * 1.25 / grid_size``) so all particles share one physical scale. Shells come
from the fitted shell model (``particles.shell.sample_shell``), grains from the calibrated grain model
(``particles.grains.sample_grains`` with the calibrated law's seed margin), rendered by
``particles.tessellation.render_grain_labels``.

Label volumes: one Zarr group ``volumes.zarr`` holding one OME-Zarr 0.5 label image per particle
(``particle_XXXXX``, uint16 grain labels, scale in um; :mod:`nmc_assets.ngff`).

Determinism: one ``numpy`` generator seeded by ``seed`` draws every particle in order; files are written
without timestamps (Zarr: zstd chunks, JSON metadata; Parquet: fixed writer options), so the same inputs and
seed give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

LICENSE = "CC-BY-4.0"
PARTICLE_COLUMNS = (
    "particle_id", "equivalent_diameter_um", "volume_um3", "surface_um2", "sphericity", "n_grains",
    "mean_grain_volume_um3", "mean_grain_elongation", "radial_alignment", "max_radius_um", "voxel_size_um",
)


def voxel_size_for(shell_params, grid_size: int) -> float:
    """Dataset voxel size (um): the largest allowed particle diameter plus 25 % spans the grid."""
    return float(shell_params.max_diameter_um * 1.25 / grid_size)


def generate_particle(rng: np.random.Generator, shell_params, grain_params, grid_size: int, voxel_size_um: float, device="cpu"):
    """One particle: (uint16 grain labels (z, y, x) in a grid_size^3 cube, shell, grains)."""
    from nmc_assets.particles.grains import CALIBRATION_MARGIN_CELLS, sample_grains
    from nmc_assets.particles.shell import sample_shell
    from nmc_assets.particles.tessellation import render_grain_labels

    half = (grid_size - 1) / 2 * voxel_size_um
    for _ in range(100):
        shell = sample_shell(rng, shell_params)
        if shell.max_radius_um() <= half:
            break
    else:
        raise ValueError(f"no shell fits a {grid_size}^3 grid at {voxel_size_um} um after 100 draws")
    grains = sample_grains(rng, grain_params, shell.max_radius_um(), margin_cells=CALIBRATION_MARGIN_CELLS)
    labels = render_grain_labels(shell, grains, voxel_size_um, device=device, shape=(grid_size,) * 3)
    return labels, shell, grains


def particle_descriptors(labels: np.ndarray, voxel_size_um: float, particle_id: int) -> tuple[dict, pd.DataFrame]:
    """Per-particle row (size, sphericity, grain count, mean grain elongation, radial alignment) and a
    per-grain table (volume, elongation = ratio of largest to smallest principal sd, |cos| of the major
    axis with the radial direction, normalised radial position)."""
    from skimage.measure import marching_cubes, mesh_surface_area

    from nmc_assets.particles.tessellation import grain_principal_axes

    mask = labels > 0
    nvox = int(mask.sum())
    volume = nvox * voxel_size_um**3
    verts, faces, _, _ = marching_cubes(np.pad(mask, 1).astype(np.float32), 0.5, spacing=(voxel_size_um,) * 3)
    surface = float(mesh_surface_area(verts, faces))
    centre = tuple(np.argwhere(mask).mean(axis=0))
    ax = grain_principal_axes(labels, voxel_size_um, center_vox=centre, min_voxels=8)
    req = (3 * volume / (4 * np.pi)) ** (1 / 3)
    counts = np.bincount(labels.ravel())[1:]
    n_grains = int((counts > 0).sum())
    grains = pd.DataFrame(
        {
            "particle_id": np.full(len(ax["label"]), particle_id, dtype=np.int64),
            "grain_id": ax["label"].astype(np.int64),
            "volume_um3": ax["n_voxels"].astype(np.float64) * voxel_size_um**3,
            "elongation": ax["aspect"].astype(np.float64),
            "radial_cos": ax["radial_cos"].astype(np.float64),
            "radial_position": (np.linalg.norm(ax["centroid_um"], axis=1) / req) if len(ax["label"]) else np.zeros(0),
        }
    )
    row = {
        "particle_id": particle_id,
        "equivalent_diameter_um": 2 * req,
        "volume_um3": volume,
        "surface_um2": surface,
        "sphericity": float(36 * np.pi * volume**2 / surface**3),
        "n_grains": n_grains,
        "mean_grain_volume_um3": float(volume / max(n_grains, 1)),
        "mean_grain_elongation": float(grains["elongation"].mean()) if len(grains) else float("nan"),
        "radial_alignment": float(grains["radial_cos"].mean()) if len(grains) else float("nan"),
        "max_radius_um": float(np.linalg.norm((np.argwhere(mask) - np.array(centre)), axis=1).max() * voxel_size_um),
        "voxel_size_um": voxel_size_um,
    }
    return row, grains


VOLUMES = "volumes.zarr"


def write_particle_volume(folder: Path, particle_id: int, labels: np.ndarray, voxel_size_um: float) -> str:
    """Write one particle's grain labels as the OME-Zarr label image ``volumes.zarr/particle_XXXXX`` in
    ``folder`` (a dataset folder being written); returns that relative path."""
    from nmc_assets.ngff import write_image

    name = f"{VOLUMES}/particle_{particle_id:05d}"
    write_image(folder / name, labels.astype(np.uint16), voxel_size_um, labels=True, chunks=labels.shape, atomic=False,
                attrs={"particle_id": particle_id, "voxel_size_um": voxel_size_um, "content": "grain labels, 0 = outside"})
    return name


def write_parquet(path: Path, df: pd.DataFrame) -> None:
    """Deterministic Parquet (zstd, no pandas index, fixed writer version)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, path, compression="zstd", version="2.6", write_statistics=True)


def generate_dataset(out_dir: str | Path, shell_params, grain_params, n_particles: int, grid_size: int, seed: int,
                     provenance: dict | None = None, device="cpu") -> dict:
    """Render ``n_particles`` into ``out_dir`` (atomic): ``volumes.zarr/particle_XXXXX``, ``particles.parquet``,
    ``grains.parquet``, ``params.json``. Returns a summary with timing (particles per second)."""
    import zarr

    from nmc_assets.storage import atomic_path

    if n_particles < 1:
        raise ValueError(f"n_particles must be >= 1, got {n_particles}")
    if grid_size < 16:
        raise ValueError(f"grid_size must be >= 16, got {grid_size}")
    rng = np.random.default_rng(seed)
    vs = voxel_size_for(shell_params, grid_size)
    rows, grain_tables = [], []
    out_dir = Path(out_dir)
    render_s = 0.0
    with atomic_path(out_dir) as tmp:
        zarr.open_group(str(tmp / VOLUMES), mode="w", zarr_format=3)
        for i in range(n_particles):
            t0 = time.perf_counter()
            labels, _, _ = generate_particle(rng, shell_params, grain_params, grid_size, vs, device=device)
            render_s += time.perf_counter() - t0
            row, grains = particle_descriptors(labels, vs, i)
            row["file"] = write_particle_volume(tmp, i, labels, vs)
            rows.append(row)
            grain_tables.append(grains)
        particles = pd.DataFrame(rows)[list(PARTICLE_COLUMNS) + ["file"]]
        grains = pd.concat(grain_tables, ignore_index=True)
        write_parquet(tmp / "particles.parquet", particles)
        write_parquet(tmp / "grains.parquet", grains)
        params = {
            "n_particles": n_particles,
            "grid_size": grid_size,
            "voxel_size_um": vs,
            "seed": seed,
            "shell_params": asdict(shell_params),
            "grain_params": grain_params.to_dict(),
            **(provenance or {}),
        }
        (tmp / "params.json").write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    return {
        "path": str(out_dir),
        "n_particles": n_particles,
        "n_grains": int(len(grains)),
        "voxel_size_um": vs,
        "render_seconds": render_s,
        "particles_per_second": n_particles / max(render_s, 1e-9),
        "particles": particles,
    }


# --------------------------------------------------------------------------------------------------
# release
# --------------------------------------------------------------------------------------------------
def release_version(params_json: bytes) -> str:
    """Release version: ``1-<first 10 hex of sha256(params.json)>`` (changes whenever inputs change)."""
    return "1-" + hashlib.sha256(params_json).hexdigest()[:10]


README_TEMPLATE = """# NMC811 virtual particles with radial grain architecture (v{version})

Synthetic 3D NMC811 secondary particles: a star-shaped outer shell (spherical-harmonic Gaussian random
field, angular power spectrum and size law fitted from segmented X-ray nano-CT particles) filled with a
radial generalized balanced power diagram of primary grains (hard-core seeds, cells stretched along the
radius, log-normal elongation, alignment spread, weights). The grain parameters were calibrated from 2D
grain-label cross-sections by a stereological WGAN-GP (planar sections of generated particles vs observed
sections), following Fuchs, Furat et al. (2024), then refined by matching section moments, which also gives
their intervals (below).

- particles: {n_particles}, each a `{grid}^3` uint16 label volume (0 = outside, k = grain k), voxel size
  {voxel:.4f} um, axes (z, y, x)
- generated by `nmc_assets` (synthesis group), seed {seed}

## Files

| file | content |
| --- | --- |
| `volumes.zarr/particle_XXXXX/` | grain labels of one particle: an OME-Zarr 0.5 label image (Zarr v3, uint16, scale in um); array `0` is full resolution |
| `particles.parquet` | one row per particle: {particle_cols} |
| `grains.parquet` | one row per grain: particle_id, grain_id, volume_um3, elongation, radial_cos, radial_position |
| `params.json` | model parameters (shell, calibrated grain model), grain-model checkpoint SHA256, seed |
| `SHA256SUMS` | checksums of every file (`sha256sum -c SHA256SUMS`) |

## Model parameters

Grain model (calibrated): {grain_params}

{uncertainty}

Shell model: {shell_params}

## Loading

```python
from pathlib import Path
import json
import pandas as pd
import zarr

root = Path(".")  # this folder
params = json.loads((root / "params.json").read_text())
particles = pd.read_parquet(root / "particles.parquet")
grains = pd.read_parquet(root / "grains.parquet")
first = particles.iloc[0]
image = zarr.open_group(root / first["file"], mode="r")  # an OME-Zarr label image
scale = image.attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]  # um (z, y, x)
labels = image["0"][...]  # (z, y, x) uint16 grain labels, full resolution
assert labels.shape == (params["grid_size"],) * 3
n_grains = len(set(labels.ravel().tolist()) - {{0}})
print(f"{{len(particles)}} particles; particle 0: {{first['equivalent_diameter_um']:.2f}} um, {{n_grains}} grains")
```

## License

{license} (https://creativecommons.org/licenses/by/4.0/).

## Citation

Please cite the model and method:

- L. Fuchs, O. Furat, D.P. Finegan, J. Allen, F.L.E. Usseglio-Viretta, B. Ozdogru, P.J. Weddle, K. Smith,
  V. Schmidt, "Generating multi-scale NMC particles with radial grain architectures using spatial stochastics
  and GANs", arXiv:2407.05333 (2024); Communications Materials 6 (2025), doi:10.1038/s43246-024-00728-5.
- nmc_assets: Dagster asset platform for X-ray nano-tomography of NMC cathodes (this dataset's generator),
  release v{version}.
"""


def uncertainty_text(params: dict) -> str:
    """The card's calibration-uncertainty paragraph: method, 90 % intervals and what the sections cannot separate."""
    iv = params.get("grain_params_intervals_90")
    if not iv:
        return f"Calibration: {params.get('calibration_method', 'stereological GAN')}; no intervals were computed."
    lines = [f"Calibration: {params.get('calibration_method')}. 90 % intervals (simulated moments of the observed sections):", ""]
    lines += [f"- `{k}`: {lo:.4g} - {hi:.4g}" for k, (lo, hi) in sorted(iv.items())]
    ident = params.get("grain_params_identified") or {}
    if ident and not ident.get("separable", True):
        lines += ["", f"The sections do not separate the alignment spread from the elongation log-sd (correlation "
                  f"{ident['correlation_alignment_log_sd']:.2f}); what they determine is {ident['combination']}."]
    return "\n".join(lines)


def readme_python_example(readme: str) -> str:
    """The first ```python block of a README."""
    start = readme.index("```python\n") + len("```python\n")
    return readme[start : readme.index("```", start)]


def write_sha256sums(folder: Path) -> None:
    from nmc_assets.storage import sha256_file

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{sha256_file(p)}  {p.relative_to(folder).as_posix()}" for p in files]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def verify_sha256sums(folder: str | Path) -> list[str]:
    """Files whose checksum does not match (empty list = all good); missing files count as mismatches."""
    from nmc_assets.storage import sha256_file

    folder = Path(folder)
    bad = []
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        p = folder / name
        if not p.exists() or sha256_file(p) != digest:
            bad.append(name)
    return bad


def publish(particles_dir: str | Path, published_root: str | Path, extra_params: dict | None = None) -> Path:
    """Copy a generated dataset into ``published_root/nmc-virtual-particles-v<version>/`` with README,
    params.json (+ ``extra_params``) and SHA256SUMS; atomic. Returns the release folder."""
    from nmc_assets.storage import atomic_path

    src = Path(particles_dir)
    params = json.loads((src / "params.json").read_text())
    params.update(extra_params or {})
    params["license"] = LICENSE
    params_bytes = (json.dumps(params, indent=2, sort_keys=True) + "\n").encode()
    version = release_version(params_bytes)
    dest = Path(published_root) / f"nmc-virtual-particles-v{version}"
    with atomic_path(dest) as tmp:
        tmp.mkdir(parents=True)
        shutil.copytree(src / VOLUMES, tmp / VOLUMES)
        for name in ("particles.parquet", "grains.parquet"):
            shutil.copyfile(src / name, tmp / name)
        (tmp / "params.json").write_bytes(params_bytes)
        fmt = lambda d: ", ".join(f"`{k}` = {v:.4g}" if isinstance(v, float) else f"`{k}` = {v}" for k, v in sorted(d.items()))  # noqa: E731
        readme = README_TEMPLATE.format(
            version=version, n_particles=params["n_particles"], grid=params["grid_size"], voxel=params["voxel_size_um"],
            seed=params["seed"], particle_cols=", ".join(PARTICLE_COLUMNS) + ", file",
            grain_params=fmt(params["grain_params"]), shell_params=fmt(params["shell_params"]), license=LICENSE,
            uncertainty=uncertainty_text(params),
        )
        (tmp / "README.md").write_text(readme)
        write_sha256sums(tmp)
    return dest
