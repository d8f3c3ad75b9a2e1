"""Execution profiles of the code location (docs/design.md §5).

The executor is configuration, not code: the environment variable ``NMC_EXECUTOR`` picks it when the
code location loads.

``multiprocess`` (default)
    Every step in its own process on this machine (GPU memory is freed when the step ends), forked from
    a ``forkserver`` that has imported Dagster and this code location once, so a step does not pay
    those imports again (``benchmarks/results/operations.md``). The server never imports torch or
    TensorFlow (a test checks that loading the definitions does not), so forked steps are CUDA-safe.
    Steps in the ``gpu`` pool run one at a time through the instance's pool limit
    (``deploy/local/dagster.yaml``). ``NMC_MAX_CONCURRENT`` caps parallel steps per run (default: the
    number of CPUs).
``spawn``
    Dagster's own multiprocess executor (every step a freshly spawned interpreter), configurable per
    run in the launchpad.
``in_process``
    All steps in the run worker process (debugging).
``k8s``
    ``dagster_k8s.k8s_job_executor``: every step becomes a Kubernetes Job. Steps of assets in the
    ``gpu`` pool request ``nvidia.com/gpu: 1`` through their ``dagster-k8s/config`` op tag (added by
    :func:`with_gpu_k8s_requests`). Default executor config (namespace, image pull policy, env,
    volumes, per-step CPU/memory) is read from the YAML file named by ``NMC_K8S_EXECUTOR_CONFIG``
    (for example ``deploy/k8s/executor.yaml``); anything there can still be overridden per run in the
    launchpad under ``execution: config:``.

Nothing here imports dagster_k8s or kubernetes unless the ``k8s`` profile is selected, and nothing
talks to a cluster before a step is launched, so the definitions load (and are tested) without one.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

EXECUTOR_ENV = "NMC_EXECUTOR"
K8S_EXECUTOR_CONFIG_ENV = "NMC_K8S_EXECUTOR_CONFIG"
PROFILES = ("multiprocess", "spawn", "in_process", "k8s")
MAX_CONCURRENT_ENV = "NMC_MAX_CONCURRENT"
#: Imported once by the forkserver of the ``multiprocess`` profile (light: no ML framework at load).
PRELOAD_MODULES = ["nmc_assets.definitions"]
DEFAULT_PROFILE = "multiprocess"

#: Name of the concurrency pool of GPU assets (docs/design.md §5).
GPU_POOL = "gpu"
#: The op tag read by dagster-k8s for per-step pod configuration.
K8S_CONFIG_TAG = "dagster-k8s/config"

#: What a GPU step asks Kubernetes for: one NVIDIA GPU (device plugin resource), and a toleration for
#: the usual ``nvidia.com/gpu`` taint of GPU node pools. Node selectors differ per cluster; set them
#: in ``step_k8s_config``/``per_step_k8s_config`` of the executor config file, not here.
GPU_K8S_CONFIG: dict[str, Any] = {
    "container_config": {"resources": {"limits": {"nvidia.com/gpu": 1}}},
    "pod_spec_config": {
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


def executor_profile(environ: Mapping[str, str] | None = None) -> str:
    """The selected profile: ``$NMC_EXECUTOR`` (case-insensitive) or ``multiprocess``."""
    environ = os.environ if environ is None else environ
    value = (environ.get(EXECUTOR_ENV) or DEFAULT_PROFILE).strip().lower().replace("-", "_")
    if value not in PROFILES:
        raise ValueError(f"{EXECUTOR_ENV}={value!r} is not one of {', '.join(PROFILES)}")
    return value


def load_k8s_executor_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The default k8s_job_executor config from the YAML file named by ``$NMC_K8S_EXECUTOR_CONFIG``.

    Returns ``{}`` when the variable is unset. A missing or malformed file raises an error naming it.
    """
    environ = os.environ if environ is None else environ
    path_text = environ.get(K8S_EXECUTOR_CONFIG_ENV)
    if not path_text:
        return {}
    import yaml

    path = Path(path_text)
    if not path.is_file():
        raise FileNotFoundError(f"{K8S_EXECUTOR_CONFIG_ENV}={path_text}: no such file")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a mapping of k8s_job_executor config, got {type(config).__name__}")
    return config


