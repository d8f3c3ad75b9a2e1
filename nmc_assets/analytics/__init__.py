"""Damage analytics: random forests of particle damage per cycling condition, ranked by mean |SHAP|.

- :mod:`.damage_model`  configuration, conditions, repeated fits, scores, the drivers table
- :mod:`.drivers`       the drivers table's columns and per-condition summary
- :mod:`.store`         reading features, writing / reading the damage-model folder
- :mod:`.plots`         grouped bar chart by condition, SHAP beeswarm (PNG)
- :mod:`.pipeline`      the two steps over paths (used by the Dagster assets)
- :mod:`.validation`    the rule that checks a ranking against a known damage law
- :mod:`.synthetic`     a features table drawn from a known law (tests, benchmarks)
"""
