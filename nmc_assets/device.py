"""Where torch runs: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` (docs/design.md §5).

TensorFlow (StarDist) finds GPUs by itself; this only concerns torch.
"""

from __future__ import annotations

import re

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def validate_device_spec(spec: str) -> str:
    spec = (spec or "auto").strip().lower()
    if not _DEVICE_PATTERN.match(spec):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    return spec


def resolve_torch_device(spec: str = "auto"):
    """Turn a device spec into a ``torch.device``.

    ``auto`` picks ``cuda`` when available, else ``cpu``. An explicit ``cuda`` request on a machine
    without CUDA raises ``RuntimeError`` rather than silently running on the CPU.
    """
    import torch

    spec = validate_device_spec(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {spec!r} requested but torch sees no CUDA device")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise RuntimeError(f"device {spec!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device(spec)
