"""Small PNG previews for the Dagster UI, inlined as base64 Markdown by :func:`png_markdown` (Dagster has no
image metadata type)."""

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


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig, dpi: int) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards); fixed metadata, so the same figure gives the same bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    pyplot().close(fig)
    return buf.getvalue()


def thumbnail_png(png: bytes, max_side: int = 480) -> bytes:
    """A smaller copy of a PNG (Lanczos resampling, so text stays legible; 64-colour palette)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    scale = max_side / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    image = image.quantize(colors=64, method=Image.Quantize.MEDIANCUT)  # palette PNG: about 3x smaller
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_markdown(image: np.ndarray | bytes, alt: str = "preview", max_side: int | None = 256) -> str:
    """Markdown image tag with the PNG inlined, for ``dg.MetadataValue.md``.

    ``image``: a grey or RGB array (downsampled to at most ``max_side`` pixels a side) or PNG bytes
    (resampled by :func:`thumbnail_png`); ``max_side=None`` keeps the size. Keep it small: metadata
    lives in the event log.
    """
    if isinstance(image, bytes):
        png = image if max_side is None else thumbnail_png(image, max_side)
    else:
        png = png_bytes(image if max_side is None else downsample_to(image, max_side))
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def labels_montage_markdown(label_images: list[np.ndarray], alt: str, max_side: int) -> str:
    """2D label images side by side (a colour per label), as inline Markdown PNG."""
    return png_markdown(montage([label_colors(lab) for lab in label_images]), alt, max_side=max_side)


def volume_preview_markdown(volume: np.ndarray, max_side: int = 192) -> str:
    """Central xy, xz, yz slices of a grey volume side by side, as inline Markdown PNG."""
    lo, hi = np.percentile(volume[:: max(1, volume.shape[0] // 16)], [0.5, 99.5])
    slices = [_to_uint8(downsample_to(s, max_side), lo, hi) for s in central_slices(volume)]
    return png_markdown(montage(slices), "xy | xz | yz", max_side=3 * max_side + 8)


def labels_overlay_png(volume, labels, max_side: int = 384) -> bytes:
    """PNG: labels over the central xy, xz and yz slices (``volume``, ``labels``: arrays or lazy Zarr arrays)."""
    pairs = zip(central_slices(volume), central_slices(labels))
    return png_bytes(montage([downsample_to(overlay_labels(np.asarray(v), np.asarray(l)), max_side) for v, l in pairs]))
