"""OME-Zarr (NGFF 0.5, Zarr v3) images: a multiscale pyramid written blockwise, metadata from ``ome-zarr-models``.

Every volume the platform writes is an OME-Zarr image group (tomograms, view maps, fused labels,
published particles)::

    <name>.zarr/        zarr.json: attributes {"ome": {"version": "0.5", "multiscales": [...]}, ...project attrs}
      0/                level 0, full resolution (z, y, x); the project attributes are repeated on it
      1/ ... n/         each level halves every axis (of size >= 2) until the largest side is <= ``min_side``

Axes are (z, y, x), type ``space``, unit ``micrometer``; level ``k`` has scale ``voxel_um * 2**k`` and, for
images downsampled by the mean, a translation of half the coarse voxel minus half the fine one (voxel
centres stay where they were). Labels are downsampled by nearest (the first voxel of each 2x2x2 cell,
no translation) and carry NGFF ``image-label`` metadata (colours, the source image). The metadata is
built with ``ome-zarr-models`` objects, which validate it as it is written.

Readers open level 0 through :func:`nmc_assets.storage.open_zarr` (also plain arrays written before).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Pyramid levels are added until the largest side of the coarsest level is at most this (voxels).
PYRAMID_MIN_SIDE = 256
AXES = ("z", "y", "x")
UNIT = "micrometer"
METHODS = ("mean", "nearest")


def level_factors(shape: Sequence[int], min_side: int | None = PYRAMID_MIN_SIDE) -> list[tuple[int, ...]]:
    """Per-axis downsampling factor from each level to the next (2, or 1 for an axis of size 1).

    ``min_side=None``: no pyramid (an empty list). Level ``k+1`` has shape ``level_k // factor``.
    """
    out: list[tuple[int, ...]] = []
    shape = tuple(int(s) for s in shape)
    if min_side is None:
        return out
    while max(shape) > min_side and any(s >= 2 for s in shape):
        f = tuple(2 if s >= 2 else 1 for s in shape)
        out.append(f)
        shape = tuple(s // k for s, k in zip(shape, f))
    return out


def level_shapes(shape: Sequence[int], min_side: int | None = PYRAMID_MIN_SIDE) -> list[tuple[int, ...]]:
    """Shapes (voxels) of every level, level 0 first."""
    shapes = [tuple(int(s) for s in shape)]
    for f in level_factors(shape, min_side):
        shapes.append(tuple(s // k for s, k in zip(shapes[-1], f)))
    return shapes


def level_transforms(shape: Sequence[int], voxel_um: Sequence[float] | float, method: str,
                     min_side: int | None = PYRAMID_MIN_SIDE, origin_um: float = 0.0) -> list[tuple[list[float], list[float]]]:
    """(scale, translation) in um of every level, level 0 first (see the module docstring);
    ``origin_um``: where level 0's first voxel centre lies on every axis (0 for full-resolution data)."""
    ndim = len(shape)
    scale = [float(v) for v in (voxel_um if isinstance(voxel_um, Sequence) else [voxel_um] * ndim)]
    trans = [float(origin_um)] * ndim
    out = [(list(scale), list(trans))]
    for f in level_factors(shape, min_side):
        if method == "mean":
            trans = [t + (k - 1) / 2 * s for t, k, s in zip(trans, f, scale)]
        scale = [s * k for s, k in zip(scale, f)]
        out.append((list(scale), list(trans)))
    return out


def _sum_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind == "u":
        return np.dtype(f"u{min(8, dtype.itemsize * 2)}")
    if dtype.kind == "i":
        return np.dtype(f"i{min(8, dtype.itemsize * 2)}")
    if dtype.kind == "b":
        return np.dtype("u1")
    return np.dtype(np.float64 if dtype.itemsize >= 8 else np.float32)


