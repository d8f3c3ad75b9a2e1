"""One bad file never stops the others: the sensor's planning on hostile drop-folder content.

Every case asserts the clear problem, that the good scans beside it are launched, and that no file in
``incoming/`` changed.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from nmc_assets.ingest import ScanError, check_header, plan_incoming
from nmc_assets_tests.ingest.scan_fixtures import make_volume, write_h5, write_scan, write_tiff
from nmc_assets_tests.reliability.conftest import tree_checksums


def _two_looks(incoming):
    """Two sensor ticks (files are launched once stable); returns the second plan."""
    first = plan_incoming(incoming, None)
    return plan_incoming(incoming, first.cursor)


def _damaged_hdf5_variants(tmp_path):
    """Single-byte corruptions of a small DXchange-like file without /exchange/data (so the probe walks it)."""
    clean = tmp_path / "clean.h5"
    with h5py.File(clean, "w") as f:
        f.create_dataset("exchange/theta", data=np.zeros(3))
        f.create_dataset("other/data", data=np.zeros((3, 4, 5)))
    raw = clean.read_bytes()
    for offset in range(0, len(raw), 5):
        damaged = bytearray(raw)
        damaged[offset] ^= 0xFF
        yield offset, bytes(damaged)


def test_damaged_hdf5_headers_are_scan_errors_never_library_errors(tmp_path):
    library_errors = set()
    target = tmp_path / "bad.h5"
    for offset, data in _damaged_hdf5_variants(tmp_path):
        target.write_bytes(data)
        try:  # what h5py itself does with this file
            with h5py.File(target, "r", locking=False) as f:
                if f.get("/exchange/data") is None:
                    f.visititems(lambda name, obj: None)
        except Exception as exc:  # noqa: BLE001
            library_errors.add(type(exc).__name__)
        try:
            check_header(target)
        except ScanError as err:
            assert err.path == target and err.problem
        # anything else escaping check_header fails the test
    assert {"RuntimeError", "KeyError"} <= library_errors  # the probe faced more than OSError


def test_corrupt_hdf5_beside_good_scans_is_reported_and_the_others_launch(incoming, tmp_path):
    write_scan(incoming, "good1", make_volume(), fmt="h5")
    write_scan(incoming, "good2", make_volume(seed=1))
    runtime_error_file = None
    for offset, data in _damaged_hdf5_variants(tmp_path):
        probe = tmp_path / "probe.h5"
        probe.write_bytes(data)
        try:
            with h5py.File(probe, "r", locking=False) as f:
                if f.get("/exchange/data") is None:
                    f.visititems(lambda name, obj: None)
        except RuntimeError:
            runtime_error_file = data  # "Object visitation failed": the case that blocked the sensor
            break
        except Exception:  # noqa: BLE001
            continue
    assert runtime_error_file is not None
    (incoming / "broken.h5").write_bytes(runtime_error_file)
    before = tree_checksums(incoming)
    plan = _two_looks(incoming)
    assert [s for s, _ in plan.launch] == ["good1", "good2"]
    assert [p.scan_id for p in plan.rejected] == ["broken"]
    assert "broken.h5" in str(plan.rejected[0]) and "HDF5" in str(plan.rejected[0])
    third = plan_incoming(incoming, plan.cursor)  # reported once, not on every tick
    assert third.launch == [] and third.rejected == []
    assert tree_checksums(incoming) == before


def test_a_library_error_from_any_probe_rejects_only_that_scan(incoming):
    write_scan(incoming, "a", make_volume())
    write_scan(incoming, "b", make_volume(seed=2))

    def probe(path):
        if path.name == "a.tif":
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
        return check_header(path)

    first = plan_incoming(incoming, None, probe=probe)
    plan = plan_incoming(incoming, first.cursor, probe=probe)
    assert [s for s, _ in plan.launch] == ["b"]
    assert plan.rejected[0].scan_id == "a" and "UnicodeDecodeError" in str(plan.rejected[0])


def test_file_name_that_is_not_utf8_is_reported_and_does_not_block(incoming):
    write_scan(incoming, "good", make_volume())
    bad = os.path.join(os.fsencode(incoming), b"caf\xe9.tif")
    with open(bad, "wb") as f:
        f.write(b"II*\x00 not really a tiff")
    before = tree_checksums(incoming)
    first = plan_incoming(incoming, None)
    plan = plan_incoming(incoming, first.cursor)
    assert [s for s, _ in plan.launch] == ["good"]
    (problem,) = plan.problems
    text = str(problem)
    assert "caf\\xe9.tif" in text and "invalid scan id" in text
    text.encode("utf-8")  # printable, loggable
    assert "caf\\xe9.tif" in plan.summary()
    assert plan_incoming(incoming, plan.cursor).new_problems == []  # reported once
    assert tree_checksums(incoming) == before


@pytest.mark.parametrize("name, array, words", [
    ("flat", np.ones((1, 20, 24), np.uint16), "2D image"),
    ("stack4d", np.ones((2, 3, 20, 24), np.uint16), "4D data"),
    ("mask", np.ones((4, 20, 24), bool), "unsupported dtype bool"),
    ("waves", np.ones((4, 20, 24), np.complex64), "unsupported dtype complex64"),
])
def test_wrong_shapes_and_dtypes_are_caught_by_the_sensor_probe(incoming, name, array, words):
    write_h5(incoming / f"{name}.h5", array)
    write_scan(incoming, "good", make_volume())
    plan = _two_looks(incoming)
    assert [s for s, _ in plan.launch] == ["good"]
    (problem,) = plan.rejected
    assert problem.scan_id == name and words in problem.problem


def test_symbolic_link_to_a_file_outside_is_not_followed(incoming, tmp_path):
    secret = tmp_path / "outside.tif"
    write_tiff(secret, make_volume())
    os.symlink(secret, incoming / "linked.tif")
    write_scan(incoming, "good", make_volume())
    before = tree_checksums(incoming)
    plan = _two_looks(incoming)
    assert [s for s, _ in plan.launch] == ["good"]
    (problem,) = plan.problems
    assert problem.path.name == "linked.tif" and "symbolic link" in problem.problem
    assert "II*" not in str(problem)  # nothing of the target is read or shown
    assert tree_checksums(incoming) == before


def test_scan_loading_refuses_a_symbolic_link(incoming, tmp_path):
    from nmc_assets.ingest import load_scan

    write_tiff(tmp_path / "outside.tif", make_volume())
    os.symlink(tmp_path / "outside.tif", incoming / "linked.tif")
    with pytest.raises(ScanError, match="symbolic link"):
        load_scan("linked", incoming)
