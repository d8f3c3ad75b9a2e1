"""Drop-folder listing, stability over two looks, and the sensor's pure tick plan."""

import json
import os

import pytest

from nmc_assets.ingest import ScanError, find_scans, fingerprint, plan_incoming, read_sidecar, scan_state, stable_scans
from nmc_assets.ingest.dropfolder import MAX_DONE, parse_cursor
from nmc_assets_tests.ingest.scan_fixtures import SIDECAR, make_labels, make_volume, tree_state, write_scan


def test_find_scans_pairs_companions_and_reports_problems(incoming):
    write_scan(incoming, "a", make_volume(), sidecar=SIDECAR, labels=make_labels())
    (incoming / "a.truth.parquet").write_bytes(b"PAR1")
    write_scan(incoming, "b", make_volume(), fmt="h5")
    write_scan(incoming, "dup", make_volume())
    write_scan(incoming, "dup", make_volume(), fmt="h5")
    write_scan(incoming, "bad name", make_volume())
    (incoming / "_x.json").write_text("{}")
    (incoming / "notes.txt").write_text("ignored")
    (incoming / ".c.tif.partial").write_text("hidden: ignored")
    (incoming / "orphan.json").write_text("{}")  # companion without a volume: ignored
    (incoming / "sub.tif").mkdir()  # a folder: ignored

    scans, problems = find_scans(incoming)
    assert [s.scan_id for s in scans] == ["a", "b"]
    a = scans[0]
    assert (a.volume.name, a.sidecar.name, a.labels.name, a.truth.name) == ("a.tif", "a.json", "a.labels.tif", "a.truth.parquet")
    assert scans[1].volume.name == "b.h5" and scans[1].sidecar is None
    by_name = {p.path.name: p.problem for p in problems}
    assert set(by_name) == {"bad name.tif", "_x.json", "dup.h5"}
    assert "invalid scan id 'bad name'" in by_name["bad name.tif"]
    assert "several volume files (dup.h5, dup.tif)" in by_name["dup.h5"]
    assert str(problems[0]).startswith(str(incoming))


def test_find_scans_of_missing_folder_is_empty(tmp_path):
    assert find_scans(tmp_path / "nope") == ([], [])


def test_fingerprint_changes_with_size_or_mtime(incoming):
    write_scan(incoming, "a", make_volume(), sidecar=SIDECAR)
    (scan,), _ = find_scans(incoming)
    first = fingerprint(scan_state(scan))
    assert fingerprint(scan_state(scan)) == first
    st = os.stat(scan.sidecar)
    os.utime(scan.sidecar, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert fingerprint(scan_state(scan)) != first
    assert stable_scans({"a": first, "b": "x"}, {"a": first, "b": "y", "c": "z"}) == {"a"}


def _grow(path, extra: bytes = b"\0" * 64):
    with open(path, "ab") as f:
        f.write(extra)


def test_plan_launches_only_after_two_equal_looks(incoming):
    write_scan(incoming, "a", make_volume(), sidecar=SIDECAR)
    p1 = plan_incoming(incoming, None)
    assert p1.launch == [] and p1.waiting == ["a"] and "waiting" in p1.summary()

    p2 = plan_incoming(incoming, p1.cursor)
    assert [s for s, _ in p2.launch] == ["a"] and p2.waiting == []

    p3 = plan_incoming(incoming, json.loads(json.dumps(p2.cursor)))  # the cursor survives JSON
    assert p3.launch == [] and p3.waiting == [] and p3.summary() == "no new or changed scans"


def test_file_still_being_written_waits_then_changed_file_relaunches(incoming):
    path = write_scan(incoming, "a", make_volume())
    c = plan_incoming(incoming, None).cursor
    _grow(path)  # the beamline is still writing
    p = plan_incoming(incoming, c)
    assert p.launch == [] and p.waiting == ["a"]
    p = plan_incoming(incoming, p.cursor)
    assert len(p.launch) == 1
    fp1 = p.launch[0][1]
    # a re-dropped, changed file is processed again under a new fingerprint
    write_scan(incoming, "a", make_volume(seed=9))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000))
    p = plan_incoming(incoming, p.cursor)
    assert p.launch == [] and p.waiting == ["a"]
    p = plan_incoming(incoming, p.cursor)
    assert len(p.launch) == 1 and p.launch[0][1] != fp1


