"""The image requirement sets (deploy/requirements-{gpu,cpu}.txt): in step with pyproject.toml, the CPU
profile keeps tensorflow-cpu, and the GPU set resolves with pip (dry run against PyPI) to a CUDA-capable
TensorFlow and torch. The resolution needs the network and is skipped without it."""

import json
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _requirements(path: Path) -> dict[str, Requirement]:
    lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    reqs = [Requirement(ln) for ln in lines if ln]
    return {r.name.lower(): r for r in reqs}


def _pyproject() -> dict[str, Requirement]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return {r.name.lower(): r for r in map(Requirement, deps)}


def test_cpu_set_is_the_project_dependencies_with_tensorflow_cpu():
    project, cpu = _pyproject(), _requirements(DEPLOY / "requirements-cpu.txt")
    assert {k: str(v) for k, v in cpu.items()} == {k: str(v) for k, v in project.items()}
    assert str(cpu["tensorflow-cpu"].specifier) == "==2.21.0" and "tensorflow" not in cpu


def test_gpu_set_swaps_only_tensorflow():
    project, gpu = _pyproject(), _requirements(DEPLOY / "requirements-gpu.txt")
    assert "tensorflow-cpu" not in gpu
    tf = gpu["tensorflow"]
    assert tf.extras == {"and-cuda"} and tf.specifier == project["tensorflow-cpu"].specifier
    same = {k: str(v) for k, v in project.items() if k != "tensorflow-cpu"}
    assert {k: str(v) for k, v in gpu.items() if k != "tensorflow"} == same
    assert str(gpu["torch"].specifier) == "==2.13.0"


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.network
def test_gpu_set_resolves_to_cuda_tensorflow_and_torch(tmp_path):
    if not _pypi_reachable():
        pytest.skip("needs PyPI (network)")
    report = tmp_path / "report.json"
    # --isolated: PyPI as a fresh image build sees it, not this machine's pip configuration or local wheels
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed", "--quiet",
                          "--only-binary=:all:", "--report", str(report), "-r", str(DEPLOY / "requirements-gpu.txt")],
                         capture_output=True, text=True, timeout=900, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    installed = {i["metadata"]["name"].lower(): i["metadata"] for i in json.loads(report.read_text())["install"]}
    assert installed["tensorflow"]["version"] == "2.21.0" and "tensorflow-cpu" not in installed
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"} <= set(installed)  # TF's CUDA libraries
    torch = installed["torch"]
    assert torch["version"] == "2.13.0"  # not a +cpu local build
    cuda_deps = [d for d in torch.get("requires_dist", []) if d.startswith("nvidia-cudnn")]
    assert cuda_deps and any(Requirement(d).name.lower() in installed for d in cuda_deps)
    assert installed["ome-zarr-models"]["version"] == "1.6" and installed["dagster"]["version"] == "1.13.27"
