"""Scanning the drop folder ``incoming/``: which scans are there, which are complete, what is new.

Everything here is pure data over directory listings and ``os.stat`` results, so a sensor can keep
the state between looks in its cursor (a JSON dict, see :func:`plan_incoming`). Nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmc_assets.ingest.errors import ScanError
from nmc_assets.paths import VOLUME_SUFFIXES, is_valid_scan_id, split_incoming_name

#: Role of each drop-folder suffix (lower case) in a scan.
_ROLE_BY_SUFFIX = {
    ".tif": "volume", ".tiff": "volume", ".h5": "volume",
    ".json": "sidecar", ".labels.tif": "labels", ".labels.tiff": "labels", ".truth.parquet": "truth",
}
#: How many processed scans the cursor remembers (older ones are still protected by run keys).
MAX_DONE = 5000
MAX_REPORTED = 500
CURSOR_VERSION = 1


@dataclass(frozen=True)
class ScanFiles:
    """The files of one scan in the drop folder (companions are None when absent)."""

    scan_id: str
    volume: Path
    sidecar: Path | None = None
    labels: Path | None = None
    truth: Path | None = None

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.volume, self.sidecar, self.labels, self.truth) if p is not None]


@dataclass(frozen=True)
class IncomingProblem:
    """A drop-folder file that is skipped, and why (``str()`` names the file and the problem)."""

    path: Path
    problem: str
    scan_id: str | None = None

    def __str__(self) -> str:
        return printable(f"{self.path}: {self.problem}")


def printable(text: str) -> str:
    """``text`` with undecodable file-name bytes shown as ``\\xNN`` (safe to log, encode and store)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def find_scans(incoming_dir: str | os.PathLike) -> tuple[list[ScanFiles], list[IncomingProblem]]:
    """List the scans of a drop folder: volume files (``.tif/.tiff/.h5``) with their companions.

    Returns ``(scans sorted by scan_id, problems)``. Problems (never raised): a recognised file whose
    name is not a valid scan id, and a scan with several volume (or labels) files, e.g. ``a.tif`` and
    ``a.h5`` (the scan is then left out), and a symbolic link (never followed: the drop folder's files
    are what gets ingested). Hidden files (``.name``), folders, other suffixes and companions without a
    volume are ignored. A missing folder gives no scans.
    """
    incoming_dir = Path(incoming_dir)
    if not incoming_dir.is_dir():
        return [], []
    by_scan: dict[str, dict[str, list[Path]]] = {}
    problems: list[IncomingProblem] = []
    for entry in sorted(os.scandir(incoming_dir), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        split = split_incoming_name(entry.name)
        if split is None:
            continue
        scan_id, suffix = split
        path = incoming_dir / entry.name
        if entry.is_symlink():
            problems.append(IncomingProblem(path, "is a symbolic link; links are not followed, copy the file "
                                                  "into the drop folder instead; skipped",
                                            scan_id if is_valid_scan_id(scan_id) else None))
            continue
        if not entry.is_file():
            continue
        if not is_valid_scan_id(scan_id):
            problems.append(IncomingProblem(path, f"invalid scan id {scan_id!r}: use 1-64 letters, digits, "
                                                  "'.', '_', '-', starting with a letter or digit; skipped"))
            continue
        by_scan.setdefault(scan_id, {}).setdefault(_ROLE_BY_SUFFIX[suffix.lower()], []).append(path)

    scans: list[ScanFiles] = []
    for scan_id in sorted(by_scan):
        roles = by_scan[scan_id]
        if "volume" not in roles:
            continue
        duplicated = [(role, paths) for role, paths in roles.items() if len(paths) > 1]
        if duplicated:
            for role, paths in duplicated:
                names = ", ".join(p.name for p in paths)
                problems.append(IncomingProblem(paths[0], f"scan {scan_id!r} has several {role} files ({names}); "
                                                          "keep exactly one; skipped", scan_id))
            continue
        first = {role: paths[0] for role, paths in roles.items()}
        scans.append(ScanFiles(scan_id, first["volume"], first.get("sidecar"), first.get("labels"), first.get("truth")))
    return scans, problems


# --------------------------------------------------------------------------------------------------
# stability: same size and mtime on two looks
# --------------------------------------------------------------------------------------------------
def file_state(path: str | os.PathLike) -> list[int]:
    """``[size_bytes, mtime_ns]`` of a file (what "stopped changing" is judged on)."""
    st = os.stat(path)
    return [int(st.st_size), int(st.st_mtime_ns)]


def scan_state(scan: ScanFiles) -> dict[str, list[int]]:
    """``{file name: [size, mtime_ns]}`` over the volume and its companions."""
    return {p.name: file_state(p) for p in scan.paths}


def fingerprint(state: Mapping[str, list[int]]) -> str:
    """A short stable hash of a scan's file states; changes when any file's size or mtime changes."""
    blob = json.dumps(sorted((k, list(v)) for k, v in state.items()), separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stable_scans(previous: Mapping[str, str], current: Mapping[str, str]) -> set[str]:
    """Scan ids whose fingerprint is the same in both looks (``{scan_id: fingerprint}`` each)."""
    return {s for s, fp in current.items() if previous.get(s) == fp}


# --------------------------------------------------------------------------------------------------
# one sensor tick as pure data
# --------------------------------------------------------------------------------------------------
@dataclass
class IncomingPlan:
    """What one look at the drop folder decided; ``cursor`` is the state for the next look."""

    launch: list[tuple[str, str]] = field(default_factory=list)  # (scan_id, fingerprint), stable and new
    waiting: list[str] = field(default_factory=list)  # seen for the first time or still changing
    rejected: list[IncomingProblem] = field(default_factory=list)  # stable but header unreadable (new)
    problems: list[IncomingProblem] = field(default_factory=list)  # every current naming problem
    new_problems: list[IncomingProblem] = field(default_factory=list)  # problems not reported before
    cursor: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        parts = []
        if self.launch:
            parts.append(f"{len(self.launch)} scan(s) to process")
        if self.waiting:
            parts.append(f"{len(self.waiting)} scan(s) waiting until their files stop changing: "
                         + ", ".join(self.waiting[:10]))
        if self.rejected:
            parts.append(f"{len(self.rejected)} unreadable: " + "; ".join(map(str, self.rejected[:5])))
        if self.problems:
            parts.append(f"{len(self.problems)} file(s) skipped: " + "; ".join(map(str, self.problems[:5])))
        return "; ".join(parts) or "no new or changed scans"


def empty_cursor() -> dict[str, Any]:
    return {"v": CURSOR_VERSION, "pending": {}, "done": {}, "rejected": {}, "reported": []}


def parse_cursor(text: str | None) -> dict[str, Any]:
    """The cursor dict from its JSON text; an empty, foreign or older cursor gives a fresh one."""
    try:
        cursor = json.loads(text) if text else None
    except json.JSONDecodeError:
        cursor = None
    if not isinstance(cursor, dict) or cursor.get("v") != CURSOR_VERSION:
        return empty_cursor()
    return {**empty_cursor(), **cursor}


def _problem_key(problem: IncomingProblem) -> str:
    return hashlib.sha256(str(problem).encode("utf-8")).hexdigest()[:12]


def _bounded(d: dict[str, str], limit: int) -> dict[str, str]:
    return dict(list(d.items())[-limit:]) if len(d) > limit else d


def plan_incoming(
    incoming_dir: str | os.PathLike,
    cursor: Mapping[str, Any] | None,
    probe: Callable[[Path], Any] | None = None,
) -> IncomingPlan:
    """Decide one look at the drop folder.

    A scan is launched when its fingerprint (sizes and mtimes of all its files) equals the one seen
    on the previous look (``cursor["pending"]``) and differs from the last launched one
    (``cursor["done"]``). Before launching, ``probe(volume_path)`` (default: read the header with
    :func:`~nmc_assets.ingest.formats.check_header`) must not raise; any exception (a
    :class:`ScanError`, or whatever a library raised on a damaged file) rejects that scan alone, with
    the problem reported, until its files change: one bad file never stops the others. The cursor keeps only pending fingerprints of scans still
    present, at most :data:`MAX_DONE` launched ones and the names of problems already reported.
    """
    if probe is None:
        from nmc_assets.ingest.formats import check_header as probe
    old = parse_cursor(json.dumps(cursor)) if cursor is not None else empty_cursor()
    scans, problems = find_scans(incoming_dir)
    plan = IncomingPlan(problems=problems)
    done, rejected = dict(old["done"]), dict(old["rejected"])
    pending: dict[str, str] = {}
    for scan in scans:
        try:
            fp = fingerprint(scan_state(scan))
        except OSError:  # vanished (or became unreadable) between listing and stat
            continue
        if done.get(scan.scan_id) == fp or rejected.get(scan.scan_id) == fp:
            continue
        if old["pending"].get(scan.scan_id) != fp:
            pending[scan.scan_id] = fp
            plan.waiting.append(scan.scan_id)
            continue
        try:
            probe(scan.volume)
        except ScanError as err:
            rejected[scan.scan_id] = fp
            plan.rejected.append(IncomingProblem(err.path, err.problem, scan.scan_id))
            continue
        except Exception as exc:  # noqa: BLE001 - a library's own error on a damaged file
            rejected[scan.scan_id] = fp
            plan.rejected.append(IncomingProblem(scan.volume, f"unreadable ({type(exc).__name__}: {exc})",
                                                 scan.scan_id))
            continue
        done.pop(scan.scan_id, None)
        done[scan.scan_id] = fp  # re-insert: most recent last
        rejected.pop(scan.scan_id, None)
        plan.launch.append((scan.scan_id, fp))

    reported = set(old["reported"])
    plan.new_problems = [p for p in problems if _problem_key(p) not in reported]
    plan.cursor = {
        "v": CURSOR_VERSION,
        "pending": pending,
        "done": _bounded(done, MAX_DONE),
        "rejected": _bounded(rejected, MAX_REPORTED),
        "reported": sorted({_problem_key(p) for p in problems})[:MAX_REPORTED],
    }
    return plan


__all__ = [
    "IncomingPlan", "IncomingProblem", "ScanFiles", "VOLUME_SUFFIXES", "empty_cursor", "file_state",
    "find_scans", "fingerprint", "parse_cursor", "plan_incoming", "scan_state", "stable_scans",
]