def coarsen(block: np.ndarray, factors: Sequence[int], method: str) -> np.ndarray:
    """Downsample ``block`` by integer ``factors`` per axis (trailing voxels that do not fill a cell dropped).

    ``mean``: the cell mean, rounded half up for integer dtypes (sums in a wider integer), same dtype out;
    ``nearest``: the first voxel of each cell (labels).
    """
    if method not in METHODS:
        raise ValueError(f"unknown downsampling method {method!r}; expected one of {METHODS}")
    f = tuple(int(k) for k in factors)
    trimmed = block[tuple(slice(0, (s // k) * k) for s, k in zip(block.shape, f))]
    if method == "nearest":
        return np.ascontiguousarray(trimmed[tuple(slice(None, None, k) for k in f)])
    cells = trimmed.reshape([x for s, k in zip(trimmed.shape, f) for x in (s // k, k)])
    axes = tuple(range(1, 2 * len(f), 2))
    n = math.prod(f)
    acc = cells.sum(axis=axes, dtype=_sum_dtype(block.dtype))
    if block.dtype.kind in "uib":
        return ((acc + n // 2) // n).astype(block.dtype)
    return (acc / n).astype(block.dtype)


class ImageWriter:
    """An OME-Zarr image being written into the (new, empty) folder ``path`` (usually an ``atomic_path``).

    Write level 0 through :attr:`level0` (or a path to it, :meth:`level_path`, for other processes),
    optionally level 1 along with it (:meth:`write_level1`, from aligned level-0 blocks already in
    memory), then call :meth:`finish` once: it computes the remaining levels blockwise from the level
    above and writes the metadata. ``chunks`` (voxels) apply to every level, clipped to its shape;
    ``voxel_um`` is level 0's voxel edge and ``origin_um`` its first voxel centre (both um).
    """

    def __init__(self, path: str | os.PathLike, shape: Sequence[int], dtype: Any, chunks: Sequence[int],
                 voxel_um: float | Sequence[float], *, labels: bool = False, min_side: int | None = PYRAMID_MIN_SIDE,
                 name: str | None = None, fill_value: Any = 0, origin_um: float = 0.0):
        import zarr

        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) != len(AXES):
            raise ValueError(f"{self.path}: an image needs {len(AXES)} axes (z, y, x), got shape {self.shape}")
        self.dtype = np.dtype(dtype)
        self.labels = labels
        self.method = "nearest" if labels else "mean"
        self.factors = level_factors(self.shape, min_side)
        self.shapes = level_shapes(self.shape, min_side)
        self.transforms = level_transforms(self.shape, voxel_um, self.method, min_side, origin_um)
        self.name = name or self.path.name
        self.level1_written = False
        self.pyramid_seconds = 0.0  # time spent on levels >= 1 (write_level1 and finish), for benchmarks
        self.group = zarr.open_group(str(self.path), mode="w", zarr_format=3)
        self.arrays = [
            self.group.create_array(str(k), shape=s, dtype=self.dtype, dimension_names=AXES, fill_value=fill_value,
                                    chunks=tuple(max(1, min(c, n)) for c, n in zip(chunks, s)))
            for k, s in enumerate(self.shapes)
        ]

    @property
    def level0(self):
        return self.arrays[0]

    def level_path(self, level: int = 0) -> str:
        return str(self.path / str(level))

    def write_level1(self, region: Sequence[slice], block: np.ndarray) -> None:
        """Write ``coarsen(block)`` into level 1 where ``block`` is level 0 at ``region``.

        Each region must start at a multiple of the factors (and end at one, or at the volume's end);
        the caller must cover level 0 entirely before :meth:`finish` (which then starts at level 2).
        """
        if len(self.arrays) < 2:
            return
        f = self.factors[0]
        if any(r.start % k or (r.stop % k and r.stop != n) for r, k, n in zip(region, f, self.shape)):
            raise ValueError(f"{self.path}: region {region} is not aligned to the downsampling factors {f}")
        t0 = time.perf_counter()
        target = tuple(slice(r.start // k, r.stop // k) for r, k in zip(region, f))
        self.arrays[1][target] = coarsen(block, f, self.method)
        self.level1_written = True
        self.pyramid_seconds += time.perf_counter() - t0

    def finish(self, attrs: dict | None = None, *, source_image: str | None = None, n_labels: int | None = None,
               label_voxels: np.ndarray | None = None, workers: int | None = None) -> None:
        """Compute the missing levels (blockwise, ``workers`` threads) and write the metadata.

        ``attrs``: project attributes (JSON-able), stored on the group beside ``ome`` and on level 0.
        Labels: ``source_image`` (relative path of the image they label), ``n_labels`` (colours for
        label values 0..n, 0 transparent) and ``label_voxels`` (voxels per label value 0..n at level 0:
        NGFF label properties ``voxels`` and ``volume_um3``).
        """
        from nmc_assets.storage import _jsonable

        t0 = time.perf_counter()
        start = 2 if self.level1_written else 1
        for level in range(start, len(self.arrays)):
            downsample_level(self.arrays[level - 1], self.arrays[level], self.factors[level - 1], self.method, workers)
        self.pyramid_seconds += time.perf_counter() - t0
        ome = ome_metadata(self.transforms, name=self.name, method=self.method, labels=self.labels,
                           source_image=source_image, n_labels=n_labels, label_voxels=label_voxels)
        extra = _jsonable(attrs or {})
        if "ome" in extra:
            raise ValueError(f"{self.path}: the attribute name 'ome' is reserved for the OME-Zarr metadata")
        self.group.attrs.update({"ome": ome, **extra})
        if extra:
            self.arrays[0].attrs.update(extra)


def downsample_level(src, dst, factors: Sequence[int], method: str, workers: int | None = None) -> None:
    """Fill the Zarr array ``dst`` with ``coarsen(src)``, blockwise on threads (Dask).

    Each task reads the ``src`` block of one ``dst`` chunk times ``factors`` and writes that chunk, so
    memory stays at a few blocks and no two tasks write the same chunk.
    """
    import dask
    import dask.array as da

    f = tuple(int(k) for k in factors)
    out_chunks = tuple(int(c) for c in dst.chunks)
    x = da.from_zarr(src, chunks=tuple(c * k for c, k in zip(out_chunks, f)))
    x = x[tuple(slice(0, n * k) for n, k in zip(dst.shape, f))]
    y = x.map_blocks(coarsen, f, method, dtype=dst.dtype,
                     chunks=tuple(tuple(c // k for c in cs) for cs, k in zip(x.chunks, f)))
    with dask.config.set(scheduler="threads", num_workers=workers or os.cpu_count() or 1):
        da.store(y, dst, lock=False)


def write_image(path: str | os.PathLike, array: np.ndarray, voxel_um: float | Sequence[float], *, labels: bool = False,
                attrs: dict | None = None, chunks: Sequence[int] | None = None, min_side: int | None = PYRAMID_MIN_SIDE,
                source_image: str | None = None, n_labels: int | None = None, atomic: bool = True) -> Path:
    """Write an in-memory (z, y, x) volume as an OME-Zarr image (or label image) at ``path``.

    ``atomic``: through :func:`nmc_assets.storage.atomic_path` (False: ``path`` is already a fresh
    folder inside an atomic write). ``n_labels`` defaults to the largest label value.
    """
    from nmc_assets.storage import atomic_path, default_chunks

    def write(folder: Path) -> None:
        w = ImageWriter(folder, array.shape, array.dtype, chunks or default_chunks(array.shape), voxel_um,
                        labels=labels, min_side=min_side, name=Path(path).name)
        w.level0[...] = array
        count = (int(array.max()) if array.size else 0) if labels and n_labels is None else n_labels
        voxels = np.bincount(array.ravel().astype(np.int64, copy=False)) if labels and array.size else None
        w.finish(attrs, source_image=source_image, n_labels=count, label_voxels=voxels, workers=1)

    if atomic:
        with atomic_path(path) as tmp:
            write(tmp)
    else:
        write(Path(path))
    return Path(path)


def label_colours(n_labels: int, seed: int = 17) -> list[tuple[int, int, int, int]]:
    """RGBA colours for label values 0..n (0 transparent; the others bright, fixed by ``seed``)."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(60, 256, size=(max(0, n_labels), 3))
    return [(0, 0, 0, 0)] + [(int(r), int(g), int(b), 255) for r, g, b in rgb]


def ome_metadata(transforms: list[tuple[list[float], list[float]]], *, name: str, method: str, labels: bool = False,
                 source_image: str | None = None, n_labels: int | None = None,
                 label_voxels: np.ndarray | None = None) -> dict:
    """The ``ome`` attribute of an image (or label image) group, built and validated by ``ome-zarr-models``.

    Labels get colours for values 0..``n_labels`` and, with ``label_voxels``, properties ``voxels`` and
    ``volume_um3`` per value (level-0 voxel counts; the same values, as NGFF requires)."""
    from ome_zarr_models.v05.axes import Axis
    from ome_zarr_models.v05.image import ImageAttrs
    from ome_zarr_models.v05.image_label import ImageLabelAttrs
    from ome_zarr_models.v05.image_label_types import Color, Label, Property, Source
    from ome_zarr_models.v05.multiscales import Dataset, Multiscale

    multiscale = Multiscale(
        axes=tuple(Axis(name=a, type="space", unit=UNIT) for a in AXES),
        datasets=tuple(Dataset.build(path=str(k), scale=s, translation=t) for k, (s, t) in enumerate(transforms)),
        name=name,
        type=method,
        metadata={"method": "nmc_assets.ngff.coarsen", "description": _METHOD_TEXT[method]},
    )
    if not labels:
        model = ImageAttrs(multiscales=[multiscale], version="0.5")
    else:
        colours = tuple(Color(**{"label-value": k, "rgba": c}) for k, c in enumerate(label_colours(int(n_labels or 0))))
        props = None
        if label_voxels is not None:
            counts = np.zeros(len(colours), np.int64)
            counts[: min(len(counts), len(label_voxels))] = np.asarray(label_voxels)[: len(counts)]
            voxel_um3 = math.prod(transforms[0][0])
            props = tuple(Property(**{"label-value": k, "voxels": int(n), "volume_um3": round(float(n * voxel_um3), 6)})
                          for k, n in enumerate(counts))
        label = Label(colors=colours, properties=props, source=Source(image=source_image) if source_image else None,
                      version="0.5")
        model = ImageLabelAttrs(**{"image-label": label}, multiscales=[multiscale], version="0.5")
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


_METHOD_TEXT = {
    "mean": "mean of each 2x2x2 cell (rounded half up for integers)",
    "nearest": "first voxel of each 2x2x2 cell (labels)",
}


def validate(path: str | os.PathLike):
    """Validate the OME-Zarr image or label image at ``path`` with ``ome-zarr-models``; return the model.

    Raises ``ValueError`` naming the path and the problem.
    """
    import zarr
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.image_label import ImageLabel

    from nmc_assets.storage import resolve_version

    try:
        group = zarr.open_group(str(resolve_version(path)), mode="r")
        ome = dict(group.attrs).get("ome")
        if not isinstance(ome, dict):
            raise ValueError("no 'ome' attribute: not an OME-Zarr 0.5 image")
        model = ImageLabel if "image-label" in ome else Image
        return model.from_zarr(group)
    except Exception as exc:  # pydantic, zarr and our own errors alike
        raise ValueError(f"{path}: not a valid OME-Zarr 0.5 image: {exc}") from exc


def image_paths(root: str | os.PathLike) -> list[Path]:
    """Every Zarr array and OME-Zarr image under ``root`` as the readers see them: a ``*.zarr`` store,
    or the image groups inside a store that is a plain group (view maps, published volumes)."""
    import zarr

    from nmc_assets.storage import resolve_version

    found: list[Path] = []
    root = Path(root)
    for store in sorted(root.rglob("*.zarr")):
        parts = store.relative_to(root).parts
        if any(p.startswith(".") for p in parts) or any(p.endswith(".zarr") for p in parts[:-1]):
            continue  # version folders and temporaries (hidden), and anything inside a store
        node = zarr.open(str(resolve_version(store)), mode="r")
        if isinstance(node, zarr.Array) or "ome" in node.attrs:
            found.append(store)
        else:
            found += [store / name for name, _ in sorted(node.groups())]
    return found
