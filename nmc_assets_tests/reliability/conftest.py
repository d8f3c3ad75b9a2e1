"""Helpers for the fault and hostile-input suite: drop folders, checksums of what the user owns."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest


def tree_checksums(folder: Path) -> dict[bytes, str]:
    """``{file name as bytes: sha256}`` of every entry of ``folder`` (links by their target text)."""
    out = {}
    for entry in os.scandir(os.fsencode(folder)):
        if entry.is_symlink():
            out[entry.name] = "link:" + os.fsdecode(os.readlink(entry.path))
        elif entry.is_file():
            with open(entry.path, "rb") as f:
                out[entry.name] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture()
def incoming(tmp_path) -> Path:
    path = tmp_path / "data" / "incoming"
    path.mkdir(parents=True)
    return path