def select_executor(environ: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """The executor definition of the selected profile (see the module docstring)."""
    profile = executor_profile(environ)
    if profile == "in_process":
        return dg.in_process_executor
    if profile == "k8s":
        from dagster_k8s import k8s_job_executor

        config = load_k8s_executor_config(environ)
        return k8s_job_executor.configured(config, name="k8s") if config else k8s_job_executor
    if profile == "spawn":
        return dg.multiprocess_executor
    return dg.multiprocess_executor.configured(multiprocess_config(environ), name="multiprocess")


def multiprocess_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Config of the default ``multiprocess`` profile: forkserver with the code location preloaded."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {"start_method": {"forkserver": {"preload_modules": list(PRELOAD_MODULES)}}}
    limit = (environ.get(MAX_CONCURRENT_ENV) or "").strip()
    if limit:
        if not limit.isdigit() or int(limit) < 1:
            raise ValueError(f"{MAX_CONCURRENT_ENV}={limit!r} must be a positive integer")
        config["max_concurrent"] = int(limit)
    return config


@dg.definitions
def executor() -> dg.Definitions:
    """Binds the executor of the selected profile to the code location (so automation, schedule and
    backfill runs use it too, not only jobs that name one)."""
    return dg.Definitions(executor=select_executor())


# --------------------------------------------------------------------------------------------------
# GPU requests for Kubernetes step pods
# --------------------------------------------------------------------------------------------------


def _deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in; nested mappings are merged, lists concatenated without duplicates,
    scalars in ``base`` win (an author's explicit setting is kept)."""
    out = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if key not in out:
            out[key] = copy.deepcopy(value)
        elif isinstance(out[key], Mapping) and isinstance(value, Mapping):
            out[key] = _deep_merge(out[key], value)
        elif isinstance(out[key], list) and isinstance(value, list):
            out[key] = out[key] + [v for v in value if v not in out[key]]
    return out


def gpu_op_tags(extra_tags: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Op tags for a GPU asset: ``@dg.asset(pool="gpu", op_tags=gpu_op_tags())``.

    Optional: :func:`with_gpu_k8s_requests` adds the same tag to every ``gpu``-pool asset of the code
    location, so authors need not call this.
    """
    tags = dict(extra_tags or {})
    existing = tags.get(K8S_CONFIG_TAG) or {}
    if isinstance(existing, str):
        existing = json.loads(existing)
    tags[K8S_CONFIG_TAG] = _deep_merge(existing, GPU_K8S_CONFIG)
    return tags


def k8s_config_of_op_tags(tags: Mapping[str, Any]) -> dict[str, Any]:
    """The ``dagster-k8s/config`` op tag as a dict (``{}`` when absent); op tags may hold it as JSON."""
    value = tags.get(K8S_CONFIG_TAG)
    if value is None:
        return {}
    return json.loads(value) if isinstance(value, str) else dict(value)


def is_gpu_asset(assets_def: dg.AssetsDefinition) -> bool:
    """True when the asset's op is in the ``gpu`` pool."""
    node = assets_def.node_def
    return isinstance(node, dg.OpDefinition) and node.pool == GPU_POOL


def requests_gpu(tags: Mapping[str, Any]) -> bool:
    """True when op tags make dagster-k8s request exactly one ``nvidia.com/gpu`` for the step pod."""
    limits = k8s_config_of_op_tags(tags).get("container_config", {}).get("resources", {}).get("limits", {})
    return str(limits.get("nvidia.com/gpu")) == "1"


def _with_op_tags(assets_def: dg.AssetsDefinition, tags: Mapping[str, Any]) -> dg.AssetsDefinition:
    """A copy of ``assets_def`` whose op carries ``tags`` (everything else unchanged).

    Dagster 1.13 has no public call to change the op tags of a built asset (``map_asset_specs`` maps the
    asset specs, and op tags are not part of a spec), so the op is rebuilt with the public
    ``OpDefinition`` constructor and the asset definition re-created from its own attribute dict.
    ``nmc_assets_tests/ops/test_executor.py`` materializes a rebuilt asset to guard this.
    """
    op = assets_def.node_def
    new_op = dg.OpDefinition(
        compute_fn=op.compute_fn,
        name=op.name,
        ins={d.name: dg.In.from_definition(d) for d in op.input_defs},
        outs={d.name: dg.Out.from_definition(d) for d in op.output_defs},
        description=op.description,
        config_schema=op.config_schema,
        required_resource_keys=op.required_resource_keys,
        tags=dict(tags),
        retry_policy=op.retry_policy,
        code_version=op._version,  # what OpDefinition.with_replaced_properties passes on, too
        pool=op.pool,
    )
    attributes = assets_def.get_attributes_dict()
    attributes["node_def"] = new_op
    return dg.AssetsDefinition.dagster_internal_init(**attributes)


def with_gpu_k8s_requests(defs: dg.Definitions) -> dg.Definitions:
    """``defs`` with the GPU request tag (:data:`GPU_K8S_CONFIG`) on every ``gpu``-pool asset's op.

    Tags an author set are kept (merged). Applied in every profile: the tag is ignored by the local
    executors and visible in the UI as an op tag.
    """
    from dagster_shared.record import replace

    assets = []
    for item in defs.assets or []:
        if isinstance(item, dg.AssetsDefinition) and is_gpu_asset(item) and not requests_gpu(item.node_def.tags):
            item = _with_op_tags(item, gpu_op_tags(item.node_def.tags))
        assets.append(item)
    return replace(defs, assets=assets)


def gpu_assets_missing_request(defs: dg.Definitions) -> list[str]:
    """Keys of ``gpu``-pool assets whose step pod would *not* request ``nvidia.com/gpu: 1`` under the
    k8s profile, judged by dagster-k8s's own parser of the op tags (empty list = all good)."""
    from dagster_k8s.job import get_user_defined_k8s_config

    missing = []
    for assets_def in defs.resolve_asset_graph().assets_defs:
        if not is_gpu_asset(assets_def):
            continue
        tags = {k: v if isinstance(v, str) else json.dumps(v) for k, v in assets_def.node_def.tags.items()}
        limits = (get_user_defined_k8s_config(tags).container_config.get("resources") or {}).get("limits") or {}
        if str(limits.get("nvidia.com/gpu")) != "1":
            missing.extend(key.to_user_string() for key in assets_def.keys)
    return sorted(missing)
