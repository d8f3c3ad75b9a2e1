"""Execution profiles: NMC_EXECUTOR selects the executor; GPU assets request a GPU under Kubernetes."""


import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from nmc_assets.defs import executor as ex
from nmc_assets.defs.resources import BlocksResource, DataRootResource

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "deploy" / "k8s"

DESIGN_GPU_ASSETS = ("stardist_model", "view_probabilities", "grain_model")

scan = dg.DynamicPartitionsDefinition(name="scan")


class ScaleConfig(dg.Config):
    factor: float = 2.0


@dg.asset(
    partitions_def=scan,
    pool="gpu",
    code_version="t1",
    group_name="segmentation",
    retry_policy=dg.RetryPolicy(max_retries=1),
    check_specs=[dg.AssetCheckSpec("written", asset="gpu_probe")],
)
def gpu_probe(context: dg.AssetExecutionContext, config: ScaleConfig, data_root: DataRootResource):
    """A GPU-pool asset written through the data root."""
    out = data_root.layout.warehouse / f"{context.partition_key}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(str(config.factor))
    return dg.MaterializeResult(
        metadata={"factor": config.factor}, check_results=[dg.AssetCheckResult(passed=out.exists())]
    )


@dg.asset(partitions_def=scan, deps=[gpu_probe], group_name="features", code_version="t1")
def cpu_probe() -> None:
    """A CPU asset downstream of the GPU one."""


# ------------------------------------------------------------------------------------------------
# profile selection


def test_profile_defaults_to_multiprocess_and_rejects_unknown_values():
    assert ex.executor_profile({}) == "multiprocess"
    assert ex.executor_profile({"NMC_EXECUTOR": " K8S "}) == "k8s"
    assert ex.executor_profile({"NMC_EXECUTOR": "in-process"}) == "in_process"
    with pytest.raises(ValueError, match="NMC_EXECUTOR='celery'"):
        ex.executor_profile({"NMC_EXECUTOR": "celery"})
    assert ex.select_executor({}).name == "multiprocess"
    assert ex.select_executor({"NMC_EXECUTOR": "spawn"}) is dg.multiprocess_executor
    assert ex.select_executor({"NMC_EXECUTOR": "in_process"}).name == "in_process"
    assert ex.select_executor({"NMC_EXECUTOR": "k8s"}).name == "k8s"


def test_default_profile_forks_steps_from_a_server_with_the_code_location_preloaded():
    config = ex.multiprocess_config({"NMC_MAX_CONCURRENT": "2"})
    assert config == {"start_method": {"forkserver": {"preload_modules": ["nmc_assets.definitions"]}},
                      "max_concurrent": 2}
    from dagster._config import validate_config

    assert validate_config(dg.multiprocess_executor.config_schema.config_type, config).success
    with pytest.raises(ValueError, match="NMC_MAX_CONCURRENT"):
        ex.multiprocess_config({"NMC_MAX_CONCURRENT": "0"})


def test_k8s_executor_config_file_is_valid_and_errors_name_the_file(tmp_path):
    env = {"NMC_EXECUTOR": "k8s", "NMC_K8S_EXECUTOR_CONFIG": str(K8S_DIR / "executor.yaml")}
    config = ex.load_k8s_executor_config(env)
    assert config["volume_mounts"][0]["mountPath"] == "/data"
    executor_def = ex.select_executor(env)
    assert executor_def.name == "k8s"
    # the shipped file validates against dagster-k8s's own executor schema
    from dagster._config import validate_config
    from dagster_k8s import k8s_job_executor

    assert validate_config(k8s_job_executor.config_schema.config_type, config).success
    bad = validate_config(k8s_job_executor.config_schema.config_type, {**config, "gpu_count": 1})
    assert not bad.success

    missing = {"NMC_K8S_EXECUTOR_CONFIG": str(tmp_path / "nope.yaml")}
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        ex.load_k8s_executor_config(missing)
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="list.yaml"):
        ex.load_k8s_executor_config({"NMC_K8S_EXECUTOR_CONFIG": str(tmp_path / "list.yaml")})


# ------------------------------------------------------------------------------------------------
# GPU request tags


