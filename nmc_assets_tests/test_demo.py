import dagster as dg

from nmc_assets.demo import DEMO_GRAIN_MODEL_STEPS, QUIET_RUN_CONFIG, run_config_for


def test_demo_overrides_only_the_named_asset_and_the_config_validates():
    assert run_config_for("fused_labels", {"grain_model": {"steps": 5}}) == QUIET_RUN_CONFIG
    cfg = run_config_for("grain_model", {"grain_model": {"steps": DEMO_GRAIN_MODEL_STEPS}})
    assert cfg["ops"] == {"grain_model": {"config": {"steps": DEMO_GRAIN_MODEL_STEPS}}}
    assert cfg["loggers"] == QUIET_RUN_CONFIG["loggers"]
    # the override is a valid run config of the grain_model asset
    from nmc_assets.definitions import defs

    job = defs().resolve_implicit_global_asset_job_def()
    assert dg.validate_run_config(job, cfg)["ops"]["grain_model"]["config"]["steps"] == DEMO_GRAIN_MODEL_STEPS


def test_lanes_cover_every_asset_once_and_never_wait_on_each_other():
    from nmc_assets.definitions import defs
    from nmc_assets.demo import plan_lanes

    graph = defs().resolve_asset_graph()
    lanes, after = plan_lanes(graph)
    names = [[k.to_user_string() for k in lane] for lane in lanes]
    assert names[1] == ["grain_sections", "grain_model"]
    assert {"synthetic_particles", "published_dataset"} <= {k.to_user_string() for k in after}
    everything = [k for lane in lanes for k in lane] + after
    assert sorted(everything) == sorted(k for k in graph.toposorted_asset_keys if graph.get(k).is_materializable)
    assert len(everything) == len(set(everything))
    # nothing in one lane depends on another lane
    for i, lane in enumerate(lanes):
        others = {k for j, other in enumerate(lanes) if j != i for k in other}
        for key in lane:
            assert not (set(graph.get(key).parent_keys) & others), key


def test_without_a_gpu_the_gpu_pool_admits_one_step_per_lane(tmp_path):
    """On a CPU-only machine the demo's lanes must not queue behind each other on the one-card `gpu` pool."""
    from nmc_assets.demo import GPU_POOL, open_gpu_pool_without_gpu

    overrides = {"concurrency": {"pools": {"default_limit": 1}}}
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        storage = instance.event_log_storage
        assert open_gpu_pool_without_gpu(instance, 2, cuda_available=True) is False
        assert GPU_POOL not in storage.get_concurrency_keys() or storage.get_concurrency_info(GPU_POOL).slot_count == 1
        assert open_gpu_pool_without_gpu(instance, 2, cuda_available=False) is True
        assert storage.get_concurrency_info(GPU_POOL).slot_count == 2
        assert open_gpu_pool_without_gpu(instance, 2, cuda_available=False) is False  # already open: unchanged
        assert storage.get_concurrency_info(GPU_POOL).slot_count == 2
