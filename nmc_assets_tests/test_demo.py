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
