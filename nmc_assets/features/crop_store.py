"""A scratch store of per-particle crops, so mosaics can be built without the whole volume in memory.

Blockwise feature extraction (:mod:`nmc_assets.features.blockwise`) packs particles into the same
mosaics as the in-memory path (:func:`~nmc_assets.features.measure.mosaic_chunks`), and those group
particles by crop size, not by position: a mosaic's particles lie all over the scan. Reading each crop
from the Zarr stores would decompress whole Zarr chunks per particle (about 50 ms a particle at the
stores' 128^3 / (64, 256, 256) chunks). Instead one pass over the volume, block by block, cuts every
particle's *region* (its crop grown by the mosaic's :data:`~nmc_assets.features.mosaic.TILE_PAD` rim,
clipped to the volume) into the parts that fall in each block and appends them, compressed, to that
block's scratch file; measuring a mosaic then reads back only its particles' parts.

A part holds, over its box, the particle's *codes* (uint8: 1 = the particle's label, 2 = another label,
0 = background; see :func:`particle_codes`) and the intensity in the tomogram's own dtype. Boxes are
``(z, y, x)`` voxel indices of the volume, hi exclusive.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np

from nmc_assets.features.mosaic import TILE_PAD

#: Columns of a part table (int64 rows): the block whose file holds it, byte offset, compressed sizes of
#: the codes and the intensity, then the part's box lo (z, y, x) and hi (z, y, x) in the volume.
PART_COLUMNS = ("block", "offset", "n_codes", "n_img", "z0", "y0", "x0", "z1", "y1", "x1")


def _codecs():
    from numcodecs import LZ4, Zstd

    return Zstd(level=1), LZ4()  # codes compress ~15x; intensity (noisy) little, so the fast one


def crop_regions(starts: np.ndarray, sizes: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi): (n, 3) int64 regions (z, y, x; hi exclusive) of the crops ``starts : starts + sizes``
    grown by :data:`TILE_PAD` and clipped to the volume ``shape``: all a mosaic tile reads."""
    return (np.maximum(starts - TILE_PAD, 0),
            np.minimum(starts + sizes + TILE_PAD, np.asarray(shape, np.int64)))


def particle_codes(labels: np.ndarray, pid: int) -> np.ndarray:
    """uint8 codes of a piece of the label volume for particle ``pid`` (> 0): 1 where the label is
    ``pid``, 2 where it is another label, 0 on background (what the mosaic kernel reads as own/other)."""
    return (2 * (labels != 0) - (labels == pid)).astype(np.uint8)


def block_file(scratch: str | os.PathLike, block: int) -> Path:
    return Path(scratch) / f"crops-{block}.bin"


def write_block_parts(scratch: str | os.PathLike, block: int, block_lo: np.ndarray, labels: np.ndarray,
                      image: np.ndarray, pids: np.ndarray, region_lo: np.ndarray, region_hi: np.ndarray
                      ) -> np.ndarray:
    """Write the parts of the regions ``region_lo : region_hi`` ((k, 3) int64, volume indices) of the
    particles ``pids`` that lie in this block to its scratch file; return their part table ((k, 10)
    int64, :data:`PART_COLUMNS`). ``labels`` and ``image``: the block's (z, y, x) arrays, the block
    starting at ``block_lo`` (3,) in the volume. The file appears complete or not at all."""
    codes_codec, img_codec = _codecs()
    block_lo = np.asarray(block_lo, np.int64)
    lo = np.maximum(region_lo, block_lo)
    hi = np.minimum(region_hi, block_lo + np.array(labels.shape))
    table = np.zeros((len(pids), len(PART_COLUMNS)), np.int64)
    path = block_file(scratch, block)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    offset = 0
    with open(tmp, "wb") as f:
        for k, pid in enumerate(np.asarray(pids).tolist()):
            local = tuple(slice(int(a), int(b)) for a, b in zip(lo[k] - block_lo, hi[k] - block_lo))
            codes = codes_codec.encode(np.ascontiguousarray(particle_codes(labels[local], pid)))
            img = img_codec.encode(np.ascontiguousarray(image[local]))
            f.write(codes)
            f.write(img)
            table[k, :4] = (block, offset, len(codes), len(img))
            offset += len(codes) + len(img)
    table[:, 4:7] = lo
    table[:, 7:10] = hi
    os.replace(tmp, path)
    return table


class PartReader:
    """Reads regions back from the block files of ``scratch`` (keeps each file open once; use ``with``)."""

    def __init__(self, scratch: str | os.PathLike, image_dtype: str | np.dtype):
        self.scratch, self.image_dtype = scratch, np.dtype(image_dtype)
        self._files: dict[int, int] = {}
        self._codecs = _codecs()

    def __enter__(self) -> PartReader:
        return self

    def __exit__(self, *exc) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()

    def _read(self, block: int, offset: int, n: int) -> bytes:
        fd = self._files.get(block)
        if fd is None:
            fd = self._files[block] = os.open(block_file(self.scratch, block), os.O_RDONLY)
        data = os.pread(fd, n, offset)
        if len(data) != n:
            raise OSError(f"{block_file(self.scratch, block)}: short read at byte {offset} ({len(data)} of {n})")
        return data

    def region(self, lo: np.ndarray, hi: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes uint8, intensity float32) over the region ``lo : hi`` ((3,) volume indices) from its
        ``parts`` (rows of a part table that tile the region)."""
        shape = tuple(int(s) for s in np.asarray(hi) - np.asarray(lo))
        codes = np.empty(shape, np.uint8)
        img = np.empty(shape, np.float32)
        codes_codec, img_codec = self._codecs
        covered = 0
        for block, offset, n_codes, n_img, *box in np.asarray(parts).tolist():
            p_lo, p_hi = np.array(box[:3]) - lo, np.array(box[3:]) - lo
            local = tuple(slice(int(a), int(b)) for a, b in zip(p_lo, p_hi))
            part_shape = tuple(int(b - a) for a, b in zip(p_lo, p_hi))
            raw = self._read(block, offset, n_codes + n_img)
            codes[local] = np.frombuffer(codes_codec.decode(raw[:n_codes]), np.uint8).reshape(part_shape)
            img[local] = np.frombuffer(img_codec.decode(raw[n_codes:]), self.image_dtype).reshape(part_shape)
            covered += int(np.prod(part_shape))
        if covered != codes.size:
            raise ValueError(f"crop parts cover {covered} of the region's {codes.size} voxels")
        return codes, img
