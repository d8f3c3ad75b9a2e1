"""Run configs of the code location against the science core's settings: one definition per step."""

import dataclasses
import inspect

from nmc_assets.analytics.damage_model import DamageModelConfig
from nmc_assets.ebsd.particles import SectionSettings
from nmc_assets.features.extract import FeatureSettings
from nmc_assets.defs.config import CoreSettingsConfig
from nmc_assets.segmentation.model import TrainConfig
from nmc_assets.segmentation.pipeline import FusionParams
from nmc_assets.settings import default, description
from nmc_assets.synthesis.gan import GanConfig

#: Step -> the core settings its run config is built from, and the core fields the step fills in from data.
CORE_SETTINGS = {
    "damage_model": (DamageModelConfig, {}),
    "stardist_model": (TrainConfig, {"working_pixel_um": 0.4}),
    "fused_labels": (FusionParams, {}),
    "grain_model": (GanConfig, {}),
    "grain_sections": (SectionSettings, {}),
    "particle_features": (FeatureSettings, {}),
}


def _steps_with_config() -> dict[str, tuple[type, dict]]:
    """Asset name -> (the Config class its function takes, the run-config fields the launchpad shows)."""
    from nmc_assets.definitions import defs

    out = {}
    for node in defs().resolve_asset_graph().assets_defs:
        param = inspect.signature(node.op.compute_fn.decorated_fn).parameters.get("config")
        if param is not None:
            out[node.op.name] = (param.annotation, node.op.config_schema.config_type.fields)
    return out


def test_every_step_config_agrees_with_its_core_settings():
    steps = _steps_with_config()
    derived = {name: v for name, v in steps.items() if issubclass(v[0], CoreSettingsConfig)}
    assert set(derived) == set(CORE_SETTINGS), "a step whose settings live in the core must build its run config from them"
    for step, (core, filled_in) in CORE_SETTINGS.items():
        cls, schema = derived[step]
        assert cls.core_class is core and set(cls.excluded) == set(filled_in), step
        # the launchpad: every core setting (except those filled in from data) with its default and description
        for f in dataclasses.fields(core):
            if f.name in filled_in:
                assert f.name not in schema, (step, f.name)
                continue
            value = default(f)
            assert schema[f.name].default_value == (list(value) if isinstance(value, tuple) else value), (step, f.name)
            assert schema[f.name].description == description(f) != "", (step, f.name)
        assert all(field.description for field in schema.values()), f"{step}: a run-config field without a description"
        # and the default run config is the core's default settings
        assert cls().to_core(**filled_in) == core(**filled_in), step


def test_run_config_values_reach_the_core():
    from nmc_assets.defs.analytics import DamageModelAssetConfig
    from nmc_assets.defs.synthesis import GrainModelConfig

    core = DamageModelAssetConfig(exclude_attributes=[], max_features="0.5", max_leaf_nodes=None).to_core()
    assert (core.exclude_attributes, core.max_features, core.max_leaf_nodes) == ((), 0.5, None)
    assert DamageModelAssetConfig(max_features="6").to_core().max_features == 6
    gan = GrainModelConfig(steps=3, learn_elongation_log_sd=True, checkpoint_every=1).to_core()
    assert gan.steps == 3 and gan.learned[-1] == "elongation_log_sd" and not hasattr(gan, "checkpoint_every")
