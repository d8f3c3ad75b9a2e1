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
    augment: bool = setting(True, "random rot90/flips, intensity scale/shift and Gaussian noise")
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


def augmenter(seed: int = 0):
    """Random flips/rot90 (axes are isotropic), intensity scale/shift and Gaussian noise."""
    rng = np.random.default_rng(seed)

    def augment(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = int(rng.integers(4))
        x, y = np.rot90(x, k), np.rot90(y, k)
        if rng.random() < 0.5:
            x, y = x[:, ::-1], y[:, ::-1]
        x = x * rng.uniform(0.7, 1.3) + rng.uniform(-0.15, 0.15)
        x = x + rng.normal(0, rng.uniform(0, 0.05), x.shape)
        return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y)

    return augment


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
        model.train(X, Y, validation_data=(Xv, Yv), augmenter=augmenter(config.seed) if config.augment else None, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch)
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
