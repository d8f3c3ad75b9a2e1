"""One scan in napari: the tomogram and its fused labels through their OME-Zarr pyramids, per-particle
features as label properties (``nmc-assets view SCAN [--particle ID]``).

napari is an optional extra (``pip install -e ".[viewer]"``) imported only by :func:`show`;
:func:`scan_scene` gathers everything to show without it. Coordinates are physical (z, y, x) in um:
every layer's scale is the voxel size, so the tomogram and labels overlay and a particle's centroid
(``x_um, y_um, z_um`` of ``particle_features``) is where napari puts the camera.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nmc_assets.paths import DataLayout

VIEWER_EXTRA = 'pip install -e ".[viewer]"'
#: Feature columns shown when hovering a particle (those present in the table), in this order.
HOVER_COLUMNS = ("damage", "volume_um3", "contact", "sphericity", "elongation", "z_um", "touches_border")


class ViewerMissingError(ImportError):
    """napari (the ``viewer`` extra) is not installed, or there is no display to show it on."""


@dataclass
class Scene:
    """What :func:`show` puts on screen: pyramid levels (level 0 first), scale (um per voxel, z, y, x),
    the contrast range, the features table (``index`` = label value) and where to look."""

    scan_id: str
    image_levels: list
    scale: tuple[float, float, float]
    contrast_limits: tuple[float, float]
    label_levels: list | None = None
    features: Any = None
    center_um: tuple[float, float, float] | None = None
    particle: int | None = None
    paths: dict[str, str] = field(default_factory=dict)


def scan_scene(layout: DataLayout, scan_id: str, particle: int | None = None) -> Scene:
    """The scene of one scan: tomogram (required), fused labels and features (when present).

    Raises ``FileNotFoundError`` naming the missing tomogram, ``ValueError`` for a ``particle`` that
    is not in the scan's features.
    """
    import pandas as pd

    from nmc_assets.storage import open_zarr_levels, zarr_attrs

    tomo = layout.tomogram(scan_id)
    if not tomo.exists():
        raise FileNotFoundError(f"{tomo}: no tomogram for scan {scan_id!r}; materialize raw_tomogram first (make demo)")
    attrs = zarr_attrs(tomo)
    voxel = float(attrs.get("voxel_size_um") or 1.0)
    image_levels = open_zarr_levels(tomo)
    pct = attrs.get("percentiles") or {}
    if "1" in pct and "99.8" in pct:
        limits = (float(pct["1"]), float(pct["99.8"]))
    else:
        coarse = np.asarray(image_levels[-1][...], np.float32)
        limits = (float(coarse.min()), float(coarse.max()) if coarse.max() > coarse.min() else float(coarse.min()) + 1)
    scene = Scene(scan_id, image_levels, (voxel,) * 3, limits, paths={"tomogram": str(tomo)})
    labels = layout.fused_labels(scan_id)
    if labels.exists():
        scene.label_levels = open_zarr_levels(labels)
        scene.paths["fused_labels"] = str(labels)
    table = layout.particle_features(scan_id)
    if table.exists():
        df = pd.read_parquet(table)
        cols = [c for c in HOVER_COLUMNS if c in df.columns]
        cols += [c for c in ("x_um", "y_um", "z_um") if c not in cols]
        scene.features = df[["particle_id", *cols]].rename(columns={"particle_id": "index"})
        scene.paths["particle_features"] = str(table)
    if particle is not None:
        if scene.features is None:
            raise ValueError(f"{table}: no features for scan {scan_id!r}, cannot find particle {particle}")
        row = scene.features[scene.features["index"] == particle]
        if row.empty:
            raise ValueError(f"{table}: scan {scan_id!r} has no particle {particle} "
                             f"(ids {int(scene.features['index'].min())}-{int(scene.features['index'].max())})")
        scene.particle = int(particle)
        scene.center_um = tuple(float(row.iloc[0][c]) for c in ("z_um", "y_um", "x_um"))
    return scene


def particle_caption(scene: Scene) -> str:
    """The selected particle's features (what hovering it shows), a few short lines for the canvas overlay."""
    row = scene.features[scene.features["index"] == scene.particle].iloc[0]
    parts = []
    for c in HOVER_COLUMNS:
        if c in row.index:
            v = row[c]
            parts.append(f"{c} {bool(v)}" if isinstance(v, (bool, np.bool_)) else f"{c} {float(v):.3g}")
    lines = [", ".join(parts[i:i + 3]) for i in range(0, len(parts), 3)]
    return "\n".join([f"{scene.scan_id}, particle {scene.particle}", *lines])


def show(scene: Scene, *, screenshot: str | os.PathLike | None = None, size: tuple[int, int] = (1100, 760)):
    """Open napari on ``scene`` and run its event loop; with ``screenshot``, save the window as PNG there
    and close instead (headless: under ``xvfb-run``; napari needs OpenGL). Returns the viewer (or the PNG path)."""
    try:
        import napari
    except ImportError as exc:
        raise ViewerMissingError(f"the viewer needs napari, which is not installed: {VIEWER_EXTRA}") from exc
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")):
        raise ViewerMissingError("no display to open napari on (DISPLAY is not set): run it on a desktop, "
                                 "over ssh -X, or headless with a screenshot: xvfb-run -a nmc-assets view ... --screenshot out.png")

    viewer = napari.Viewer(title=f"nmc_assets: {scene.scan_id}", show=screenshot is None)
    viewer.window.resize(*size)
    multi = len(scene.image_levels) > 1
    viewer.add_image(scene.image_levels if multi else scene.image_levels[0], multiscale=multi, scale=scene.scale,
                     contrast_limits=scene.contrast_limits, name=f"{scene.scan_id} tomogram", colormap="gray",
                     units="micrometer", axis_labels=("z", "y", "x"))
    if scene.label_levels is not None:
        lmulti = len(scene.label_levels) > 1
        layer = viewer.add_labels(scene.label_levels if lmulti else scene.label_levels[0], multiscale=lmulti,
                                  scale=scene.scale, name=f"{scene.scan_id} fused labels", opacity=0.45,
                                  features=scene.features, units="micrometer", axis_labels=("z", "y", "x"))
        if scene.particle is not None:
            layer.selected_label = scene.particle
    viewer.canvas.overlays["scale_bar"].visible = True
    viewer.reset_view()
    camera = viewer.scene.camera
    if scene.particle is not None:
        text = viewer.canvas.overlays["text"]
        text.text, text.visible, text.position, text.font_size = particle_caption(scene), True, "top_left", 11
        viewer.dims.set_point(0, scene.center_um[0])
        camera.center = scene.center_um[1:]
        row = scene.features[scene.features["index"] == scene.particle].iloc[0]
        diameter = (6 * float(row.get("volume_um3", 1.0)) / np.pi) ** (1 / 3)
        extent = min(n * s for n, s in zip(scene.image_levels[0].shape[1:], scene.scale[1:]))
        camera.zoom = camera.zoom * float(np.clip(extent / (3 * diameter), 1, 20))
    if screenshot is None:
        napari.run()
        return viewer
    import io

    from PIL import Image

    from nmc_assets.storage import atomic_write_bytes

    pixels = viewer.screenshot(canvas_only=False, flash=False)  # RGBA (h, w, 4)
    viewer.close()
    png = io.BytesIO()
    Image.fromarray(np.asarray(pixels)).save(png, format="PNG", optimize=True)
    return atomic_write_bytes(screenshot, png.getvalue())
