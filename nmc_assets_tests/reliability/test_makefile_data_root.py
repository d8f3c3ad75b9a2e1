"""``make demo`` honours the data root from the environment (``$NMC_DATA_DIR``), and ``DATA=`` over it."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _data_root(env_value: str | None, *make_args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NMC_DATA_DIR"}
    if env_value is not None:
        env["NMC_DATA_DIR"] = env_value
    # -p prints make's variable database without running anything (-n, and a target with no recipe)
    out = subprocess.run(["make", "-pn", "-f", "Makefile", *make_args, ".PHONY"], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True).stdout
    (line,) = [ln for ln in out.splitlines() if ln.startswith("NMC_DATA_DIR :=")]
    return line.split(":=", 1)[1].strip()


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_uses_the_environment_data_root_then_data_then_default(tmp_path):
    assert _data_root(str(tmp_path / "env_root")) == str(tmp_path / "env_root")
    assert _data_root(str(tmp_path / "env_root"), f"DATA={tmp_path / 'arg_root'}") == str(tmp_path / "arg_root")
    assert _data_root(None) == str(REPO / "data")
