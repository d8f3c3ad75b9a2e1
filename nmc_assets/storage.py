"""Atomic writes and Zarr helpers (docs/design.md: a crash never leaves a half-written output visible).

Every writer builds its output under a temporary sibling name (``.<name>.tmp-<random>``) and switches
it into place in one step (:func:`atomic_path`). Readers see either the old complete output or the new
complete output, never a missing path; Zarr stores are versioned so that a reader reading chunk by
chunk during a rewrite still reads one version (:func:`open_zarr`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


#: Superseded versions of a directory output stay readable this long (seconds) after a rewrite, so a
#: reader that resolved the old version keeps reading complete data.
VERSION_GRACE_S = 600.0
#: Temporaries of a killed writer (``.<name>.tmp-*``) are removed after this long (seconds).
STALE_TMP_S = 3600.0
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old|v|lnk)-[0-9a-f]{8}$")


def _tmp_sibling(path: Path, tag: str = "tmp") -> Path:
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, versioned: bool | None = None) -> Iterator[Path]:
    """Yield a temporary sibling path to write a file *or* a directory; put it at ``path`` on success.

    On an exception the temporary output is removed and ``path`` is left untouched; ``path`` never
    stops existing while it is replaced:

    - a file replaces the old one with one ``rename`` (a reader holding the old file keeps reading it);
    - a directory replaces the old one with one ``renameat2(RENAME_EXCHANGE)``, then the old is deleted;
    - a *versioned* directory (default for ``*.zarr``: stores read chunk by chunk while they may be
      rewritten) becomes a hidden version folder ``.<name>.v-<id>``, and ``path`` a relative symbolic
      link to it, switched with one ``rename``. A reader that pins a version (:func:`resolve_version`,
      which :func:`open_zarr` does) reads it whole, old or new, never a mix and never a fill value;
      superseded versions are deleted :data:`VERSION_GRACE_S` after they were replaced.

    Temporaries of killed writers next to ``path`` are swept on each write (after :data:`STALE_TMP_S`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_siblings(path)
    if versioned is None:
        versioned = path.suffix == ".zarr"
    tmp = _tmp_sibling(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic write to {path}: nothing was written to {tmp}")
        if tmp.is_dir() and versioned:
            _publish_version(tmp, path)
        elif tmp.is_dir() and (path.exists() or path.is_symlink()):
            previous = _current_version(path)
            _exchange(tmp, path)  # ``tmp`` now holds the old output, deleted below
            if previous is not None:
                _mark_superseded(previous)
        else:
            if path.is_symlink() or path.is_dir():
                _retire(path)
            os.replace(tmp, path)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def _publish_version(tmp: Path, path: Path) -> None:
    """Move the finished directory ``tmp`` to a version folder and point ``path`` at it atomically."""
    version = _tmp_sibling(path, "v")
    os.replace(tmp, version)
    _mark_superseded(version)  # fresh mtime: no concurrent sweep takes it for an old version
    link = _tmp_sibling(path, "lnk")
    os.symlink(version.name, link, target_is_directory=True)
    previous = _current_version(path)
    if path.is_dir() and not path.is_symlink():
        # an output written before versioned folders: swap the real directory out in one step
        _exchange(link, path)  # now ``link`` is the old directory
        old = _tmp_sibling(path, "v")
        os.replace(link, old)
        _mark_superseded(old)
    else:
        os.replace(link, path)
    if previous is not None:
        _mark_superseded(previous)


def _exchange(a: Path, b: Path) -> None:
    """Swap two directory entries atomically (Linux ``renameat2(RENAME_EXCHANGE)``).

    Falls back to two renames where the call does not exist; ``b`` is then briefly absent.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return
        err = ctypes.get_errno()
        if err not in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot; fall back
            raise OSError(err, os.strerror(err), str(b))
    aside = _tmp_sibling(b, "old")
    os.replace(b, aside)
    os.replace(a, b)
    os.replace(aside, a)


def _current_version(path: Path) -> Path | None:
    if not path.is_symlink():
        return None
    target = path.parent / os.readlink(path)
    return target if target.parent == path.parent and _TEMPORARY.match(target.name) else None


def _mark_superseded(version: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(version)  # the grace period counts from now


def _retire(path: Path) -> None:
    """Make room for a plain file at ``path`` where a directory output was (rare: a format change)."""
    if path.is_symlink():
        previous = _current_version(path)
        path.unlink()
        if previous is not None:
            _mark_superseded(previous)
    else:
        shutil.rmtree(path)


def resolve_version(path: str | os.PathLike) -> Path:
    """The version folder that ``path`` points at now (``path`` itself for a plain file or folder).

    A reader that opens the returned path reads one complete version, even if the output is rewritten
    meanwhile (for :data:`VERSION_GRACE_S` seconds).
    """
    return Path(os.path.realpath(path))


def _sweep_siblings(path: Path, now: float | None = None) -> None:
    """Delete this output's superseded versions and its killed writers' temporaries, once old enough."""
    if not path.parent.is_dir():
        return
    now = time.time() if now is None else now
    live = _current_version(path)
    for entry in path.parent.iterdir():
        m = _TEMPORARY.match(entry.name)
        if m is None or m["name"] != path.name or entry == live:
            continue
        age = now - entry.lstat().st_mtime
        limit = VERSION_GRACE_S if m["kind"] in ("v", "old") else STALE_TMP_S
        if age >= limit:
            _remove(entry)


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def remove_stale_temporaries(root: str | os.PathLike, min_age_s: float = STALE_TMP_S) -> list[Path]:
    """Delete what killed writers and rewrites left under ``root``, once older than ``min_age_s`` (mtime).

    That is temporaries (``.<name>.tmp-*``, ``.old-*``, ``.lnk-*``) and version folders (``.<name>.v-*``)
    that no output points at any more. Returns the removed paths. Complete outputs are never touched;
    the walk does not descend into outputs (``*.zarr``) or temporaries.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    now = time.time()
    found: list[Path] = []
    live: set[Path] = set()
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        for name in list(dirs) + files:
            entry = here / name
            if entry.is_symlink() and (version := _current_version(entry)) is not None:
                live.add(version)
            if _TEMPORARY.match(name):
                found.append(entry)
        dirs[:] = [d for d in dirs if not d.endswith(".zarr") and not _TEMPORARY.match(d)]
    removed = []
    for path in sorted(found):
        if path in live or now - path.lstat().st_mtime < min_age_s:
            continue
        _remove(path)
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


def read_zarr(path: str | os.PathLike, level: int = 0) -> np.ndarray:
    """Read a whole Zarr array (an OME-Zarr image's ``level``) into memory, one complete version."""
    return np.asarray(open_zarr(path, level)[...])


def open_zarr(path: str | os.PathLike, level: int = 0):
    """Open a volume read-only and lazily (slices are read on indexing), pinned to its current version.

    ``path`` is a Zarr array (outputs written before OME-Zarr) or an OME-Zarr image group, of which
    level ``level`` is returned (0: full resolution, the first ``multiscales`` dataset).
    """
    import zarr

    return image_level(zarr.open(str(resolve_version(path)), mode="r"), level, path)


def image_level(node, level: int = 0, name: str | os.PathLike = ""):
    """The array of one pyramid level of a Zarr node: an array is its own level 0; an OME-Zarr image
    group (NGFF 0.4 or 0.5) gives its ``multiscales[0].datasets[level]``. Raises ``ValueError`` naming
    ``name`` for a group that is no image or a level that does not exist."""
    import zarr

    if isinstance(node, zarr.Array):
        if level != 0:
            raise ValueError(f"{name or node.path}: a plain Zarr array has only level 0, not level {level}")
        return node
    paths = image_level_paths(node)
    if not paths:
        raise ValueError(f"{name or node.path}: a Zarr group without OME-Zarr 'multiscales' metadata, not an image")
    if not -len(paths) <= level < len(paths):
        raise ValueError(f"{name or node.path}: level {level} does not exist (the image has {len(paths)} levels)")
    return node[paths[level]]


def image_level_paths(group) -> list[str]:
    """Array paths of an OME-Zarr image group's levels, full resolution first (empty: not an image)."""
    attrs = dict(group.attrs)
    meta = attrs.get("ome", attrs)
    multiscales = meta.get("multiscales") if isinstance(meta, dict) else None
    if not multiscales:
        return []
    return [str(d["path"]) for d in multiscales[0].get("datasets", [])]


def open_zarr_levels(path: str | os.PathLike) -> list:
    """Every pyramid level of a volume, full resolution first (one array for a plain Zarr array)."""
    import zarr

    node = zarr.open(str(resolve_version(path)), mode="r")
    if isinstance(node, zarr.Array):
        return [node]
    return [image_level(node, k, path) for k in range(len(image_level_paths(node)) or 1)]


def open_zarr_group(path: str | os.PathLike):
    """Open a Zarr group read-only, pinned to its current version."""
    import zarr

    return zarr.open_group(str(resolve_version(path)), mode="r")


def zarr_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The project attributes of a volume (those of its level 0, which an OME-Zarr image repeats from its group)."""
    return dict(open_zarr(path).attrs)


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()