def test_unreadable_stable_scan_is_rejected_once_others_still_launch(incoming):
    write_scan(incoming, "good", make_volume())
    (incoming / "junk.tif").write_bytes(os.urandom(3000))
    write_scan(incoming, "bad id!", make_volume())
    p = plan_incoming(incoming, plan_incoming(incoming, None).cursor)
    assert [s for s, _ in p.launch] == ["good"]
    assert [(r.scan_id, r.path.name) for r in p.rejected] == [("junk", "junk.tif")]
    assert "not a readable TIFF" in p.rejected[0].problem
    assert [q.path.name for q in p.problems] == ["bad id!.tif"]
    p2 = plan_incoming(incoming, p.cursor)
    assert p2.launch == [] and p2.rejected == [] and p2.new_problems == []  # each reported once
    assert len(p2.problems) == 1  # still listed in the summary


def test_cursor_is_compact_and_bounded(incoming, monkeypatch):
    import nmc_assets.ingest.dropfolder as dropfolder

    monkeypatch.setattr(dropfolder, "MAX_DONE", 3)
    for i in range(5):
        write_scan(incoming, f"s{i}", make_volume(shape=(2, 4, 4), seed=i))
    p = plan_incoming(incoming, plan_incoming(incoming, None).cursor, probe=lambda path: None)
    assert len(p.launch) == 5
    assert list(p.cursor["done"]) == ["s2", "s3", "s4"] and p.cursor["pending"] == {}
    assert len(json.dumps(p.cursor)) < 400
    assert MAX_DONE >= 1000


def test_vanished_scan_leaves_the_pending_set(incoming):
    path = write_scan(incoming, "a", make_volume())
    c = plan_incoming(incoming, None).cursor
    assert "a" in c["pending"]
    path.unlink()
    assert plan_incoming(incoming, c).cursor["pending"] == {}


def test_parse_cursor_tolerates_garbage():
    assert parse_cursor(None)["done"] == {}
    assert parse_cursor("not json")["pending"] == {}
    assert parse_cursor(json.dumps({"v": 0, "done": {"a": "b"}}))["done"] == {}


def test_drop_folder_is_never_changed(incoming):
    write_scan(incoming, "a", make_volume(), sidecar=SIDECAR, labels=make_labels())
    (incoming / "junk.tif").write_bytes(b"junk" * 100)
    before = tree_state(incoming)
    plan_incoming(incoming, plan_incoming(incoming, None).cursor)
    find_scans(incoming)
    read_sidecar(incoming / "a.json")
    assert tree_state(incoming) == before


def test_read_sidecar_validates_types(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"voxel_size_um": 0.08, "cycles": 50, "sample": "A", "beamline": "ID16A",
                             "thickness_axis": "x", "shape": [2, 3, 4], "operator": "me"}))
    meta, warnings = read_sidecar(p)
    assert warnings == []
    assert meta == {"voxel_size_um": 0.08, "cycles": 50, "sample": "A", "beamline": "ID16A", "thickness_axis": "x",
                    "shape": [2, 3, 4], "extra": {"operator": "me"}}
    p.write_text(json.dumps({"cycles": 10}))
    meta, warnings = read_sidecar(p)
    assert meta["voxel_size_um"] == 0.07 and "no voxel_size_um" in warnings[0]
    for bad, words in [({"voxel_size_um": "0.1"}, "voxel_size_um must be a number between"),
                       ({"voxel_size_um": True}, "voxel_size_um"), ({"cycles": 1.5}, "cycles must be an integer"),
                       ({"sample": 3}, "sample must be a string"), ({"shape": [1, 2]}, "shape must be [z, y, x]"),
                       ([1, 2], "sidecar must be a JSON object")]:
        p.write_text(json.dumps(bad))
        with pytest.raises(ScanError) as info:
            read_sidecar(p)
        assert info.value.path == p and words in info.value.problem
