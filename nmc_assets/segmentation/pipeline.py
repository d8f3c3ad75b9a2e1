"""The full path for one scan: tomogram -> binned normalised volume -> view maps (Zarr) -> fused labels (Zarr).

Used by the Dagster assets, the benchmark and the example; all inputs are arrays or paths.
Lengths given in um are converted to pixels of the working (binned) resolution here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmc_assets.settings import setting

from .fusion import FusionConfig, fuse
from .scaling import bin_factor_for, bin_volume_slabwise
from .slice2d import segment_image_2d  # noqa: F401  (one 2D slice; kept importable from here)
from .training_set import VIEWS


@dataclass
class FusionParams:
    """Physical fusion and boundary-refinement parameters (converted to pixels by :func:`fusion_config_for`
    and the full-resolution refinement in :func:`fused_labels`). Defaults were chosen on the default model's validation scans (never on
    benchmark scans); the unitless ones are :class:`.fusion.FusionConfig`'s.
    """

    # fusion of the view maps
    method: str = setting(FusionConfig.method, "'watershed' (seeded, splits touching particles) or 'kmeans' (Li et al. 2022 recipe)")
    fg_threshold: float = setting(FusionConfig.fg_threshold, "foreground: mean view probability above this")
    seed_map: str = setting(FusionConfig.seed_map, "watershed seeds/landscape: 'prob' (fused probability) or 'dist' (fused mean ray distance)")
    h: float = setting(FusionConfig.h, "minimal dynamic of a seed in the fused probability (seed_map='prob')")
    h_dist_um: float = setting(0.2, "minimal dynamic of a seed in the fused distance map, um (seed_map='dist')")
    # sizes
    min_radius_um: float = setting(0.75, "seeds need a mean ray distance of at least this (um)")
    min_volume_um3: float = setting(1.0, "components smaller than this are dropped (um^3)")
    smooth_um: float = setting(0.4, "Gaussian smoothing of the seed map (um)")
    # boundary refinement at full resolution (refine.py, inside fused_labels)
    refine_boundaries: bool = setting(True, "move boundaries to the full-resolution intensity edge (segmentation/refine.py)")
    refine_band_um: float = setting(0.4, "how far (um) a boundary may move in the refinement")
    refine_sigma_um: float = setting(0.2, "Gaussian smoothing of the intensity before the edge search (um)")


def fusion_config_for(pixel_um: float, p: FusionParams = FusionParams()) -> FusionConfig:
    return FusionConfig(
        method=p.method,
        fg_threshold=p.fg_threshold,
        seed_map=p.seed_map,
        smooth_sigma=p.smooth_um / pixel_um,
        h=p.h if p.seed_map == "prob" else p.h_dist_um / pixel_um,
        min_radius=p.min_radius_um / pixel_um,
        min_size=max(8, int(round(p.min_volume_um3 / pixel_um**3))),
    )


def normalization_from_attrs(attrs: dict, source) -> tuple[float, float]:
    """(lo, hi) = the tomogram's 1st / 99.8th percentiles from its attrs, else computed from a subsample."""
    pct = attrs.get("percentiles") or {}
    if "1" in pct and "99.8" in pct:
        return float(pct["1"]), float(pct["99.8"])
    step = max(1, source.shape[0] // 16)
    sample = np.asarray(source[::step], dtype=np.float32)
    lo, hi = np.percentile(sample, [1, 99.8])
    return float(lo), float(hi)


def prepare_volume(source, voxel_size_um: float, working_pixel_um: float, normalize: tuple[float, float], bin_factor: int | None = None, *, runner=None, progress=None) -> tuple[np.ndarray, int]:
    """Normalised volume binned to the working pixel size (chunk slab by chunk slab from a lazy array,
    segments in parallel with ``runner``); returns (volume, factor)."""
    factor = bin_factor or bin_factor_for(voxel_size_um, working_pixel_um)
    return bin_volume_slabwise(source, factor, normalize, runner=runner, progress=progress), factor


def view_probabilities(model_dir: str | os.PathLike, source, voxel_size_um: float, out_path: str | os.PathLike, *, normalize: tuple[float, float], bin_factor: int | None = None, views: tuple[str, ...] = VIEWS, attrs: dict | None = None, batch_size: int = 8, runner=None, report=None) -> dict:
    """Predict the three view maps of ``source`` (z, y, x; array, lazy Zarr array or Zarr path) with
    the model in ``model_dir``; write ``out_path``. ``runner``: bins the scan's segments in parallel
    (:class:`nmc_assets.blockwise.BlockRunner`); ``report``: receives progress lines."""
    from ..blockwise import Progress
    from ..storage import open_zarr
    from .model import load_stardist, read_model_meta
    from .views import write_view_maps

    t0 = time.time()
    meta = read_model_meta(model_dir)
    working = float(meta["working_pixel_um"])
    shape = tuple((open_zarr(source) if isinstance(source, (str, os.PathLike)) else source).shape)
    scan = (attrs or {}).get("scan_id")
    progress = Progress(f"view_probabilities {scan}: binning" if scan else "view_probabilities: binning", 0, report, unit="segments")
    volume, factor = prepare_volume(source, voxel_size_um, working, normalize, bin_factor, runner=runner, progress=progress)
    t_bin = time.time() - t0
    model = load_stardist(model_dir)
    info = {
        **(attrs or {}),
        "bin_factor": factor,
        "full_shape": list(shape),
        "voxel_size_um": voxel_size_um,
        "pixel_um": voxel_size_um * factor,
        "model": meta.get("name"),
        "model_dir": str(model_dir),
        "normalize": list(normalize),
    }
    write_view_maps(model, volume, out_path, info, views=views, batch_size=batch_size)
    return {**info, "binned_shape": list(volume.shape), "binning_seconds": round(t_bin, 2), "seconds": round(time.time() - t0, 2)}


def fused_labels(view_path: str | os.PathLike, out_path: str | os.PathLike, params: FusionParams = FusionParams(), *, views: tuple[str, ...] | None = None, attrs: dict | None = None,
                 intensity=None, band_um: float = 0.4, sigma_um: float = 0.2, block_shape: tuple[int, int, int] | None = None,
                 runner=None, report=None, memory_budget: int | None = None, source_image: str | None = None) -> tuple[np.ndarray, dict]:
    """Fuse the stored view maps into 3D labels (binned, whole) and write them at full resolution,
    block by block (:mod:`.fullres`); return (binned labels, info).

    ``intensity``: the tomogram (Zarr path, or array of the full shape) whose edges the boundaries are
    moved to (:mod:`.refine`; ``band_um``: how far a boundary may move, ``sigma_um``: smoothing, both
    converted with the voxel size); None = plain nearest upsampling. ``block_shape`` (voxels, whole
    output chunks), ``runner`` (:class:`nmc_assets.blockwise.BlockRunner`; None = blocks one after the
    other here), ``report`` (progress lines) and ``memory_budget`` (bytes) change how, never what.
    ``source_image``: the tomogram's path relative to ``out_path`` for the label image's metadata
    (default: ``intensity`` when it is a path).
    """
    from ..blockwise import Progress
    from ..storage import open_zarr
    from .fullres import write_full_resolution
    from .views import read_fused_maps

    t0 = time.time()
    prob, dist, vattrs = read_fused_maps(view_path, views)
    pixel_um = float(vattrs["pixel_um"])
    labels = fuse(prob, dist, fusion_config_for(pixel_um, params))
    del prob, dist
    n = int(labels.max())
    factor, full_shape, voxel_um = int(vattrs["bin_factor"]), tuple(vattrs["full_shape"]), float(vattrs["voxel_size_um"])
    info = {
        **(attrs or {}),
        "voxel_size_um": vattrs["voxel_size_um"],
        "n_particles": n,
        "method": params.method,
        "views": list(views or vattrs["views"]),
        "bin_factor": factor,
        "model": vattrs.get("model"),
    }
    scan = str((attrs or {}).get("scan_id") or Path(out_path).name)
    refinement = keep = source = None
    name = str(intensity) if isinstance(intensity, (str, os.PathLike)) else f"tomogram of {scan}"
    if intensity is not None:
        from .refine import Refinement, keep_table, lost_labels, refinement_voxels, scan_threshold_levels

        source = open_zarr(intensity) if isinstance(intensity, (str, os.PathLike)) else intensity
        band, sigma = refinement_voxels(band_um, sigma_um, voxel_um)
        levels = scan_threshold_levels(labels, factor, source, sigma, band, source_name=f"fused_labels {scan} ({name})") if n else None
        threshold = levels.threshold if levels else 0.0
        refinement = Refinement(band, sigma, threshold)
        keep = keep_table(lost_labels(labels, factor, full_shape, band), n)
        info["boundary_refinement"] = {"band_voxels": band, "sigma_voxels": sigma, "threshold": threshold, "hops": refinement.hops,
                                       **({"particle_level": levels.particle, "matrix_level": levels.matrix,
                                           "matrix_q90": levels.matrix_q90, "far_matrix_level": levels.far_matrix,
                                           "ring_is_matrix": levels.ring_is_matrix} if levels else {})}
    progress = Progress(f"fused_labels {scan}: full resolution", 0, report)
    written = write_full_resolution(labels, factor, full_shape, out_path, info, intensity=source, refinement=refinement, keep=keep,
                                    source_name=name, block_shape=block_shape, runner=runner, progress=progress,
                                    memory_budget=memory_budget, scan=scan, voxel_um=voxel_um,
                                    source_image=source_image or _relative(intensity, out_path))
    if refinement is not None:
        before, after = written["labelled_before"], written["labelled_after"]
        info["boundary_refinement"]["foreground_change"] = (after - before) / max(before, 1)
    return labels, {**info, "blocks": written["blocks"], "block_shape": written["block_shape"],
                    "pyramid_seconds": written["pyramid_seconds"], "seconds": round(time.time() - t0, 2)}


def _relative(image, labels_path) -> str | None:
    """``image``'s path relative to the label image folder ``labels_path`` (None when not a path)."""
    if not isinstance(image, (str, os.PathLike)):
        return None
    return os.path.relpath(os.path.abspath(image), os.path.abspath(labels_path))
