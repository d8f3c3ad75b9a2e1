"""The Dagster layer: assets, checks, sensors, schedules and resources over the science core.

Every module in this folder is loaded by ``load_from_defs_folder`` (see ``nmc_assets.definitions``).
"""
