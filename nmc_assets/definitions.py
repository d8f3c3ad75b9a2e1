"""The code location: every Dagster object under ``nmc_assets/defs``.

GPU assets (pool ``gpu``) get their Kubernetes GPU request (``dagster-k8s/config``) added here, so the
``k8s`` execution profile needs no change in the asset modules (see ``nmc_assets/defs/executor.py``).
"""

from pathlib import Path

import dagster as dg

from nmc_assets.defs.executor import with_gpu_k8s_requests


@dg.definitions
def defs() -> dg.Definitions:
    return with_gpu_k8s_requests(dg.load_from_defs_folder(path_within_project=Path(__file__).parent / "defs"))
