"""Reading features and writing / reading the damage-model folder (every write is atomic).

The ``damage_model`` folder (``<warehouse>/analytics/damage_model/``)::

    summary.json          config, inputs, per-condition scores, skipped conditions, library versions
    repeats.parquet       condition, subsample, seed, n_train, n_test, r2_test, mae_test
    oof.parquet           condition, subsample, n, r2_oof, mae_oof
    shap_repeats.parquet  condition, subsample, seed, attribute, mean_abs_shap, rank
    shap/<condition>.parquet   every particle of the condition: scan_id, particle_id, damage,
                          value__<attribute> and shap__<attribute> of the reference forest
    models.joblib         {condition: {"model": RandomForestRegressor, "attributes": [...]}}
"""

from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nmc_assets.analytics.damage_model import TARGET, DamageModelResults
from nmc_assets.analytics.drivers import empty_drivers_table, summarise_condition
from nmc_assets.storage import atomic_path, atomic_write_json, atomic_write_parquet

VALUE_PREFIX = "value__"
SHAP_PREFIX = "shap__"


def read_features(paths_or_glob: str | list[str | Path]) -> pd.DataFrame:
    """Concatenate ``particle_features`` Parquet files (a glob pattern or a list of paths).

    ``df.attrs["feature_set"]``: the files' feature set (schema metadata ``feature_set``; "default" for
    files written before it was recorded). Raises ``FileNotFoundError`` when nothing matches and
    ``ValueError`` naming the file that cannot be read, or the files when they mix feature sets (their
    attributes are different quantities under the same names).
    """
    paths = sorted(glob.glob(paths_or_glob)) if isinstance(paths_or_glob, str) else [str(p) for p in paths_or_glob]
    if not paths:
        raise FileNotFoundError(f"no particle_features Parquet files at {paths_or_glob}")
    import pyarrow.parquet as pq

    frames = []
    sets: dict[str, list[str]] = {}
    for path in paths:
        try:
            frame = pd.read_parquet(path)
            meta = pq.read_schema(path).metadata or {}
        except Exception as exc:  # the file name matters more than the library's message
            raise ValueError(f"cannot read particle features {path}: {exc}") from exc
        sets.setdefault(meta.get(b"feature_set", b"default").decode(), []).append(path)
        if "scan_id" not in frame.columns:
            # hive-partitioned layout: scan_id=<id>/features.parquet
            m = re.search(r"scan_id=([^/\\]+)", path)
            frame["scan_id"] = m.group(1) if m else Path(path).parent.name
        frames.append(frame)
    if len(sets) > 1:
        raise ValueError("particle features mix feature sets (re-materialize them with one feature_set): "
                         + "; ".join(f"{k}: {v}" for k, v in sorted(sets.items())))
    frames = [f for f in frames if len(f)] or frames[:1]
    df = pd.concat(frames, ignore_index=True)
    df.attrs["feature_set"] = next(iter(sets))
    return df


