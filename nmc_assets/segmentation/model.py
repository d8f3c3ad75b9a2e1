"""StarDist2D training, threshold optimisation and the model folder.

The model folder is StarDist's native format (``config.json``, ``weights_best.h5``, ``thresholds.json``)
plus ``nmc_model.json``: working pixel size, validation AP, training scans, and how it was made.
TensorFlow/StarDist are imported inside the functions (they cost ~7 s to import).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nmc_assets.settings import setting

from .scaling import DEFAULT_WORKING_PIXEL_UM

META_FILE = "nmc_model.json"
DEFAULT_MODEL_NAME = "nmc_default"


@dataclass
class TrainConfig:
    """Hyper-parameters of a StarDist2D model (defaults: the small shipped CPU model)."""

    # network
    n_rays: int = setting(32, "star-convex polygon rays per pixel")
    grid: int = setting(2, "subsampling of the network's output grid (per axis)")
    unet_depth: int = setting(3, "U-Net depth")
    unet_filters: int = setting(32, "U-Net filters of the first level (doubled per level)")
    # training
    patch_size: int = setting(96, "training patch side (pixels); smaller slices are padded to it")
    batch_size: int = setting(4, "patches per training batch")
    epochs: int = setting(40, "training epochs")
    steps_per_epoch: int = setting(50, "batches per epoch")
    learning_rate: float = setting(3e-4, "Adam learning rate")
    augment: bool = setting(True, "augment training patches (see augmenter; the aug_* knobs, each 0 = off)")
    aug_flip: bool = setting(True, "random rot90 and flips (the axes are isotropic)")
    aug_scale: float = setting(0.3, "intensity gain drawn in 1 +- this")
    aug_shift: float = setting(0.15, "intensity offset drawn in +- this (normalised units)")
    aug_noise: float = setting(0.05, "white Gaussian noise, sd drawn in [0, this]")
    aug_gamma: float = setting(0.5, "gamma drawn log-uniform in exp(+- this) on the normalised intensity (< 1 brightens binder)")
    aug_contrast: float = setting(0.3, "contrast compressed toward the patch mean by a factor drawn in [0, this]")
    aug_smooth_noise: float = setting(0.06, "correlated noise (white noise blurred with sigma 0.7-2 px), sd drawn in [0, this]")
    aug_blur: float = setting(1.0, "Gaussian blur, sigma drawn in [0, this] px")
    aug_zoom: float = setting(0.25, "zoom drawn log-uniform in [1 / (1 + this), 1 + this] (image linear, labels nearest)")
    aug_min_fragment_px: int = setting(6, "after zoom: label pieces smaller than this (pixels) are dropped")
    seed: int = setting(0, "seed of the initialisation, augmentation and batch order")
    # data
    working_pixel_um: float = setting(DEFAULT_WORKING_PIXEL_UM, "pixel size the model works at (um; scans are binned to it)")
    max_val_images: int = setting(48, "at most this many validation slices (a deterministic subset) for validation, thresholds and AP")


def _seed_everything(seed: int) -> None:
    import random

    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


def augmenter(seed: int = 0, config: TrainConfig | None = None):
    """The training-patch augmentation (the one place; knobs: ``aug_*`` of :class:`TrainConfig`).

    Per patch, in this order, each step skipped when its knob is 0: random rot90/flip; zoom (image
    linear, labels nearest, the same factor; zooming in crops the centre region at a random offset,
    zooming out reflects image and labels at the border; then
    disconnected pieces are split and pieces under ``aug_min_fragment_px`` dropped); Gaussian blur;
    intensity gain and offset; gamma on the normalised intensity (clipped at 0); contrast compression
    toward the patch mean; white noise; correlated (blurred) noise. Draws come from one generator
    seeded with ``seed``: the same seed and patches give the same output. Shapes and dtypes are kept
    (image float32, labels as given).
    """
    c = config or TrainConfig()
    rng = np.random.default_rng(seed)

    def augment(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy import ndimage

        x = np.asarray(x, np.float32)
        if c.aug_flip:
            k = int(rng.integers(4))
            x, y = np.rot90(x, k), np.rot90(y, k)
            if rng.random() < 0.5:
                x, y = x[:, ::-1], y[:, ::-1]
        if c.aug_zoom > 0:
            z = float(np.exp(rng.uniform(-np.log1p(c.aug_zoom), np.log1p(c.aug_zoom))))
            x, y = zoom_pair(x, y, z, rng, c.aug_min_fragment_px)
        if c.aug_blur > 0:
            x = ndimage.gaussian_filter(x, rng.uniform(0, c.aug_blur), mode="reflect")
        if c.aug_scale > 0 or c.aug_shift > 0:
            x = x * rng.uniform(1 - c.aug_scale, 1 + c.aug_scale) + rng.uniform(-c.aug_shift, c.aug_shift)
        if c.aug_gamma > 0:
            xc = np.clip(x, 0, None)
            x = x + (xc ** np.exp(rng.uniform(-c.aug_gamma, c.aug_gamma)) - xc)
        if c.aug_contrast > 0:
            m = float(x.mean())
            x = m + (x - m) * (1 - rng.uniform(0, c.aug_contrast))
        if c.aug_noise > 0:
            x = x + rng.normal(0, rng.uniform(0, c.aug_noise), x.shape)
        if c.aug_smooth_noise > 0:
            w = ndimage.gaussian_filter(rng.standard_normal(x.shape), rng.uniform(0.7, 2.0), mode="wrap")
            x = x + w / max(float(w.std()), 1e-6) * rng.uniform(0, c.aug_smooth_noise)
        return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y)

    return augment


def zoom_pair(x: np.ndarray, y: np.ndarray, factor: float, rng: np.random.Generator, min_fragment_px: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Zoom a 2D image (linear) and its instance labels (nearest) by ``factor``, keeping the shape.

    Zooming in crops at a random offset; zooming out reflects both at the border (a particle cut by the
    border and its mirror image are one symmetric object, as the image shows it). Labels are then split into connected pieces (4-connectivity) and pieces under
    ``min_fragment_px`` pixels set to background. ``factor`` 1 returns the inputs unchanged.
    """
    from scipy import ndimage

    from .training_set import relabel_slice

    if factor == 1.0:
        return x, y
    h, w = x.shape
    zi = ndimage.zoom(np.asarray(x, np.float32), factor, order=1, mode="reflect", grid_mode=True)
    zl = ndimage.zoom(np.asarray(y), factor, order=0, mode="nearest", grid_mode=True)
    if zi.shape[0] >= h and zi.shape[1] >= w:
        oy, ox = int(rng.integers(zi.shape[0] - h + 1)), int(rng.integers(zi.shape[1] - w + 1))
        zi, zl = zi[oy:oy + h, ox:ox + w], zl[oy:oy + h, ox:ox + w]
    else:
        ph, pw = max(0, h - zi.shape[0]), max(0, w - zi.shape[1])
        top, left = int(rng.integers(ph + 1)), int(rng.integers(pw + 1))
        pad = ((top, ph - top), (left, pw - left))
        zi = np.pad(zi, pad, mode="symmetric")[:h, :w]
        zl = np.pad(zl, pad, mode="symmetric")[:h, :w]
    lbl = relabel_slice(zl)
    if min_fragment_px > 0 and lbl.max():
        sizes = np.bincount(lbl.ravel())
        small = sizes < min_fragment_px
        small[0] = False
        lbl[small[lbl]] = 0
        lbl = relabel_slice(lbl)
    return zi, lbl.astype(y.dtype if np.issubdtype(y.dtype, np.integer) and lbl.max() <= np.iinfo(y.dtype).max else np.uint32)


