"""What the benchmarks share: the repository root, the machine line of a results file, the load.

Benchmarks run as ``.venv/bin/python benchmarks/bench_<name>.py`` and import the installed package
(``pip install -e .``) and this module (the script's own folder is on ``sys.path``); no benchmark imports
another. The grain-model references of the synthesis benchmarks live in :mod:`_synthesis_common`.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def load_average() -> str:
    """The 1/5/15-minute load averages ("?" where the OS has none)."""
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def machine_line() -> str:
    """Date, CPU count, memory, GPU and load: the line every results file starts with."""
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem = float("nan")
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        gpu = "no GPU"
    return (f"Date {time.strftime('%Y-%m-%d')}; machine: {os.cpu_count()}-core {platform.machine()}, "
            f"{mem:.0f} GiB, {gpu}; Python {platform.python_version()}; load average {load_average()}.")


def table_header(*columns: str) -> list[str]:
    """The header and separator lines of a Markdown table with ``columns``."""
    return ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
