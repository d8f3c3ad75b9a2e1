"""Streaming a scan into the tomogram Zarr: same values and attributes as reading it whole, bounded memory."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from nmc_assets.ingest import ScanError, load_scan, tomogram_attrs
from nmc_assets.ingest.tomogram import write_tomogram
from nmc_assets.storage import read_zarr, sha256_file, zarr_attrs
from nmc_assets_tests.ingest.scan_fixtures import make_volume, write_h5, write_scan, write_tiff


@pytest.mark.parametrize("fmt, axis, slab", [("tif", "z", None), ("tif", "y", 2), ("h5", "x", 3), ("h5", "z", 4)])
def test_streamed_tomogram_equals_the_whole_read(incoming, tmp_path, fmt, axis, slab):
    volume = make_volume(shape=(7, 20, 24), seed=3)
    write_scan(incoming, "s", volume, fmt=fmt, sidecar={"voxel_size_um": 0.1, "thickness_axis": axis, "cycles": 5})
    out = tmp_path / "s.zarr"
    attrs, warnings = write_tomogram("s", incoming, out, slab=slab)
    whole, meta, whole_warnings = load_scan("s", incoming)
    stored = read_zarr(out)
    assert stored.dtype == np.uint16  # source dtype kept
    np.testing.assert_array_equal(stored.astype(np.float32), whole)
    assert attrs == zarr_attrs(out)
    expected = tomogram_attrs(meta, stored, whole_warnings)
    assert attrs == expected  # percentiles, checksum, shape: identical to the in-memory path
    assert attrs["source_sha256"] == sha256_file(incoming / f"s.{fmt}") and warnings == whole_warnings


def test_float64_is_stored_as_float32_and_8_bit_stays_8_bit(incoming, tmp_path):
    write_scan(incoming, "f", make_volume(dtype=np.float64))
    write_scan(incoming, "b", make_volume(dtype=np.uint8))
    write_tomogram("f", incoming, tmp_path / "f.zarr")
    write_tomogram("b", incoming, tmp_path / "b.zarr")
    assert read_zarr(tmp_path / "f.zarr").dtype == np.float32
    b = read_zarr(tmp_path / "b.zarr")
    assert b.dtype == np.uint8 and b.nbytes == make_volume().size


def _no_output(tmp_path):
    return [p.name for p in tmp_path.iterdir() if p.name.startswith(("bad", ".bad"))] == []


@pytest.mark.parametrize("kind, words", [
    ("nan", "volume has non-finite values: 2 NaN and 1 Inf of 2880 voxels"),
    ("constant", "volume is constant"),
    ("mixed_pages", "pages have mixed shapes or dtypes"),
    ("declared_shape", "does not match (sidecar bad.json says shape [6, 20, 25])"),
    ("overflow", "values overflow float32"),
])
def test_bad_volumes_fail_with_the_file_and_leave_nothing(incoming, tmp_path, kind, words):
    import tifffile

    volume = make_volume(dtype=np.float32)
    path = incoming / "bad.tif"
    if kind == "nan":
        volume[5, 1, 1] = volume[0, 2, 3] = np.nan
        volume[3, 3, 3] = np.inf
        write_tiff(path, volume)
    elif kind == "constant":
        write_tiff(path, np.full((6, 20, 24), 7, np.uint8))
    elif kind == "mixed_pages":
        with tifffile.TiffWriter(path) as tw:
            tw.write(np.zeros((20, 24), np.uint8) + 1)
            tw.write(np.zeros((21, 24), np.uint16) + 2)
    elif kind == "declared_shape":
        write_tiff(path, volume)
        (incoming / "bad.json").write_text(json.dumps({"shape": [6, 20, 25]}))
    elif kind == "overflow":
        big = make_volume(dtype=np.float64)
        big[2, 2, 2] = 1e300
        write_h5(incoming / "bad.h5", big)
        path = incoming / "bad.h5"
    with pytest.raises(ScanError) as info:
        write_tomogram("bad", incoming, tmp_path / "bad.zarr", slab=2)
    assert info.value.path == path and words in info.value.problem
    assert _no_output(tmp_path)


def test_streaming_memory_does_not_grow_with_the_scan(incoming, tmp_path):
    rng = np.random.default_rng(0)
    peaks = {}
    for planes in (64, 256):
        volume = rng.integers(0, 255, size=(planes, 256, 256), dtype=np.uint8)
        write_tiff(incoming / f"v{planes}.tif", volume)
        write_tomogram(f"v{planes}", incoming, tmp_path / "warm.zarr", slab=16)  # imports and caches
        tracemalloc.start()
        try:
            write_tomogram(f"v{planes}", incoming, tmp_path / f"v{planes}.zarr", slab=16)
            peaks[planes] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert np.array_equal(read_zarr(tmp_path / f"v{planes}.zarr"), volume)
    # a few slabs and Zarr's chunk buffers, whatever the number of planes
    assert peaks[256] < 1.3 * peaks[64], peaks
    assert peaks[256] < 64 * 2**20, peaks  # about 8 chunk buffers of 4 MiB at the peak


def test_progress_counts_planes(incoming, tmp_path):
    write_scan(incoming, "p", make_volume(shape=(9, 20, 24)))
    seen = []
    write_tomogram("p", incoming, tmp_path / "p.zarr", slab=4, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(4, 9), (8, 9), (9, 9)]


@pytest.mark.parametrize("fmt", ["h5", "tif"])
def test_slab_reader_handles_leading_singleton_axes(tmp_path, fmt):
    import tifffile

    from nmc_assets.ingest.formats import VolumeReader

    volume = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(1, 1, 5, 6, 7)
    path = tmp_path / f"a.{fmt}"
    if fmt == "h5":
        write_h5(path, volume)
    else:
        tifffile.imwrite(path, volume, imagej=True)
    with VolumeReader(path) as reader:
        assert reader.shape == (5, 6, 7) and reader.dtype == np.uint16
        np.testing.assert_array_equal(reader.read(1, 3), volume[0, 0, 1:3])


@pytest.mark.parametrize("axis, slab", [("z", 4), ("y", 6), ("x", 5)])
def test_tomogram_is_an_ome_zarr_image_with_a_mean_pyramid(incoming, tmp_path, axis, slab):
    """Level 1 is streamed from even slabs (computed after level 0 for an odd slab); either way every
    level is the mean of the one above and ome-zarr-models validates the image, scale in um."""
    from nmc_assets import ngff
    from nmc_assets.storage import open_zarr_group, open_zarr_levels

    volume = make_volume(shape=(19, 40, 46), seed=5)
    write_scan(incoming, "p", volume, sidecar={"voxel_size_um": 0.1, "thickness_axis": axis})
    out = tmp_path / "p.zarr"
    write_tomogram("p", incoming, out, slab=slab, pyramid_min_side=12)
    ngff.validate(out)
    levels = open_zarr_levels(out)
    assert len(levels) == 3 and levels[0].dtype == np.uint16
    for fine, coarse in zip(levels, levels[1:]):
        np.testing.assert_array_equal(coarse[...], ngff.coarsen(fine[...], (2, 2, 2), "mean"))
    ms = open_zarr_group(out).attrs["ome"]["multiscales"][0]
    assert ms["datasets"][1]["coordinateTransformations"] == [{"type": "scale", "scale": [0.2, 0.2, 0.2]},
                                                             {"type": "translation", "translation": [0.05, 0.05, 0.05]}]
    assert zarr_attrs(out)["scan_id"] == "p" and ms["name"] == "p"
