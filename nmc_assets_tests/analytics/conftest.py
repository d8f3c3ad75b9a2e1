"""Analytics fixtures: a synthetic features table with a known damage law and one fast fit of it."""

import pytest

from nmc_assets.analytics.damage_model import DamageModelConfig, fit_damage_models
from nmc_assets.analytics.synthetic import synthetic_features

#: Fewer repeats than the study's 10 x 10 so the suite stays fast; the estimator settings are the study's.
FAST_CONFIG = DamageModelConfig(n_seeds=2, n_subsamples=2, subsample_size=250)


@pytest.fixture(scope="session")
def synthetic_table():
    return synthetic_features(n_per_condition=350, seed=3)


@pytest.fixture(scope="session")
def synthetic_results(synthetic_table):
    return fit_damage_models(synthetic_table, FAST_CONFIG)
