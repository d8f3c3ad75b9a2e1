"""Atomic writes and Zarr helpers (DESIGN 3.2: a crash never leaves a half-written output visible).

Every writer builds its output under a temporary sibling name (``.<name>.tmp-<random>``) and renames
it into place. Readers therefore see either the old complete output or the new complete output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _tmp_sibling(path: Path, tag: str = "tmp") -> Path:
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path to write a file *or* a directory; rename it to ``path`` on success.

    On an exception the temporary output is removed and ``path`` is left untouched. An existing
    directory at ``path`` is swapped out (renamed aside, then deleted) after the new one is in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic write to {path}: nothing was written to {tmp}")
        if tmp.is_dir() and path.exists():
            old = _tmp_sibling(path, "old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)


def remove_stale_temporaries(root: str | os.PathLike, min_age_s: float = 3600.0) -> list[Path]:
    """Delete temporaries that a killed writer left under ``root`` (``.<name>.tmp-*`` / ``.<name>.old-*``).

    Only entries older than ``min_age_s`` (mtime) are removed, so a writer that is still running keeps
    its temporary. Returns the removed paths. Complete outputs are never touched.
    """
    import re
    import time

    root = Path(root)
    if not root.is_dir():
        return []
    pattern = re.compile(r"^\..+\.(tmp|old)-[0-9a-f]{8}$")
    now = time.time()
    removed = []
    for path in sorted(root.rglob(".*")):
        if not pattern.match(path.name) or not path.exists():
            continue
        if now - path.lstat().st_mtime < min_age_s:
            continue
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as sorted, indented JSON (deterministic bytes)."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_write_parquet(path: str | os.PathLike, table: Any, **kwargs: Any) -> Path:
    """Write a ``pyarrow.Table`` or ``pandas.DataFrame`` to Parquet atomically (zstd by default)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    kwargs.setdefault("compression", "zstd")
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kwargs)
    return Path(path)


def default_chunks(shape: tuple[int, ...], target_voxels: int = 2**21) -> tuple[int, ...]:
    """Roughly cubic chunks of about ``target_voxels`` elements (2 Mi voxels by default)."""
    side = max(16, int(round(target_voxels ** (1 / len(shape)))))
    return tuple(min(s, side) for s in shape)


def write_zarr(
    path: str | os.PathLike,
    array: np.ndarray,
    *,
    chunks: tuple[int, ...] | None = None,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Write ``array`` as a single Zarr array at ``path`` atomically; ``zarr.open(path)`` reads it back."""
    import zarr

    with atomic_path(path) as tmp:
        z = zarr.create_array(
            store=str(tmp),
            shape=array.shape,
            dtype=array.dtype,
            chunks=chunks or default_chunks(array.shape),
            zarr_format=3,
        )
        z[...] = array
        if attrs:
            z.attrs.update(_jsonable(attrs))
    return Path(path)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_json_default))


def read_zarr(path: str | os.PathLike) -> np.ndarray:
    """Read a whole Zarr array into memory."""
    import zarr

    return np.asarray(zarr.open_array(str(path), mode="r")[...])


def open_zarr(path: str | os.PathLike):
    """Open a Zarr array read-only and lazily (slices are read on indexing)."""
    import zarr

    return zarr.open_array(str(path), mode="r")


def zarr_attrs(path: str | os.PathLike) -> dict[str, Any]:
    return dict(open_zarr(path).attrs)


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()