def _safe_name(condition: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", condition)


def library_versions() -> dict[str, str]:
    import sklearn

    versions = {"scikit-learn": sklearn.__version__, "numpy": np.__version__, "pandas": pd.__version__}
    try:
        from importlib.metadata import version

        versions["shap"] = version("shap")
    except Exception:  # pragma: no cover - shap is a dependency
        pass
    return versions


def summary_dict(results: DamageModelResults) -> dict[str, Any]:
    """JSON-able summary: config, inputs, skipped, per-condition scores and timing."""
    conditions = {}
    for label, cond in results.conditions.items():
        conditions[label] = {
            "n_particles": cond.n_particles,
            "subsample_size": cond.subsample_size,
            "n_repeats": int(len(cond.repeats)),
            "attributes": cond.attributes,
            "expected_value": cond.reference_expected_value,
            "seconds": round(cond.seconds, 3),
            **{k: (None if not np.isfinite(v) else float(v)) for k, v in cond.scores().items()},
        }
    return {
        "config": results.config.to_dict(),
        "inputs": results.inputs,
        "conditions": conditions,
        "skipped": results.skipped,
        "seconds": round(results.seconds, 3),
        "versions": library_versions(),
    }


def _long(results: DamageModelResults, attr: str) -> pd.DataFrame:
    frames = [getattr(c, attr).assign(condition=label) for label, c in results.conditions.items()]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({"condition": pd.Series(dtype="string")})
    out = pd.concat(frames, ignore_index=True)
    return out[["condition", *[c for c in out.columns if c != "condition"]]]


def save_damage_model(results: DamageModelResults, directory: str | Path) -> Path:
    """Write the damage-model folder (layout in the module doc) atomically; returns its path."""
    import joblib

    directory = Path(directory)
    with atomic_path(directory) as tmp:
        tmp.mkdir(parents=True)
        atomic_write_json(tmp / "summary.json", summary_dict(results))
        atomic_write_parquet(tmp / "repeats.parquet", _long(results, "repeats"))
        atomic_write_parquet(tmp / "oof.parquet", _long(results, "oof"))
        atomic_write_parquet(tmp / "shap_repeats.parquet", _long(results, "shap_repeats"))
        (tmp / "shap").mkdir()
        models = {}
        for label, cond in results.conditions.items():
            frame = cond.data[[c for c in cond.data.columns if c not in cond.attributes]].copy()
            for j, attr in enumerate(cond.attributes):
                frame[VALUE_PREFIX + attr] = cond.data[attr].to_numpy(dtype=float)
                frame[SHAP_PREFIX + attr] = cond.reference_shap[:, j]
            atomic_write_parquet(tmp / "shap" / f"{_safe_name(label)}.parquet", frame)
            models[label] = {"model": cond.reference_model, "attributes": cond.attributes}
        with atomic_path(tmp / "models.joblib") as mtmp:
            joblib.dump(models, mtmp, compress=3)
    return directory


@dataclass
class StoredDamageModel:
    """The parts of a damage-model folder that the drivers table and the plots need."""

    directory: Path
    summary: dict[str, Any]
    shap_repeats: pd.DataFrame

    @property
    def conditions(self) -> list[str]:
        return list(self.summary["conditions"])

    def reference_shap(self, condition: str) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, float]:
        """``(values, shap, ids, expected_value)`` of the reference forest for every particle of ``condition``."""
        frame = pd.read_parquet(self.directory / "shap" / f"{_safe_name(condition)}.parquet")
        attributes = self.summary["conditions"][condition]["attributes"]
        values = pd.DataFrame({a: frame[VALUE_PREFIX + a].to_numpy() for a in attributes})
        shap_values = np.column_stack([frame[SHAP_PREFIX + a].to_numpy() for a in attributes])
        ids = frame[[c for c in frame.columns if not c.startswith((VALUE_PREFIX, SHAP_PREFIX))]]
        return values, shap_values, ids, float(self.summary["conditions"][condition]["expected_value"])


def load_damage_model(directory: str | Path) -> StoredDamageModel:
    """Open a damage-model folder written by :func:`save_damage_model`."""
    directory = Path(directory)
    summary_path = directory / "summary.json"
    if not summary_path.exists():
        raise FileNotFoundError(f"no damage model at {directory} (missing summary.json): materialize damage_model first")
    summary = json.loads(summary_path.read_text())
    shap_repeats = pd.read_parquet(directory / "shap_repeats.parquet")
    return StoredDamageModel(directory=directory, summary=summary, shap_repeats=shap_repeats)


def load_models(directory: str | Path) -> dict[str, dict[str, Any]]:
    """The reference forests: ``{condition: {"model": RandomForestRegressor, "attributes": [...]}}``.

    Only load folders you wrote yourself (joblib files are pickles).
    """
    import joblib

    return joblib.load(Path(directory) / "models.joblib")


def stored_drivers_table(stored: StoredDamageModel) -> pd.DataFrame:
    """The drivers table (see :func:`nmc_assets.analytics.damage_model.drivers_table`) from a stored model."""
    frames = []
    for label, info in stored.summary["conditions"].items():
        rows = stored.shap_repeats[stored.shap_repeats["condition"] == label]
        scores = {k: (float("nan") if info.get(k) is None else info[k]) for k in info if k.startswith(("r2_", "mae_"))}
        frames.append(summarise_condition(label, rows, info["n_particles"], info["subsample_size"], scores))
    return pd.concat(frames, ignore_index=True) if frames else empty_drivers_table()


__all__ = [
    "TARGET",
    "StoredDamageModel",
    "load_damage_model",
    "load_models",
    "read_features",
    "save_damage_model",
    "stored_drivers_table",
    "summary_dict",
]
