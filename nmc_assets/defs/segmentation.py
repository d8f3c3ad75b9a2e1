"""Group ``segmentation``: StarDist training set and model, per-view maps, fused 3D labels, accuracy check.

Thin Dagster layer over :mod:`nmc_assets.segmentation` (all science lives there).
"""


import os
import time

import dagster as dg
import numpy as np
from pydantic import Field

from nmc_assets.defs.config import CoreSettingsConfig, core_settings
from nmc_assets.defs.partitions import scan_partitions
from nmc_assets.defs.resources import BlocksResource, DataRootResource
from nmc_assets.segmentation.model import DEFAULT_MODEL_NAME, TrainConfig
from nmc_assets.segmentation.pipeline import FusionParams
from nmc_assets.segmentation.scaling import DEFAULT_WORKING_PIXEL_UM

GROUP = "segmentation"
TRAINING_SET_DIR = "stardist_training_set"


def _labelled_scans(layout) -> list[str]:
    """Scans with a stored tomogram and ground-truth labels in the drop folder."""
    tomos = sorted(p.name[: -len(".zarr")] for p in (layout.warehouse / "tomograms").glob("*.zarr"))
    return [s for s in tomos if any((layout.incoming / f"{s}{suf}").exists() for suf in (".labels.tif", ".labels.tiff"))]


class TrainingSetConfig(dg.Config):
    slice_step: int = Field(default=2, description="keep every n-th slice of each view (neighbours are near duplicates)")
    val_fraction: float = Field(default=0.25, description="fraction of labelled scans held out (whole scans) for validation")
    seed: int = Field(default=0, description="seed of the scan split")
    working_pixel_um: float = Field(default=DEFAULT_WORKING_PIXEL_UM, description="pixel size the model works at (um)")
    annotations_dir: str = Field(default="", description="folder of 2D <name>.tif + <name>.labels.tif pairs; empty = <data root>/annotations")
    min_size: int = Field(default=96, description="slices are padded to at least this size (the training patch size)")


@dg.asset(
    group_name=GROUP,
    deps=["raw_tomogram"],
    kinds={"numpy", "stardist"},
    code_version="seg-trainset-v1",
    owners=["team:segmentation"],
)
def stardist_training_set(context: dg.AssetExecutionContext, config: TrainingSetConfig, data_root: DataRootResource) -> dg.MaterializeResult:
    """2D image/label slices along xy, xz and yz of every scan with ground truth, plus user annotations.

    Scans are binned to the model's working pixel size and normalised with their 1st/99.8th
    percentiles. Whole scans are held out for validation (never slices of a training scan).
    Writes ``warehouse/stardist_training_set/`` (``index.json`` + one ``.npz`` per scan and view).
    """
    from nmc_assets.ingest import load_labels
    from nmc_assets.segmentation.training_set import load_annotations, save_training_set, split_scans, tomogram_slices
    from nmc_assets.storage import atomic_path

    layout = data_root.layout
    scans = _labelled_scans(layout)
    if len(scans) < 2:
        raise dg.Failure(description=f"need >= 2 scans with ground truth (incoming/<scan>.labels.tif and a raw_tomogram) to hold one out; found {scans}")
    train_ids, val_ids = split_scans(scans, config.val_fraction, config.seed)
    sets = {"train": [], "val": []}
    for scan in scans:
        labels = load_labels(scan, layout.incoming)
        split = "val" if scan in val_ids else "train"
        sets[split] += tomogram_slices(layout.tomogram(scan), labels, scan, working_pixel_um=config.working_pixel_um, slice_step=config.slice_step, min_size=config.min_size)
        del labels
    ann_dir = config.annotations_dir or str(layout.annotations)
    ann = load_annotations(ann_dir, config.working_pixel_um, config.min_size)
    if len(ann):
        sets["train"].append(ann)
    out = layout.warehouse / TRAINING_SET_DIR
    meta = {"train_scans": train_ids, "val_scans": val_ids, "working_pixel_um": config.working_pixel_um, "annotations_dir": ann_dir, "n_annotations": len(ann)}
    with atomic_path(out) as tmp:
        save_training_set(tmp, sets["train"], sets["val"], meta)
    n_train = sum(len(s) for s in sets["train"])
    n_val = sum(len(s) for s in sets["val"])
    per_view = {f"{split}_{v}": sum(len(s) for s in sets[split] if s.view == v) for split in sets for v in ("xy", "xz", "yz", "2d")}
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out)),
            "train_scans": dg.MetadataValue.json(train_ids),
            "val_scans": dg.MetadataValue.json(val_ids),
            "n_train_slices": n_train,
            "n_val_slices": n_val,
            "slices_per_view": dg.MetadataValue.json(per_view),
            "n_annotations": len(ann),
            "dagster/row_count": n_train + n_val,
        }
    )


