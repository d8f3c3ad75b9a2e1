"""StarDist training data: 2D image/label slices along xy, xz and yz of labelled scans, plus user annotations.

Everything is at the model's working pixel size (scans are block-binned, see :mod:`.scaling`) and
intensities are normalised with the scan's 1st / 99.8th percentiles. Validation holds out whole scans,
never slices of a scan that is also used for training.

On disk (``save_training_set``): a folder with ``index.json`` and one compressed ``.npz`` per
(source, view) holding ``images`` (float16, (n, h, w)) and ``labels`` (uint16/uint32, (n, h, w)).

User annotations: a folder of 2D pairs ``<name>.tif`` (grey image) + ``<name>.labels.tif`` (instance
labels, 0 = background, filled particles), optional ``<name>.json`` with ``{"pixel_size_um": ...}``
(without it the image is taken to be at the working pixel size already). Annotations always go to training.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .scaling import DEFAULT_WORKING_PIXEL_UM, bin_factor_for, bin_labels_mode, bin_mean

VIEWS = ("xy", "xz", "yz")
#: axis of a (z, y, x) volume along which each view's slices are stacked
VIEW_AXIS = {"xy": 0, "xz": 1, "yz": 2}


@dataclass
class SliceSet:
    """2D slices of one source (scan or annotation folder) in one view direction."""

    source: str
    view: str
    images: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


def normalize_percentiles(image: np.ndarray, lo: float | None = None, hi: float | None = None, p_lo: float = 1.0, p_hi: float = 99.8) -> np.ndarray:
    """``(image - lo) / (hi - lo)`` as float32; ``lo``/``hi`` default to the image's own percentiles."""
    image = np.asarray(image, dtype=np.float32)
    if lo is None or hi is None:
        lo, hi = np.percentile(image, [p_lo, p_hi])
    return (image - np.float32(lo)) / np.float32(max(float(hi) - float(lo), 1e-12))


def relabel_slice(labels2d: np.ndarray) -> np.ndarray:
    """Split disconnected pieces of one id into separate 2D objects (touching ids stay separate)."""
    from skimage.measure import label

    return label(labels2d, background=0, connectivity=1).astype(np.uint32)


