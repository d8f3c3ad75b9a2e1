"""Documented settings: a step's settings are defined once, with their defaults and what each one does.

A step's settings are a dataclass whose fields are declared with :func:`setting` (default + description),
e.g. ``DamageModelConfig``, ``TrainConfig``, ``FusionParams``, ``GanConfig``. The science core takes the
dataclass; the Dagster layer builds the asset's run config from the same fields
(:func:`nmc_assets.defs.config.core_settings`), so the launchpad shows the same names, defaults and
descriptions and nothing is copied by hand.
"""

from __future__ import annotations

import dataclasses
from typing import Any

#: Key of a field's description in ``dataclasses.Field.metadata``.
DESCRIPTION = "description"


def setting(default: Any, description: str) -> Any:
    """A dataclass field with its default and a one-line description of what it does."""
    return dataclasses.field(default=default, metadata={DESCRIPTION: description})


def description(f: dataclasses.Field) -> str:
    """The description of a field declared with :func:`setting` ("" otherwise)."""
    return f.metadata.get(DESCRIPTION, "")


def default(f: dataclasses.Field) -> Any:
    """The default of a dataclass field (calls its default factory)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise ValueError(f"setting {f.name!r} has no default")
