"""The one exception of the ingest layer: a scan file that cannot be used, and why."""

from __future__ import annotations

import os
from pathlib import Path


class ScanError(ValueError):
    """A drop-folder file is unreadable or invalid (docs/design.md §3.2).

    ``str(err)`` names the file and the problem, e.g.
    ``"incoming/s1.tif: truncated TIFF: 5 of 8 slices present (ImageJ metadata images=8)"``.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # keep the two-argument constructor picklable (multiprocess executor)
        return (type(self), (self.path, self.problem))