@core_settings(TrainConfig, exclude=("working_pixel_um",))
class StardistModelConfig(CoreSettingsConfig):
    """The model folder, whether to train, and the StarDist hyper-parameters (:class:`TrainConfig`; the
    working pixel size comes from the training set)."""

    name: str = Field(default=DEFAULT_MODEL_NAME, description="model folder name under <data root>/models/stardist/")
    train: bool = Field(default=False, description="False: adopt the shipped default model (fast). True: train on stardist_training_set")


@dg.asset(
    group_name=GROUP,
    deps=[stardist_training_set],
    kinds={"tensorflow", "stardist"},
    code_version="seg-model-v2",  # v2: the shipped default retrained on default + hard + mixed scans (issue 15)
    pool="gpu",
    owners=["team:segmentation"],
)
def stardist_model(context: dg.AssetExecutionContext, config: StardistModelConfig, data_root: DataRootResource) -> dg.MaterializeResult:
    """A StarDist2D model folder (native format: config.json, weights_best.h5, thresholds.json + nmc_model.json).

    Default (``train=False``): adopts the trained default model shipped in the repository
    (``data/models/stardist/<name>``) into the data root (or, when none is shipped under that name, the
    model already in the data root) and reports its stored validation AP.
    ``train=True``: trains on ``stardist_training_set`` (config: rays, grid, U-Net depth/filters, patch
    size, epochs, steps, augmentation), tunes probability/NMS thresholds on the held-out scans and
    writes ``models/stardist/<name>/`` with the validation AP in ``nmc_model.json``.
    """
    from nmc_assets.segmentation.model import copy_model, read_model_meta, shipped_model_dir, train_stardist
    from nmc_assets.segmentation.training_set import load_training_set

    layout = data_root.layout
    dst = layout.stardist_model(config.name)
    t0 = time.time()
    if config.train:
        index, data = load_training_set(layout.warehouse / TRAINING_SET_DIR)
        tc = config.to_core(working_pixel_um=float(index["working_pixel_um"]))
        meta = train_stardist(*data["train"], *data["val"], dst, tc,
                              extra_meta={"train_scans": index["train_scans"], "val_scans": index["val_scans"], "made_by": "stardist_model asset (train=True)"})
        source = "trained"
    else:
        src = shipped_model_dir(config.name)
        if src.exists() and src.resolve() != dst.resolve():
            copy_model(src, dst)
            source = f"shipped ({src})"
        elif src.exists():
            source = f"shipped (in place: {src})"
        elif dst.exists():
            source = f"existing ({dst})"
        else:
            raise dg.Failure(description=f"no model {config.name!r}: neither shipped at {src} nor in {dst}; set train=True to train one")
        meta = read_model_meta(dst)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(dst)),
            "source": source,
            "val_ap50": dg.MetadataValue.float(float(meta.get("val_ap50", float("nan")))),
            "val_ap75": dg.MetadataValue.float(float(meta.get("val_ap75", float("nan")))),
            "thresholds": dg.MetadataValue.json(meta.get("thresholds", {})),
            "working_pixel_um": dg.MetadataValue.float(float(meta["working_pixel_um"])),
            "train_config": dg.MetadataValue.json(meta.get("train_config", {})),
            "seconds": round(time.time() - t0, 1),
        }
    )


class ViewProbabilitiesConfig(dg.Config):
    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="model folder under <data root>/models/stardist/")
    bin_factor: int = Field(default=0, description="in-plane (isotropic) binning; 0 = from voxel_size_um and the model's working pixel size")
    batch_size: int = Field(default=8, description="slices per network call")