def pad_to_min(img: np.ndarray, lbl: np.ndarray, min_size: int, fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Pad a slice (bottom/right) so both sides are >= ``min_size`` (StarDist samples fixed-size patches)."""
    ph, pw = max(0, min_size - img.shape[0]), max(0, min_size - img.shape[1])
    if ph or pw:
        img = np.pad(img, ((0, ph), (0, pw)), constant_values=fill)
        lbl = np.pad(lbl, ((0, ph), (0, pw)), constant_values=0)
    return img, lbl


def volume_slices(
    image: np.ndarray,
    labels: np.ndarray,
    source: str,
    views: tuple[str, ...] = VIEWS,
    slice_step: int = 2,
    min_size: int = 0,
    min_objects: int = 1,
) -> list[SliceSet]:
    """Cut a normalised (z, y, x) image + label volume into 2D slices along each view.

    Every ``slice_step``-th slice is kept (neighbours are nearly identical); slices with fewer than
    ``min_objects`` objects are skipped; slices are padded to ``min_size``.
    """
    if image.shape != labels.shape:
        raise ValueError(f"{source}: image shape {image.shape} != labels shape {labels.shape}")
    out = []
    for view in views:
        axis = VIEW_AXIS[view]
        s = SliceSet(source, view)
        for i in range(slice_step // 2, image.shape[axis], slice_step):
            lbl = relabel_slice(np.take(labels, i, axis=axis))
            if lbl.max() < min_objects:
                continue
            img = np.take(image, i, axis=axis)
            img, lbl = pad_to_min(img, lbl, min_size)
            s.images.append(img.astype(np.float32))
            s.labels.append(lbl)
        out.append(s)
    return out


def scan_slices(
    image: np.ndarray,
    labels: np.ndarray,
    voxel_size_um: float,
    source: str,
    *,
    working_pixel_um: float = DEFAULT_WORKING_PIXEL_UM,
    normalize: tuple[float, float] | None = None,
    slice_step: int = 2,
    min_size: int = 0,
) -> list[SliceSet]:
    """Bin a labelled scan to the working pixel size, normalise it, and cut it into view slices."""
    factor = bin_factor_for(voxel_size_um, working_pixel_um)
    img = bin_mean(image, factor)
    if normalize is None:
        img = normalize_percentiles(img)
    else:
        img = normalize_percentiles(img, *normalize)
    lbl = bin_labels_mode(labels, factor)
    return volume_slices(img, lbl, source, slice_step=slice_step, min_size=min_size)


def load_annotations(folder: str | os.PathLike, working_pixel_um: float = DEFAULT_WORKING_PIXEL_UM, min_size: int = 0) -> SliceSet:
    """Read user 2D annotation pairs from ``folder`` (see module doc); missing folder -> empty set."""
    import tifffile
    from scipy import ndimage

    folder = Path(folder)
    s = SliceSet("annotations", "2d")
    if not folder.is_dir():
        return s
    for lbl_path in sorted(folder.glob("*.labels.tif*")):
        name = lbl_path.name.split(".labels.tif")[0]
        img_path = next((p for p in (folder / f"{name}.tif", folder / f"{name}.tiff") if p.exists()), None)
        if img_path is None:
            raise FileNotFoundError(f"annotation {lbl_path}: no image {name}.tif beside it")
        img = tifffile.imread(img_path)
        lbl = tifffile.imread(lbl_path)
        if img.ndim != 2 or lbl.shape != img.shape:
            raise ValueError(f"annotation {img_path}: need a 2D image and labels of the same shape, got {img.shape} and {lbl.shape}")
        meta = folder / f"{name}.json"
        px = json.loads(meta.read_text()).get("pixel_size_um") if meta.exists() else None
        img = normalize_percentiles(img)
        if px:
            zoom = float(px) / working_pixel_um
            img = ndimage.zoom(img, zoom, order=1)
            lbl = ndimage.zoom(lbl, zoom, order=0)
        lbl = relabel_slice(lbl)
        img, lbl = pad_to_min(img, lbl, min_size)
        s.images.append(img.astype(np.float32))
        s.labels.append(lbl)
    return s


def split_scans(scan_ids: list[str], val_fraction: float = 0.25, seed: int = 0) -> tuple[list[str], list[str]]:
    """Hold out whole scans for validation (at least one when there are two or more scans)."""
    ids = sorted(scan_ids)
    if len(ids) < 2:
        raise ValueError(f"need at least two labelled scans to hold one out for validation, got {ids}")
    rng = np.random.default_rng(seed)
    n_val = min(len(ids) - 1, max(1, int(round(val_fraction * len(ids)))))
    val = sorted(rng.choice(ids, size=n_val, replace=False).tolist())
    return [i for i in ids if i not in val], val


def save_training_set(folder: str | os.PathLike, train: list[SliceSet], val: list[SliceSet], meta: dict) -> Path:
    """Write slices to ``folder`` (must not exist or be a temp dir): ``index.json`` + one ``.npz`` per set."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for split, sets in (("train", train), ("val", val)):
        for s in sets:
            if not len(s):
                continue
            fname = f"{split}__{s.source}__{s.view}.npz"
            shapes = {im.shape for im in s.images}
            if len(shapes) == 1:
                arrays = {"images": np.stack(s.images).astype(np.float16), "labels": np.stack(s.labels)}
            else:  # annotations of mixed sizes: one key per image
                arrays = {f"images_{i}": im.astype(np.float16) for i, im in enumerate(s.images)}
                arrays |= {f"labels_{i}": lb for i, lb in enumerate(s.labels)}
            np.savez_compressed(folder / fname, **arrays)
            entries.append({"file": fname, "split": split, "source": s.source, "view": s.view, "n": len(s)})
    (folder / "index.json").write_text(json.dumps({**meta, "entries": entries}, indent=2, sort_keys=True))
    return folder


def load_training_set(folder: str | os.PathLike) -> tuple[dict, dict[str, tuple[list[np.ndarray], list[np.ndarray]]]]:
    """Read a saved training set: ``(index, {"train": (images, labels), "val": (images, labels)})``."""
    folder = Path(folder)
    index_path = folder / "index.json"
    if not index_path.exists():
        raise FileNotFoundError(f"{folder}: not a training set (no index.json)")
    index = json.loads(index_path.read_text())
    data: dict[str, tuple[list, list]] = {"train": ([], []), "val": ([], [])}
    for e in index["entries"]:
        with np.load(folder / e["file"]) as z:
            if "images" in z:
                imgs, lbls = list(z["images"].astype(np.float32)), list(z["labels"])
            else:
                n = e["n"]
                imgs = [z[f"images_{i}"].astype(np.float32) for i in range(n)]
                lbls = [z[f"labels_{i}"] for i in range(n)]
        data[e["split"]][0].extend(imgs)
        data[e["split"]][1].extend(lbls)
    return index, data


def tomogram_slices(tomogram_path: str | os.PathLike, labels: np.ndarray, source: str, *, working_pixel_um: float = DEFAULT_WORKING_PIXEL_UM, slice_step: int = 2, min_size: int = 0) -> list[SliceSet]:
    """View slices of a stored tomogram Zarr (float32, attrs voxel_size_um + percentiles) and its labels.

    The tomogram is binned slab by slab (never loaded whole at full resolution).
    """
    from ..storage import open_zarr
    from .scaling import bin_volume_slabwise

    arr = open_zarr(tomogram_path)
    attrs = dict(arr.attrs)
    if tuple(arr.shape) != tuple(labels.shape):
        raise ValueError(f"{source}: labels shape {labels.shape} != tomogram shape {tuple(arr.shape)}")
    pct = attrs.get("percentiles") or {}
    if "1" in pct and "99.8" in pct:
        norm = (float(pct["1"]), float(pct["99.8"]))
    else:
        sample = np.asarray(arr[:: max(1, arr.shape[0] // 16)], np.float32)
        norm = tuple(float(v) for v in np.percentile(sample, [1, 99.8]))
    factor = bin_factor_for(float(attrs["voxel_size_um"]), working_pixel_um)
    img = bin_volume_slabwise(arr, factor, norm)
    lbl = bin_labels_mode(labels, factor)
    return volume_slices(img, lbl, source, slice_step=slice_step, min_size=min_size)
