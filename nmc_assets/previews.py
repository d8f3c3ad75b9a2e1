"""Small PNG previews for the Dagster UI (embedded as base64 Markdown; Dagster has no image metadata type)."""

from __future__ import annotations

import base64
import io

import numpy as np


def _to_uint8(img: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    img = np.asarray(img, dtype=np.float32)
    if lo is None or hi is None:
        finite = img[np.isfinite(img)]
        lo, hi = (np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0))
    return (np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def label_colors(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """RGB image (uint8) with a stable pseudo-random colour per label, black background."""
    rng = np.random.default_rng(seed)
    n = int(labels.max()) + 1
    lut = rng.integers(60, 256, size=(max(n, 1), 3), dtype=np.uint8)
    lut[0] = 0
    return lut[labels]


def central_slices(volume: np.ndarray) -> list[np.ndarray]:
    """The central xy, xz and yz slices of a (z, y, x) volume."""
    z, y, x = (s // 2 for s in volume.shape)
    return [volume[z], volume[:, y, :], volume[:, :, x]]


def montage(images: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Place 2D (grey) or 3D (RGB) images side by side on a black canvas."""
    rgb = [np.repeat(i[..., None], 3, -1) if i.ndim == 2 else i for i in images]
    h = max(i.shape[0] for i in rgb)
    w = sum(i.shape[1] for i in rgb) + gap * (len(rgb) - 1)
    canvas = np.zeros((h, w, 3), np.uint8)
    x0 = 0
    for i in rgb:
        canvas[: i.shape[0], x0 : x0 + i.shape[1]] = i
        x0 += i.shape[1] + gap
    return canvas


def overlay_labels(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB overlay of instance labels (random colours) and their outlines on a grey image."""
    from skimage.segmentation import find_boundaries

    grey = np.repeat(_to_uint8(image)[..., None], 3, -1).astype(np.float32)
    colors = label_colors(labels).astype(np.float32)
    fg = labels > 0
    grey[fg] = (1 - alpha) * grey[fg] + alpha * colors[fg]
    grey[find_boundaries(labels, mode="inner")] = (255, 255, 0)
    return grey.astype(np.uint8)


def downsample_to(img: np.ndarray, max_side: int) -> np.ndarray:
    step = max(1, int(np.ceil(max(img.shape[:2]) / max_side)))
    return img[::step, ::step]


def png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    if img.dtype != np.uint8:
        img = _to_uint8(img)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_markdown(img: np.ndarray, alt: str = "preview", max_side: int = 256) -> str:
    """Markdown image tag with the PNG inlined; keep it small (metadata lives in the event log)."""
    data = base64.b64encode(png_bytes(downsample_to(img, max_side))).decode()
    return f"![{alt}](data:image/png;base64,{data})"


def volume_preview_markdown(volume: np.ndarray, max_side: int = 192) -> str:
    """Central xy, xz, yz slices of a grey volume side by side, as inline Markdown PNG."""
    lo, hi = np.percentile(volume[:: max(1, volume.shape[0] // 16)], [0.5, 99.5])
    slices = [_to_uint8(downsample_to(s, max_side), lo, hi) for s in central_slices(volume)]
    return png_markdown(montage(slices), "xy | xz | yz", max_side=3 * max_side + 8)


def labels_preview_markdown(volume: np.ndarray, labels: np.ndarray, max_side: int = 192) -> str:
    """Label overlays on the central xy, xz, yz slices, as inline Markdown PNG."""
    pairs = zip(central_slices(volume), central_slices(labels))
    imgs = [downsample_to(overlay_labels(v, l), max_side) for v, l in pairs]
    return png_markdown(montage(imgs), "labels xy | xz | yz", max_side=3 * max_side + 8)