@dg.asset(
    partitions_def=scan_partitions,
    group_name=GROUP,
    deps=["raw_tomogram", stardist_model],
    kinds={"tensorflow", "stardist", "zarr"},
    code_version="seg-views-v2",  # v2: each map an OME-Zarr image
    pool="gpu",
    owners=["team:segmentation"],
)
def view_probabilities(context: dg.AssetExecutionContext, config: ViewProbabilitiesConfig, data_root: DataRootResource,
                       blocks: BlocksResource) -> dg.MaterializeResult:
    """Object probability and mean ray-distance maps of the xy, xz and yz slice stacks of one scan.

    The tomogram is normalised (1st/99.8th percentiles) and binned to the model's working pixel size
    slab by slab; each view is predicted in batches and written slab by slab to
    ``warehouse/view_probabilities/<scan>.zarr`` (arrays ``prob_<view>``, ``dist_<view>``, float16,
    binned (z, y, x); distances in binned pixels; each an OME-Zarr image with a pyramid).
    """
    from nmc_assets.previews import montage, png_markdown
    from nmc_assets.segmentation.pipeline import normalization_from_attrs, view_probabilities as predict_views
    from nmc_assets.storage import image_level, open_zarr, open_zarr_group

    layout = data_root.layout
    scan = context.partition_key
    tomo = open_zarr(layout.tomogram(scan))
    attrs = dict(tomo.attrs)
    with blocks.runner() as runner:
        info = predict_views(layout.stardist_model(config.model_name), tomo, float(attrs["voxel_size_um"]), layout.view_probabilities(scan),
                             normalize=normalization_from_attrs(attrs, tomo), bin_factor=config.bin_factor or None,
                             attrs={"scan_id": scan}, batch_size=config.batch_size, runner=runner, report=context.log.info)
    maps = layout.view_probabilities(scan)
    root = open_zarr_group(maps)
    probs = [image_level(root[f"prob_{v}"], 0, f"{maps}/prob_{v}") for v in ("xy", "xz", "yz")]
    zc = probs[0].shape[0] // 2
    imgs = [np.asarray(p[zc], np.float32) for p in probs]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(layout.view_probabilities(scan))),
            "bin_factor": info["bin_factor"],
            "binned_shape": str(tuple(info["binned_shape"])),
            "pixel_um": dg.MetadataValue.float(float(info["pixel_um"])),
            "model": info["model"],
            "seconds": dg.MetadataValue.float(info["seconds"]),
            "voxels_per_second": dg.MetadataValue.float(float(np.prod(info["full_shape"]) / max(info["seconds"], 1e-6))),
            "preview": dg.MetadataValue.md("central xy slice, probability from the xy | xz | yz views\n\n" + png_markdown(montage([(np.clip(i, 0, 1) * 255).astype(np.uint8) for i in imgs]), "prob xy|xz|yz", max_side=600)),
        }
    )


@core_settings(FusionParams)
class FusedLabelsConfig(CoreSettingsConfig):
    """Fusion and boundary refinement (:class:`nmc_assets.segmentation.pipeline.FusionParams`)."""


