"""load_scan: good scans read back exactly; every bad input of docs/design.md §3.2 fails naming the file and the problem."""

import json

import numpy as np
import pytest

from nmc_assets.ingest import (
    DEFAULT_VOXEL_SIZE_UM,
    ScanError,
    intensity_percentiles,
    load_labels,
    load_scan,
    probe_volume,
    tomogram_attrs,
)
from nmc_assets_tests.ingest.scan_fixtures import (
    SHAPE,
    SIDECAR,
    make_labels,
    make_volume,
    tree_state,
    truncate,
    write_h5,
    write_scan,
    write_sidecar,
    write_tiff,
)


@pytest.mark.parametrize("fmt", ["tif", "tiff", "h5"])
def test_good_scan_reads_original_values_as_float32(incoming, fmt):
    vol = make_volume()
    src = write_scan(incoming, "s1", vol, fmt=fmt, sidecar=SIDECAR, labels=make_labels())
    volume, meta, warnings = load_scan("s1", incoming)
    assert volume.dtype == np.float32 and volume.shape == SHAPE
    np.testing.assert_array_equal(volume, vol.astype(np.float32))
    assert warnings == []
    assert meta["voxel_size_um"] == 0.1 and meta["cycles"] == 10 and meta["sample"] == "NMC811-A"
    assert meta["source_dtype"] == "uint16" and meta["source_format"] == ("hdf5" if fmt == "h5" else "tiff")
    assert meta["source_path"] == str(src) and meta["labels_path"].endswith("s1.labels.tif")
    import hashlib

    assert meta["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()


@pytest.mark.parametrize("kwargs", [{"imagej": True}, {"compression": "zlib"}, {"ome": True}])
def test_tiff_flavours_read_back(incoming, kwargs):
    vol = make_volume(seed=3)
    write_tiff(incoming / "s2.tif", vol, **kwargs)
    volume, _, _ = load_scan("s2", incoming)
    np.testing.assert_array_equal(volume, vol.astype(np.float32))


def test_float_and_int8_dtypes_keep_values(incoming):
    vol = (make_volume(seed=1).astype(np.float32) - 2000) / 1000  # negative phase values
    write_scan(incoming, "f", vol)
    volume, meta, _ = load_scan("f", incoming)
    np.testing.assert_array_equal(volume, vol)
    assert meta["source_dtype"] == "float32"


@pytest.mark.parametrize("axis, expected", [("y", (20, 6, 24)), ("x", (24, 6, 20))])
def test_thickness_axis_moves_to_z_for_volume_and_labels(incoming, axis, expected):
    vol, labels = make_volume(), make_labels()
    write_scan(incoming, "t", vol, sidecar={**SIDECAR, "thickness_axis": axis}, labels=labels)
    volume, meta, _ = load_scan("t", incoming)
    assert volume.shape == expected and meta["shape"] == list(expected) and meta["source_shape"] == list(SHAPE)
    ax = "zyx".index(axis)
    np.testing.assert_array_equal(volume, np.moveaxis(vol, ax, 0).astype(np.float32))
    np.testing.assert_array_equal(load_labels("t", incoming), np.moveaxis(labels, ax, 0))


def test_missing_sidecar_gives_defaults_and_a_warning(incoming):
    write_scan(incoming, "nosc", make_volume())
    volume, meta, warnings = load_scan("nosc", incoming)
    assert meta["voxel_size_um"] == DEFAULT_VOXEL_SIZE_UM == 0.07
    assert meta["cycles"] is None and meta["thickness_axis"] == "z" and meta["sidecar_path"] is None
    assert len(warnings) == 1 and "no sidecar" in warnings[0] and "nosc.json" in warnings[0] and "0.07" in warnings[0]
    assert volume.shape == SHAPE


def test_sidecar_shape_is_checked(incoming):
    write_scan(incoming, "ok", make_volume(), sidecar={**SIDECAR, "shape": list(SHAPE)})
    assert load_scan("ok", incoming)[0].shape == SHAPE
    write_scan(incoming, "bad", make_volume(), sidecar={**SIDECAR, "shape": [6, 24, 20]})
    with pytest.raises(ScanError, match=r"bad\.tif: shape \(6, 20, 24\) does not match \(sidecar bad\.json"):
        load_scan("bad", incoming)


# ----------------------------------------------------------------------------------------------------
# bad inputs: (builder, file that must be named, words of the problem)
# ----------------------------------------------------------------------------------------------------
def _truncated_imagej(d):
    p = write_tiff(d / "x.tif", make_volume((8, 32, 32)), imagej=True)
    return truncate(p, 0.8)


def _truncated_shaped(d):
    return truncate(write_tiff(d / "x.tif", make_volume((8, 32, 32))), 0.9)


def _truncated_compressed(d):
    return truncate(write_tiff(d / "x.tif", make_volume((8, 32, 32)), compression="zlib"), 0.6)


def _truncated_ome(d):
    return truncate(write_tiff(d / "x.tif", make_volume((8, 32, 32)), ome=True), 0.9)


def _truncated_plain_pages(d):
    import tifffile

    p = d / "x.tif"
    with tifffile.TiffWriter(p) as w:  # one page per slice, no stack metadata (as many beamline tools write)
        for plane in make_volume((8, 32, 32)):
            w.write(plane, contiguous=False, metadata=None)
    return truncate(p, 0.9)


def _plain_pages_missing_last_bytes(d):
    import tifffile

    p = d / "x.tif"
    with tifffile.TiffWriter(p) as w:
        for plane in make_volume((8, 32, 32)):
            w.write(plane, contiguous=False, metadata=None)
    p.write_bytes(p.read_bytes()[:-10])
    return p


def _truncated_hdf5(d):
    return truncate(write_h5(d / "x.h5", make_volume((8, 32, 32))), 0.7)


def _fewer_slices_than_sidecar(d):
    # a complete, valid 5-slice file whose sidecar promises 8 slices (e.g. acquisition aborted)
    write_sidecar(d / "x.json", voxel_size_um=0.07, shape=[8, 20, 24])
    return write_tiff(d / "x.tif", make_volume((5, 20, 24)))


def _image_2d(d):
    return write_tiff(d / "x.tif", make_volume((1, 20, 24))[0])


def _single_slice_stack(d):
    return write_h5(d / "x.h5", make_volume((1, 20, 24)))


def _empty_volume(d):
    return write_h5(d / "x.h5", np.zeros((0, 20, 24), np.uint16))


def _constant_volume(d):
    return write_tiff(d / "x.tif", np.full(SHAPE, 7, np.uint16))


def _nan_inf(d):
    vol = make_volume().astype(np.float32)
    vol[0, 0, :3] = np.nan
    vol[1, 1, 1] = np.inf
    return write_tiff(d / "x.tif", vol)


def _labels_other_shape(d):
    write_tiff(d / "x.tif", make_volume())
    return write_tiff(d / "x.labels.tif", make_labels((6, 20, 20)))


def _random_bytes(d):
    p = d / "x.tif"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return p


def _lfs_pointer(d):
    p = d / "x.tif"
    p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    return p


def _hdf5_without_dataset(d):
    return write_h5(d / "x.h5", None)


def _not_hdf5(d):
    p = d / "x.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(300))
    return p


def _bad_sidecar_type(d):
    write_tiff(d / "x.tif", make_volume())
    return write_sidecar(d / "x.json", voxel_size_um=-1, cycles="ten", thickness_axis="w")


def _sidecar_not_json(d):
    write_tiff(d / "x.tif", make_volume())
    p = d / "x.json"
    p.write_text("{voxel_size_um: 0.1")
    return p


def _rgb_image(d):
    return write_tiff(d / "x.tif", np.zeros((20, 24, 3), np.uint8) + np.arange(3, dtype=np.uint8))


BAD_INPUTS = {
    "truncated ImageJ TIFF": (_truncated_imagej, "x.tif", r"truncated TIFF: only \d of 8 slices .*ImageJ metadata says images=8"),
    "truncated shaped TIFF": (_truncated_shaped, "x.tif", r"truncated TIFF: only 7 of 8 slices .*shape=\[8, 32, 32\]"),
    "truncated compressed TIFF": (_truncated_compressed, "x.tif", r"truncated|corrupted|not a readable TIFF"),
    "truncated OME-TIFF": (_truncated_ome, "x.tif", r"truncated"),
    "truncated page-per-page TIFF": (_truncated_plain_pages, "x.tif", r"truncated"),
    "page-per-page TIFF missing its last bytes": (_plain_pages_missing_last_bytes, "x.tif", r"truncated"),
    "truncated HDF5": (_truncated_hdf5, "x.h5", r"truncated"),
    "fewer slices than the sidecar": (_fewer_slices_than_sidecar, "x.tif", r"truncated: 5 of 8 slices \(sidecar x\.json"),
    "2D image": (_image_2d, "x.tif", r"is a 2D image \(shape \(20, 24\)\); expected a 3D stack"),
    "single-slice stack": (_single_slice_stack, "x.h5", r"is a 2D image \(shape \(1, 20, 24\)\)"),
    "empty volume": (_empty_volume, "x.h5", r"volume is empty \(shape \(0, 20, 24\)\)"),
    "constant volume": (_constant_volume, "x.tif", r"volume is constant \(every voxel is 7\)"),
    "NaN and Inf": (_nan_inf, "x.tif", r"non-finite values: 3 NaN and 1 Inf of 2880 voxels"),
    "labels of another shape": (_labels_other_shape, "x.labels.tif",
                                r"labels have shape \(6, 20, 20\) but the volume x\.tif has shape \(6, 20, 24\)"),
    "random bytes named .tif": (_random_bytes, "x.tif", r"not a readable TIFF.*\(TiffFileError: not a TIFF file"),
    "git-lfs pointer named .tif": (_lfs_pointer, "x.tif", r"not a readable TIFF"),
    "HDF5 without /exchange/data": (_hdf5_without_dataset, "x.h5",
                                    r"no dataset /exchange/data \(DXchange convention\); datasets found: /exchange/theta"),
    "HDF5 signature, garbage body": (_not_hdf5, "x.h5", r"not a readable HDF5 file"),
    "invalid sidecar values": (_bad_sidecar_type, "x.json",
                               r"invalid sidecar: voxel_size_um must be a number between 1e-06 and 1e\+06 um, got -1; cycles must be an integer"),
    "sidecar not JSON": (_sidecar_not_json, "x.json", r"sidecar is not valid JSON"),
    "RGB image": (_rgb_image, "x.tif", r"colour/multi-sample image"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_naming_file_and_problem(incoming, case):
    build, bad_name, problem = BAD_INPUTS[case]
    build(incoming)
    before = tree_state(incoming)
    with pytest.raises(ScanError) as info:
        load_scan("x", incoming)
    err = info.value
    assert err.path.name == bad_name, str(err)
    assert str(err).startswith(str(incoming / bad_name) + ": "), str(err)
    assert pytest.importorskip("re").search(problem, err.problem), err.problem
    assert tree_state(incoming) == before, "the drop folder was changed"


def test_scan_error_pickles_with_its_message(tmp_path):
    import pickle

    err = pickle.loads(pickle.dumps(ScanError(tmp_path / "a.tif", "broken")))
    assert err.path == tmp_path / "a.tif" and err.problem == "broken" and str(err) == f"{tmp_path / 'a.tif'}: broken"


def test_invalid_or_missing_or_duplicate_scan(incoming):
    with pytest.raises(ScanError, match="invalid scan id"):
        load_scan("bad id", incoming)
    with pytest.raises(ScanError, match=r"s9: no volume file"):
        load_scan("s9", incoming)
    write_scan(incoming, "d", make_volume())
    write_scan(incoming, "d", make_volume(), fmt="h5")
    with pytest.raises(ScanError, match=r"d\.h5: scan 'd' has several volume files \(d\.h5, d\.tif\)"):
        load_scan("d", incoming)


def test_probe_reads_header_only(incoming):
    write_scan(incoming, "p", make_volume())
    write_scan(incoming, "q", make_volume(), fmt="h5")
    assert probe_volume(incoming / "p.tif") == (SHAPE, np.dtype(np.uint16))
    assert probe_volume(incoming / "q.h5") == (SHAPE, np.dtype(np.uint16))
    with pytest.raises(ScanError, match="truncated TIFF"):
        probe_volume(_truncated_shaped(incoming))


def test_percentiles_and_attrs(incoming):
    vol = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    pct = intensity_percentiles(vol)
    assert list(pct) == ["0.5", "1", "50", "99", "99.5", "99.8"]
    assert pct["50"] == pytest.approx(499.5) and pct["1"] == pytest.approx(9.99)
    write_scan(incoming, "a", make_volume(), sidecar=SIDECAR)
    volume, meta, warnings = load_scan("a", incoming)
    attrs = tomogram_attrs(meta, volume, warnings)
    assert set(attrs) == {"scan_id", "source_path", "source_sha256", "voxel_size_um", "cycles", "sample", "beamline",
                          "thickness_axis", "shape", "dtype", "source_dtype", "percentiles", "warnings"}
    json.dumps(attrs)  # JSON-serialisable for Zarr attrs