def _pad_to_patch(images: list[np.ndarray], labels: list[np.ndarray], patch: int):
    from .training_set import pad_to_min

    out = [pad_to_min(i, l, patch) for i, l in zip(images, labels)]
    return [o[0] for o in out], [o[1] for o in out]


def _fill_holes(labels: list[np.ndarray]) -> list[np.ndarray]:
    from stardist import fill_label_holes

    return [fill_label_holes(l) for l in labels]


def validation_ap(model, images: list[np.ndarray], labels: list[np.ndarray], thresholds=(0.5, 0.75)) -> dict[str, float]:
    """Mean over validation images of StarDist's 2D matching AP (tp / (tp + fp + fn)) at each IoU."""
    from .metrics import match_instances

    per = {t: [] for t in thresholds}
    for img, lbl in zip(images, labels):
        pred, _ = model.predict_instances(img, verbose=False)
        m = match_instances(lbl, pred, thresholds)
        for t in thresholds:
            per[t].append(m[t]["ap"])
    return {f"val_ap{int(t * 100)}": float(np.mean(v)) if v else 0.0 for t, v in per.items()}


def train_stardist(
    train_images: list[np.ndarray],
    train_labels: list[np.ndarray],
    val_images: list[np.ndarray],
    val_labels: list[np.ndarray],
    out_dir: str | os.PathLike,
    config: TrainConfig = TrainConfig(),
    extra_meta: dict | None = None,
) -> dict:
    """Train a StarDist2D model, tune its thresholds on the validation images, write the model folder.

    ``out_dir`` is the final folder (``.../<name>``); it is built under a temporary name and renamed.
    Returns the metadata written to ``nmc_model.json``.
    """
    from stardist.models import Config2D, StarDist2D

    from ..storage import atomic_path, atomic_write_json

    if not train_images or not val_images:
        raise ValueError(f"training needs train and validation images, got {len(train_images)} / {len(val_images)}")
    _seed_everything(config.seed)
    p = config.patch_size
    X, Y = _pad_to_patch(train_images, _fill_holes(train_labels), p)
    Xv, Yv = _pad_to_patch(val_images, _fill_holes(val_labels), p)
    if len(Xv) > config.max_val_images:  # keep validation during training cheap; deterministic subset
        idx = np.linspace(0, len(Xv) - 1, config.max_val_images).round().astype(int)
        Xv, Yv = [Xv[i] for i in idx], [Yv[i] for i in idx]
    out_dir = Path(out_dir)
    sd_conf = Config2D(
        n_rays=config.n_rays,
        grid=(config.grid, config.grid),
        n_channel_in=1,
        unet_n_depth=config.unet_depth,
        unet_n_filter_base=config.unet_filters,
        train_patch_size=(p, p),
        train_batch_size=config.batch_size,
        train_epochs=config.epochs,
        train_steps_per_epoch=config.steps_per_epoch,
        train_learning_rate=config.learning_rate,
        train_tensorboard=False,
        use_gpu=False,
    )
    t0 = time.time()
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        model = StarDist2D(sd_conf, name=out_dir.name, basedir=str(tmp.parent / "_stardist_build" / tmp.name))
        model.train(X, Y, validation_data=(Xv, Yv), augmenter=augmenter(config.seed, config) if config.augment else None, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch)
        train_s = time.time() - t0
        n_opt = min(len(Xv), 24)  # threshold search runs NMS many times: a deterministic subset keeps it to ~1 min
        sub = np.linspace(0, len(Xv) - 1, n_opt).round().astype(int)
        model.optimize_thresholds([Xv[i] for i in sub], [Yv[i] for i in sub], nms_threshs=[0.3, 0.4], iou_threshs=[0.5, 0.7], optimize_kwargs={"verbose": False})
        scores = validation_ap(model, Xv, Yv)
        built = Path(model.logdir)
        for f in ("config.json", "weights_best.h5", "thresholds.json"):
            shutil.copy2(built / f, tmp / f)
        shutil.rmtree(tmp.parent / "_stardist_build" / tmp.name, ignore_errors=True)
        meta = {
            "name": out_dir.name,
            "working_pixel_um": config.working_pixel_um,
            "train_config": asdict(config),
            "thresholds": dict(model.thresholds._asdict()),
            **scores,
            "n_train_images": len(X),
            "n_val_images": len(Xv),
            "train_seconds": round(train_s, 1),
            "n_params": int(model.keras_model.count_params()),
            **(extra_meta or {}),
        }
        atomic_write_json(tmp / META_FILE, meta)
    try:
        (out_dir.parent / "_stardist_build").rmdir()
    except OSError:
        pass
    return meta