@dg.asset(
    partitions_def=scan_partitions,
    group_name=GROUP,
    deps=[view_probabilities, "raw_tomogram"],
    kinds={"numpy", "scipy", "zarr"},
    code_version="seg-fused-v6",  # v5: the refinement threshold adapts to the matrix next to the particles; v6: with a guard for labels far too small
    owners=["team:segmentation"],
)
def fused_labels(context: dg.AssetExecutionContext, config: FusedLabelsConfig, data_root: DataRootResource,
                 blocks: BlocksResource) -> dg.MaterializeResult:
    """3D instance labels of one scan, fused from the three view maps.

    Mean of the view probabilities and mean-ray-distance maps; foreground = probability above a
    threshold with holes filled (cracks are inside particles); a watershed seeded at the h-maxima of
    the fused probability (a learned distance-to-boundary) splits touching particles; each particle is hole-filled; tiny pieces dropped (``kmeans``
    selects the published recipe instead). Fused at the binned resolution and upsampled (nearest) to
    the tomogram grid, then boundaries are moved to the full-resolution intensity edge
    (``refine_boundaries``): ``warehouse/fused_labels/<scan>.zarr``, an OME-Zarr label image of the
    tomogram (uint32 (z, y, x), nearest pyramid), attrs ``scan_id, voxel_size_um, n_particles``; a PNG
    of the labels over the central slices beside it.
    """
    from nmc_assets.previews import labels_overlay_png, png_markdown
    from nmc_assets.segmentation.pipeline import fused_labels as fuse_scan
    from nmc_assets.storage import atomic_write_bytes, open_zarr

    layout = data_root.layout
    scan = context.partition_key
    params = config.to_core()
    out = layout.fused_labels(scan)
    with blocks.runner() as runner:
        context.log.info(f"fused_labels {scan}: blocks on {runner.where}")
        _, info = fuse_scan(layout.view_probabilities(scan), out, params, attrs={"scan_id": scan},
                            intensity=layout.tomogram(scan) if params.refine_boundaries else None, band_um=params.refine_band_um,
                            sigma_um=params.refine_sigma_um, runner=runner, report=context.log.info,
                            memory_budget=blocks.budget_bytes(), source_image=os.path.relpath(layout.tomogram(scan), out))
    tomogram = open_zarr(layout.tomogram(scan))
    refinement = info.get("boundary_refinement", {})
    if refinement:
        levels = (f"; threshold {refinement['threshold']:.1f} (particles {refinement['particle_level']:.1f}, neighbouring "
                  f"matrix {refinement['matrix_level']:.1f}, its 90th percentile {refinement['matrix_q90']:.1f}, matrix beyond "
                  f"{refinement['far_matrix_level']:.1f})" if "particle_level" in refinement else "")
        if refinement.get("ring_is_matrix") is False:
            context.log.warning(f"{scan}: the matrix next to the fused labels is mostly particle (labels too small, e.g. a high "
                                f"fg_threshold): the refinement threshold is halfway to the matrix beyond it, "
                                f"{refinement['threshold']:.1f}")
        context.log.info(f"boundary refinement: band {refinement['band_voxels']} voxels, "
                         f"foreground change {refinement['foreground_change']:+.3f}{levels}")
    png = labels_overlay_png(tomogram, open_zarr(out))
    png_path = atomic_write_bytes(out.with_suffix(".png"), png)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out)),
            "n_particles": dg.MetadataValue.int(info["n_particles"]),
            "method": info["method"],
            "bin_factor": info["bin_factor"],
            "seconds": dg.MetadataValue.float(info["seconds"]),
            "pyramid_seconds": dg.MetadataValue.float(float(info["pyramid_seconds"])),
            "boundary_refinement_foreground_change": dg.MetadataValue.float(round(refinement.get("foreground_change", 0.0), 4)),
            **{f"boundary_refinement_{k}": dg.MetadataValue.float(round(float(refinement[k]), 2))
               for k in ("threshold", "particle_level", "matrix_level", "matrix_q90", "far_matrix_level") if k in refinement},
            **({"boundary_refinement_ring_is_matrix": dg.MetadataValue.bool(bool(refinement["ring_is_matrix"]))}
               if "ring_is_matrix" in refinement else {}),
            "preview_png": dg.MetadataValue.path(str(png_path)),
            "preview": dg.MetadataValue.md(png_markdown(png, "labels xy | xz | yz", max_side=None)),
        }
    )


class SegmentationAccuracyConfig(dg.Config):
    min_ap50: float = Field(default=0.7, description="the check fails when AP@IoU0.5 (tp / (tp + fp + fn)) is below this")


@dg.asset_check(asset=fused_labels, partitions_def=scan_partitions, description="AP@0.5/0.75, precision, recall, mean matched IoU against incoming/<scan>.labels.tif, all particles and those not cut by the volume border (interior_*)")
def segmentation_accuracy(context: dg.AssetCheckExecutionContext, config: SegmentationAccuracyConfig, data_root: DataRootResource) -> dg.AssetCheckResult:
    """Compare the fused labels of a scan with its ground truth; passes (skipped) when there is none."""
    from nmc_assets.ingest import load_labels
    from nmc_assets.segmentation.metrics import accuracy_summary
    from nmc_assets.storage import read_zarr

    layout = data_root.layout
    scan = context.partition_key
    if not any((layout.incoming / f"{scan}{s}").exists() for s in (".labels.tif", ".labels.tiff")):
        return dg.AssetCheckResult(passed=True, metadata={"skipped": "no ground truth"}, description="no ground truth for this scan")
    truth = load_labels(scan, layout.incoming)
    pred = read_zarr(layout.fused_labels(scan))
    s = accuracy_summary(truth, pred)
    passed = s["ap50"] >= config.min_ap50
    return dg.AssetCheckResult(
        passed=bool(passed),
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"AP@0.5 = {s['ap50']:.3f} ({'>=' if passed else '<'} bar {config.min_ap50}); particles not cut by the "
        f"volume border: AP@0.5 {s['interior_ap50']:.3f}, mean matched IoU {s['interior_mean_matched_iou']:.3f}",
        metadata={**{k: (dg.MetadataValue.float(float(v)) if isinstance(v, float) else dg.MetadataValue.int(int(v))) for k, v in s.items()},
                  "min_ap50": dg.MetadataValue.float(config.min_ap50)},
    )
