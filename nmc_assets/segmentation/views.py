"""Per-view StarDist maps: object probability and mean ray distance for the xy, xz and yz slice stacks.

The input is a normalised (z, y, x) volume at the model's working pixel size (see :mod:`.scaling`).
Each view's slices are pushed through the network in batches (no per-slice NMS, as in Li et al.),
the grid-resolution outputs are interpolated back to the slice size, and the results are written slab
by slab into one Zarr group::

    <scan>.zarr/            attrs: views, binned_shape, full_shape, bin_factor, model, ...
      prob_xy, dist_xy      float16 (z, y, x) at the binned resolution, all views in volume axes
      prob_xz, dist_xz      (each an OME-Zarr image, :mod:`nmc_assets.ngff`: level 0 plus a mean
      prob_yz, dist_yz      pyramid, scale ``pixel_um`` in um, placed on the tomogram; read level 0
                            with ``image_level``)

``dist_*`` is the mean over rays of the predicted ray distances, in binned pixels. Only one slab of
one view is in memory at a time (plus the input volume).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .training_set import VIEW_AXIS, VIEWS

SLAB = 32  # slices per write = the Zarr chunk size along the stacking axis


def _net_divisor(model) -> int:
    return int(model._axes_div_by("YX")[0])


def predict_slices(model, slices: np.ndarray, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Probability and mean ray distance for a stack of normalised 2D slices ``(n, h, w)``.

    Returns two float32 arrays ``(n, h, w)``; grid-resolution outputs are linearly interpolated back.
    """
    from scipy import ndimage

    n, h, w = slices.shape
    div = _net_divisor(model)
    grid = int(model.config.grid[0])
    H, W = -(-h // div) * div, -(-w // div) * div
    x = np.pad(slices.astype(np.float32), ((0, 0), (0, H - h), (0, W - w)), mode="reflect" if min(h, w) > 1 else "edge")
    outs = model.keras_model.predict(x[..., None], batch_size=batch_size, verbose=0)
    prob, dist = outs[0][..., 0], outs[1].mean(axis=-1)
    gh, gw = -(-h // grid), -(-w // grid)
    prob, dist = prob[:, :gh, :gw], dist[:, :gh, :gw]
    if grid > 1:
        zoom = (1, h / gh, w / gw)
        prob = ndimage.zoom(prob, zoom, order=1, grid_mode=True, mode="nearest")
        dist = ndimage.zoom(dist, zoom, order=1, grid_mode=True, mode="nearest")
    return np.clip(prob[:, :h, :w], 0, 1).astype(np.float32), np.maximum(dist[:, :h, :w], 0).astype(np.float32)


def iter_view(model, volume: np.ndarray, view: str, slab: int = SLAB, batch_size: int = 8) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Yield ``(index_slice, prob, dist)`` for consecutive slabs of one view, in volume (z, y, x) axes."""
    axis = VIEW_AXIS[view]
    n = volume.shape[axis]
    for i0 in range(0, n, slab):
        idx = slice(i0, min(n, i0 + slab))
        stack = np.moveaxis(np.take(volume, np.arange(idx.start, idx.stop), axis=axis), axis, 0)
        prob, dist = predict_slices(model, stack, batch_size)
        yield idx, np.moveaxis(prob, 0, axis), np.moveaxis(dist, 0, axis)


def write_view_maps(model, volume: np.ndarray, out_path: str | os.PathLike, attrs: dict, views: tuple[str, ...] = VIEWS, batch_size: int = 8) -> Path:
    """Predict every view of ``volume`` and write the maps to a Zarr group at ``out_path`` (atomically)."""
    import zarr

    from ..ngff import ImageWriter
    from ..storage import _jsonable, atomic_path

    shape = volume.shape
    chunks = tuple(min(SLAB, s) for s in shape)
    pixel_um = float(attrs["pixel_um"])
    # a binned voxel is the mean of factor^3 full-resolution voxels: its centre in the tomogram's frame (um)
    origin_um = (int(attrs.get("bin_factor", 1)) - 1) / 2 * float(attrs.get("voxel_size_um", pixel_um))
    with atomic_path(out_path) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        for view in views:
            axis = VIEW_AXIS[view]
            images = {c: ImageWriter(tmp / f"{c}_{view}", shape, "float16", chunks, pixel_um, name=f"{c}_{view}",
                                     origin_um=origin_um)
                      for c in ("prob", "dist")}
            for idx, prob, dist in iter_view(model, volume, view, batch_size=batch_size):
                region = tuple(idx if a == axis else slice(None) for a in range(3))
                images["prob"].level0[region] = prob.astype(np.float16)
                images["dist"].level0[region] = dist.astype(np.float16)
            for c, image in images.items():
                unit = "object probability (0-1)" if c == "prob" else "mean ray distance (binned pixels)"
                image.finish({"view": view, "quantity": unit})
        root.attrs.update(_jsonable({**attrs, "views": list(views), "binned_shape": list(shape)}))
    return Path(out_path)


def read_fused_maps(path: str | os.PathLike, views: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Mean probability and mean ray distance over ``views`` (default: all stored), plus the group attrs.

    Views are accumulated one at a time (two float32 volumes in memory).
    """
    from ..storage import image_level, open_zarr_group

    root = open_zarr_group(path)
    attrs = dict(root.attrs)
    views = tuple(views or attrs["views"])
    prob = dist = None
    for v in views:
        p = np.asarray(image_level(root[f"prob_{v}"], 0, f"{path}/prob_{v}")[...], dtype=np.float32)
        d = np.asarray(image_level(root[f"dist_{v}"], 0, f"{path}/dist_{v}")[...], dtype=np.float32)
        prob = p if prob is None else prob + p
        dist = d if dist is None else dist + d
    return prob / len(views), dist / len(views), attrs
