"""Fixtures of the operations tests: tiny scans in a drop folder."""

import json
from pathlib import Path

import numpy as np
import tifffile

TINY_SHAPE = (6, 12, 12)  # (z, y, x) voxels: enough for ingest's checks, fast to read and write


def write_tiny_scan(incoming: Path, scan_id: str, seed: int, *, corrupt: bool = False, cycles: int = 10) -> Path:
    """A small uint16 TIFF stack with its sidecar; ``corrupt`` puts NaNs into a float32 stack instead
    (readable header, invalid content: ingest must reject it when the step runs)."""
    incoming.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if corrupt:
        volume = rng.random(TINY_SHAPE, dtype=np.float32)
        volume[2, 3:6, 3:6] = np.nan
    else:
        volume = rng.integers(1000, 40000, size=TINY_SHAPE, dtype=np.uint16)
    path = incoming / f"{scan_id}.tif"
    tifffile.imwrite(path, volume)
    (incoming / f"{scan_id}.json").write_text(json.dumps({"voxel_size_um": 0.1, "cycles": cycles}))
    return path