def read_model_meta(model_dir: str | os.PathLike) -> dict:
    """``nmc_model.json`` of a model folder (validates that the StarDist files are there)."""
    model_dir = Path(model_dir)
    missing = [f for f in ("config.json", "weights_best.h5", "thresholds.json", META_FILE) if not (model_dir / f).exists()]
    if missing:
        raise FileNotFoundError(f"StarDist model folder {model_dir} is missing {', '.join(missing)}")
    return json.loads((model_dir / META_FILE).read_text())


_MODEL_CACHE: dict[str, object] = {}


def load_stardist(model_dir: str | os.PathLike):
    """Load a StarDist2D model folder (cached per process)."""
    model_dir = Path(model_dir).resolve()
    read_model_meta(model_dir)
    key = f"{model_dir}:{(model_dir / 'weights_best.h5').stat().st_mtime_ns}"
    if key not in _MODEL_CACHE:
        from stardist.models import StarDist2D

        _MODEL_CACHE[key] = StarDist2D(None, name=model_dir.name, basedir=str(model_dir.parent))
    return _MODEL_CACHE[key]


def copy_model(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a model folder atomically (used to adopt the shipped default into a data root)."""
    from ..storage import atomic_path

    read_model_meta(src)
    with atomic_path(dst) as tmp:
        shutil.copytree(src, tmp)
    return Path(dst)


def repository_models_dir() -> Path:
    """``<repo>/data/models/stardist``: where the shipped default model lives (committed with the code)."""
    return Path(__file__).resolve().parents[2] / "data" / "models" / "stardist"


def shipped_model_dir(name: str = DEFAULT_MODEL_NAME) -> Path:
    return repository_models_dir() / name