def test_gpu_request_is_added_to_gpu_pool_assets_only_and_keeps_author_tags():
    tagged_before = dg.Definitions(assets=[gpu_probe, cpu_probe], resources={"data_root": DataRootResource()})
    assert ex.gpu_assets_missing_request(tagged_before) == ["gpu_probe"]  # the check can fail

    defs = ex.with_gpu_k8s_requests(tagged_before)
    assert ex.gpu_assets_missing_request(defs) == []
    by_key = {a.key.to_user_string(): a for a in defs.assets}
    gpu_cfg = ex.k8s_config_of_op_tags(by_key["gpu_probe"].node_def.tags)
    assert gpu_cfg["container_config"]["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert gpu_cfg["pod_spec_config"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert ex.K8S_CONFIG_TAG not in by_key["cpu_probe"].node_def.tags
    # everything else about the rebuilt asset is unchanged
    rebuilt = by_key["gpu_probe"]
    assert rebuilt.node_def.pool == "gpu" and rebuilt.node_def.retry_policy.max_retries == 1
    assert rebuilt.code_versions_by_key[gpu_probe.key] == "t1" and rebuilt.check_keys == gpu_probe.check_keys

    # an author's own k8s config is merged, not replaced
    tags = ex.gpu_op_tags({ex.K8S_CONFIG_TAG: {"container_config": {"resources": {"requests": {"cpu": "4"}}}}})
    merged = tags[ex.K8S_CONFIG_TAG]["container_config"]["resources"]
    assert merged == {"requests": {"cpu": "4"}, "limits": {"nvidia.com/gpu": 1}}


def test_rebuilt_gpu_asset_still_materializes_with_config_resources_and_checks(tmp_path):
    defs = ex.with_gpu_k8s_requests(dg.Definitions(assets=[gpu_probe, cpu_probe]))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("scan", ["s1"])
    result = dg.materialize(
        defs.assets,
        partition_key="s1",
        instance=instance,
        resources={"data_root": DataRootResource(data_dir=str(tmp_path)), "blocks": BlocksResource(workers=2)},
        run_config={"ops": {"gpu_probe": {"config": {"factor": 3.5}}}},
    )
    assert result.success
    assert (tmp_path / "warehouse" / "s1.txt").read_text() == "3.5"
    assert [e.passed for e in result.get_asset_check_evaluations()] == [True]
    mats = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert mats == {"gpu_probe", "cpu_probe"}


# ------------------------------------------------------------------------------------------------
# the real code location under the k8s profile


def test_code_location_loads_under_k8s_profile_and_every_gpu_asset_requests_a_gpu(monkeypatch):
    monkeypatch.setenv("NMC_EXECUTOR", "k8s")
    monkeypatch.setenv("NMC_K8S_EXECUTOR_CONFIG", str(K8S_DIR / "executor.yaml"))
    from nmc_assets.definitions import defs as load_defs

    defs = load_defs()
    dg.Definitions.validate_loadable(defs)
    assert defs.executor.name == "k8s"
    if defs.has_implicit_global_asset_job_def():  # what the UI's "Materialize" runs
        assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "k8s"
    graph = defs.resolve_asset_graph()
    gpu_assets = [a for a in graph.assets_defs if ex.is_gpu_asset(a)]
    # the GPU assets of docs/design.md §2 are in the gpu pool (those that exist in the graph)
    for name in DESIGN_GPU_ASSETS:
        key = dg.AssetKey(name)
        if graph.has(key):
            assert ex.is_gpu_asset(graph.get(key).assets_def), f"{name} is not in the gpu pool"
    # every asset in the gpu pool carries the request (dagster-k8s's own parser of the op tags)
    assert ex.gpu_assets_missing_request(defs) == []
    for assets_def in gpu_assets:
        tags = {k: v if isinstance(v, str) else json.dumps(v) for k, v in assets_def.node_def.tags.items()}
        from dagster_k8s.job import get_user_defined_k8s_config

        assert get_user_defined_k8s_config(tags).container_config["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_code_location_default_profile_is_multiprocess(monkeypatch):
    monkeypatch.delenv("NMC_EXECUTOR", raising=False)
    from nmc_assets.definitions import defs as load_defs

    assert load_defs().executor.name == "multiprocess"


def test_helm_values_use_k8s_run_launcher_and_the_k8s_profile():
    values = yaml.safe_load((K8S_DIR / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["NMC_EXECUTOR"] == "k8s" and env["NMC_DATA_DIR"] == "/data"
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "nmc_assets.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert values["concurrency"]["pools"]["defaultLimit"] == 1
    dockerfile = (K8S_DIR / "Dockerfile").read_text()
    torch_at = dockerfile.index('pip install "torch==${TORCH_VERSION}"')  # the CPU profile's torch first,
    deps_at = dockerfile.index('pip install -r "deploy/requirements-${PROFILE}.txt"')  # then the profile's set,
    assert torch_at < deps_at < dockerfile.index("pip install --no-deps .")  # then the project alone
    assert "ARG TORCH_VERSION=2.13.0" in dockerfile and "ARG PROFILE=gpu" in dockerfile


# ------------------------------------------------------------------------------------------------
# the device setting reaches every asset that runs torch; loading the code location stays light


def test_every_asset_running_torch_takes_the_device_resource():
    import inspect

    from nmc_assets.definitions import defs as load_defs

    checked = []
    for assets_def in load_defs().resolve_asset_graph().assets_defs:
        node = assets_def.node_def
        if not isinstance(node, dg.OpDefinition):
            continue
        source = inspect.getsource(node.compute_fn.decorated_fn)
        kinds = set().union(*(spec.kinds for spec in assets_def.specs))
        if "pytorch" in kinds or "torch" in source:
            checked.append(node.name)
            assert "device" in assets_def.required_resource_keys, f"{node.name} runs torch without `device`"
    graph = load_defs().resolve_asset_graph()
    if graph.has(dg.AssetKey("grain_model")):  # the torch GAN (docs/design.md §2) is among those checked
        assert "grain_model" in checked


def test_loading_the_code_location_imports_no_ml_framework():
    """The code server imports the definitions for every sensor/schedule tick: keep it light."""
    import subprocess
    import sys

    code = (
        "import sys, warnings; warnings.simplefilter('ignore');"
        "from nmc_assets.definitions import defs; defs();"
        "print(','.join(m for m in ('torch', 'tensorflow', 'stardist', 'shap', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"imported at load time: {out.stdout.strip()}"
