"""Run configs built from the science core's settings dataclasses (:mod:`nmc_assets.settings`).

``@core_settings(TrainConfig)`` on a :class:`CoreSettingsConfig` subclass adds one field per field of the
dataclass: same name, same default, the dataclass's description (shown in the launchpad).
``config.to_core(**extra)`` gives the dataclass back. Options that only the asset has (e.g. the model
folder name) are declared in the class body; core fields that the asset fills in from data are
``exclude``-d and passed to ``to_core``.

Field types: ``int``, ``float``, ``str``, ``bool`` as they are; ``X | None`` -> optional ``X``;
``tuple[X, ...]`` -> ``list[X]`` (a tuple again in the core); a union with ``str`` (such as
``str | float | int | None``) -> ``str``: the core accepts the text form.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar, Optional

import dagster as dg
from pydantic import Field, create_model

from nmc_assets.settings import default, description

_PLAIN = (int, float, str, bool)


class CoreSettingsConfig(dg.Config):
    """A run config generated from a core settings dataclass (see :func:`core_settings`)."""

    core_class: ClassVar[type | None] = None
    excluded: ClassVar[tuple[str, ...]] = ()

    def to_core(self, **extra: Any):
        """The core dataclass with this config's values (``extra``: the excluded fields, if needed)."""
        cls = type(self).core_class
        hints = typing.get_type_hints(cls)
        values = {f.name: _to_core_value(getattr(self, f.name), hints[f.name])
                  for f in dataclasses.fields(cls) if f.name not in type(self).excluded}
        return cls(**values, **extra)


def _is_union(tp) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _config_type(tp, name: str):
    """The run-config type of a core annotation (module docstring)."""
    if tp in _PLAIN:
        return tp
    if _is_union(tp):
        args = typing.get_args(tp)
        if str in args:
            return Optional[str] if type(None) in args else str
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2 and rest[0] in _PLAIN:
            return Optional[rest[0]]
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis and args[0] in _PLAIN:
            return list[args[0]]
    raise TypeError(f"setting {name!r}: no run-config type for {tp!r}")


def _config_value(value):
    return list(value) if isinstance(value, tuple) else value


def _to_core_value(value, tp):
    """A run-config list back to the core's tuple (``tuple[X, ...]``, also inside a union)."""
    tuple_typed = tuple in (typing.get_origin(t) for t in (tp, *typing.get_args(tp)))
    return tuple(value) if isinstance(value, list) and tuple_typed else value


def core_settings(core: type, *, exclude: tuple[str, ...] = ()):
    """Class decorator: add the fields of the settings dataclass ``core`` to a :class:`CoreSettingsConfig`.

    The decorated class keeps its name, docstring and its own fields (the asset's options); the result
    is a subclass of it with one more field per field of ``core`` not in ``exclude``.
    """

    def build(cls: type[CoreSettingsConfig]) -> type[CoreSettingsConfig]:
        hints = typing.get_type_hints(core)
        fields = {}
        for f in dataclasses.fields(core):
            if f.name in exclude:
                continue
            if not description(f):
                raise ValueError(f"{core.__name__}.{f.name}: a run-config setting needs a description (nmc_assets.settings.setting)")
            fields[f.name] = (_config_type(hints[f.name], f.name), Field(default=_config_value(default(f)), description=description(f)))
        built = create_model(cls.__name__, __base__=cls, __doc__=cls.__doc__, __module__=cls.__module__, **fields)
        built.__qualname__ = cls.__qualname__
        built.core_class = core
        built.excluded = tuple(exclude)
        return built

    return build
