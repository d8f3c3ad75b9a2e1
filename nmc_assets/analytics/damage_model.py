"""Random forests of particle damage on the other particle attributes, per cycling condition.

Reproduces the regression of Li et al. (Science 2022, ``randomforest.ipynb``) and adds what the study
lacked: honest out-of-sample scores with their spread, so a user can see when an attribute ranking is
noise.

Per condition (the ``cycles`` of the scans, as a string such as ``"10"``, plus ``"all"`` for every
particle together) and per repeat (``n_subsamples`` random subsamples of ``subsample_size`` particles x
``n_seeds`` seeds):

* a 5 % test split, a ``RandomForestRegressor`` fitted on the rest, R^2 and MAE on the held-out 5 %;
* ``shap.TreeExplainer`` SHAP values on the training rows (as the study did), reduced to the mean
  |SHAP| per attribute (units of damage, a volume fraction) and the attribute ranks of that repeat.

Per subsample, a K-fold cross-validation gives out-of-fold (OOF) predictions for every particle of the
subsample; R^2 and MAE of those are the main scores (a 5 % split of 500 particles is only 25 particles).
A reference forest fitted on all particles of the condition is kept (for reuse and for the SHAP
beeswarm of every particle).

Input: a DataFrame with the ``particle_features`` columns of docs/design.md §3.3. The science core does not
import Dagster; ``shap`` is imported lazily (3-4 s).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# the drivers table's columns and per-condition summary (re-exported here with drivers_table)
from nmc_assets.analytics.drivers import DRIVERS_COLUMNS, empty_drivers_table, summarise_condition
from nmc_assets.settings import setting

#: Target column: (filled volume - solid volume) / filled volume.
TARGET = "damage"

#: Our columns for the study's 21 regression inputs (Z, Roll, Pitch, Yaw, Edensity, Homogeneity,
#: SurfInner, SurfOuter, Volume, Elongation, Sphericity, Vsratio, RoughInner, RoughOuter, Contact,
#: PDensity, DisNearest, locVolume, locOri, locElongation, locSphericity), in either feature set
#: (``default`` or ``li2022``, docs/features.md; the drivers table says which set a scan used).
STUDY_ATTRIBUTES: tuple[str, ...] = (
    "z_um",
    "roll_deg",
    "pitch_deg",
    "yaw_deg",
    "e_density",
    "homogeneity",
    "surface_inner_um2",
    "surface_outer_um2",
    "volume_um3",
    "elongation",
    "sphericity",
    "vs_ratio",
    "rough_inner",
    "rough_outer",
    "contact",
    "p_density",
    "dist_nearest_um",
    "volume_std",
    "orien_iso",
    "elong_std",
    "sphericity_std",
)

#: Columns that identify a particle or a scan, never attributes.
IDENTIFIER_COLUMNS: tuple[str, ...] = ("scan_id", "particle_id", "x_um", "y_um", "cycles", "voxel_size_um")

#: Default exclusions: attributes that restate the target, with the reason. ``damage`` is measured as
#: the crack-and-void fraction of the filled particle, estimated from the tomogram intensity inside it,
#: so any attribute computed from the crack surfaces or from the same intensities is the damage itself
#: seen another way, and a forest would "explain" damage by it. Set ``exclude_attributes=()`` to
#: regress on the study's full attribute list.
LEAKY_ATTRIBUTES: dict[str, str] = {
    "surface_inner_um2": "area of the crack and void surfaces: zero for an intact particle, grows with cracks",
    "rough_inner": "roughness of the crack and void surfaces: only defined by (and changing with) the cracks",
    "e_density": "mean intensity over the filled particle, crack voxels included: falls linearly with damage",
    "homogeneity": "1 / std (li2022: the std) of the intensity over the filled particle: low-phase crack voxels raise the std",
}
DEFAULT_EXCLUDED_ATTRIBUTES: tuple[str, ...] = tuple(LEAKY_ATTRIBUTES)

#: Smallest number of usable particles a condition needs (30). At 30 a 5 % test split holds 2 particles
#: and a 5-fold split 6 per fold: scores are very noisy (their spread says so) but defined; below it a
#: 30-leaf tree is grown from fewer distinct particles than it has leaves, and R^2 on the split is not
#: defined. The default virtual scans have roughly 60-90 particles per scan away from the border.
MIN_PARTICLES = 30

#: Name of the condition that pools every particle of every scan.
ALL_CONDITION = "all"


@dataclass(frozen=True)
class DamageModelConfig:
    """Settings of the damage regression. Defaults are the study's (Li et al. 2022)."""

    n_trees: int = setting(40, "Trees per forest.")
    criterion: str = setting("absolute_error", "Split criterion (study: MAE = absolute_error).")
    max_leaf_nodes: int | None = setting(30, "Leaves per tree (empty: unlimited).")
    max_features: str | float | int | None = setting("sqrt", "Attributes tried per split: sqrt, log2, or a number (a fraction below 1).")
    min_impurity_decrease: float = setting(1.02e-5, "Study's minimum impurity decrease (in damage units for absolute_error).")
    test_fraction: float = setting(0.05, "Held-out share per repeat.")
    n_seeds: int = setting(10, "Seeds (train/test split and forest) per subsample.")
    n_subsamples: int = setting(10, "Random particle subsamples per condition.")
    subsample_size: int = setting(500, "Particles per subsample (all, when fewer).")
    cv_folds: int = setting(5, "Folds of the out-of-fold score per subsample.")
    min_particles: int = setting(MIN_PARTICLES, "A condition with fewer usable particles is skipped.")
    attributes: tuple[str, ...] = setting(STUDY_ATTRIBUTES, "Candidate attributes (docs/design.md §3.3 columns).")
    exclude_attributes: tuple[str, ...] = setting(DEFAULT_EXCLUDED_ATTRIBUTES, "Attributes left out. Default: those that restate "
                                                  "damage (LEAKY_ATTRIBUTES). [] regresses on the study's full list.")
    include_border_particles: bool = setting(False, "Keep particles cut by the volume border.")
    cycles_in_all: bool = setting(True, "Use cycles as an attribute in the pooled 'all' condition (constant within one condition).")
    random_seed: int = setting(0, "Base seed of subsamples, splits and forests.")
    n_jobs: int = setting(1, "Worker processes per forest fit.")

    def __post_init__(self) -> None:
        if isinstance(self.max_features, str) and self.max_features not in ("sqrt", "log2"):  # a number as text
            number = float(self.max_features)
            object.__setattr__(self, "max_features", int(number) if number.is_integer() and number >= 1 else number)
        checks = [
            (self.n_trees >= 1, "n_trees must be >= 1"),
            (0.0 < self.test_fraction < 0.5, "test_fraction must be in (0, 0.5)"),
            (self.n_seeds >= 1, "n_seeds must be >= 1"),
            (self.n_subsamples >= 1, "n_subsamples must be >= 1"),
            (self.subsample_size >= 10, "subsample_size must be >= 10"),
            (self.cv_folds >= 2, "cv_folds must be >= 2"),
            (self.min_particles >= max(10, self.cv_folds * 2), "min_particles must be >= max(10, 2 * cv_folds)"),
            (self.criterion in ("absolute_error", "squared_error", "friedman_mse", "poisson"), f"unknown criterion {self.criterion!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"DamageModelConfig: {message}")

    def forest_kwargs(self) -> dict[str, Any]:
        return dict(
            n_estimators=self.n_trees,
            criterion=self.criterion,
            max_leaf_nodes=self.max_leaf_nodes,
            max_features=self.max_features,
            min_impurity_decrease=self.min_impurity_decrease,
            bootstrap=True,
            n_jobs=self.n_jobs,
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass
class ConditionResult:
    """Everything fitted for one condition. Tables are long-format pandas DataFrames."""

    condition: str
    n_particles: int
    subsample_size: int
    attributes: list[str]
    #: one row per repeat: subsample, seed, n_train, n_test, r2_test, mae_test
    repeats: pd.DataFrame
    #: one row per subsample: subsample, n, r2_oof, mae_oof
    oof: pd.DataFrame
    #: one row per repeat and attribute: subsample, seed, attribute, mean_abs_shap, rank
    shap_repeats: pd.DataFrame
    #: the forest fitted on every particle of the condition
    reference_model: Any
    #: SHAP values of the reference model for every particle, shape (n_particles, n_attributes)
    reference_shap: np.ndarray
    reference_expected_value: float
    #: the rows used: identifiers, the target and the attributes
    data: pd.DataFrame
    seconds: float

    def scores(self) -> dict[str, float]:
        """Held-out (5 % split) and out-of-fold scores, mean and standard deviation over repeats."""

        def stat(frame: pd.DataFrame, column: str, fn) -> float:
            values = frame[column].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            return float(fn(values)) if values.size else float("nan")

        return {
            "r2_oof_mean": stat(self.oof, "r2_oof", np.mean),
            "r2_oof_std": stat(self.oof, "r2_oof", np.std),
            "mae_oof_mean": stat(self.oof, "mae_oof", np.mean),
            "mae_oof_std": stat(self.oof, "mae_oof", np.std),
            "r2_test_mean": stat(self.repeats, "r2_test", np.mean),
            "r2_test_std": stat(self.repeats, "r2_test", np.std),
            "mae_test_mean": stat(self.repeats, "mae_test", np.mean),
            "mae_test_std": stat(self.repeats, "mae_test", np.std),
        }


@dataclass
class DamageModelResults:
    config: DamageModelConfig
    conditions: dict[str, ConditionResult]
    #: condition (or "comparison") -> why it was not fitted
    skipped: dict[str, str]
    #: input bookkeeping: rows read, rows dropped and why, attributes used / excluded / missing
    inputs: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------------
# inputs


def condition_label(cycles: Any) -> str | None:
    """``"10"`` for 10 cycles (also for 10.0); ``None`` for a missing value."""
    if cycles is None or (isinstance(cycles, float) and math.isnan(cycles)) or pd.isna(cycles):
        return None
    value = float(cycles)
    return str(int(value)) if value.is_integer() else str(value)


def select_attributes(df: pd.DataFrame, config: DamageModelConfig) -> tuple[list[str], dict[str, Any]]:
    """The attribute columns to regress on, and a record of what was excluded and why."""
    excluded = {a: LEAKY_ATTRIBUTES.get(a, "excluded by configuration") for a in config.exclude_attributes}
    requested = [a for a in config.attributes if a not in excluded and a not in IDENTIFIER_COLUMNS and a != TARGET]
    missing = [a for a in requested if a not in df.columns]
    all_nan = [a for a in requested if a in df.columns and df[a].isna().all()]
    used = [a for a in requested if a in df.columns and a not in all_nan]
    info = {"attributes_used": used, "attributes_excluded": excluded, "attributes_missing": missing, "attributes_all_nan": all_nan}
    return used, info


def prepare_conditions(
    df: pd.DataFrame, config: DamageModelConfig
) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]], dict[str, str], dict[str, Any]]:
    """Split a features table into conditions.

    Returns ``(frames, attributes, skipped, inputs)``: per condition label the rows to use and the
    attribute columns; the skipped conditions with the reason; and input bookkeeping. Rows touching
    the volume border (unless ``include_border_particles``) and rows with a missing target or attribute
    are dropped and counted.
    """
    if TARGET not in df.columns:
        raise ValueError(f"particle features have no {TARGET!r} column (columns: {', '.join(map(str, df.columns))})")
    attributes, inputs = select_attributes(df, config)
    if len(attributes) < 2:
        raise ValueError(f"fewer than two usable attributes for the damage regression: {inputs}")
    inputs["rows_read"] = int(len(df))
    rows = df
    if not config.include_border_particles and "touches_border" in rows.columns:
        border = rows["touches_border"].fillna(False).astype(bool)
        inputs["rows_dropped_touches_border"] = int(border.sum())
        rows = rows[~border]
    finite = np.isfinite(rows[[TARGET, *attributes]].to_numpy(dtype=float)).all(axis=1)
    inputs["rows_dropped_missing_values"] = int((~finite).sum())
    rows = rows[finite]
    labels = rows["cycles"].map(condition_label) if "cycles" in rows.columns else pd.Series(None, index=rows.index, dtype=object)
    inputs["rows_without_cycles"] = int(labels.isna().sum())
    inputs["rows_used"] = int(len(rows))
    inputs["scan_ids"] = sorted(map(str, rows["scan_id"].unique())) if "scan_id" in rows.columns else []

    frames: dict[str, pd.DataFrame] = {}
    columns: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    cycle_labels = sorted({l for l in labels.dropna()}, key=float)
    if len(cycle_labels) >= 2:
        for label in cycle_labels:
            part = rows[labels == label]
            if len(part) < config.min_particles:
                skipped[label] = f"{len(part)} particles with cycles={label}, fewer than min_particles={config.min_particles}"
            else:
                frames[label], columns[label] = part, list(attributes)
    else:
        only = cycle_labels[0] if cycle_labels else "none"
        reason = (
            f"only one cycling condition (cycles={only}): no comparison between conditions, only '{ALL_CONDITION}' is fitted"
        )
        skipped["comparison"] = reason
    all_columns = list(attributes)
    if config.cycles_in_all and len(cycle_labels) >= 2 and inputs["rows_without_cycles"] == 0:
        all_columns.append("cycles")
    if len(rows) < config.min_particles:
        skipped[ALL_CONDITION] = f"{len(rows)} usable particles in all scans, fewer than min_particles={config.min_particles}"
    else:
        frames[ALL_CONDITION], columns[ALL_CONDITION] = rows, all_columns
    return frames, columns, skipped, inputs


# --------------------------------------------------------------------------------------------------
# fitting


def _shap_explainer(model):
    import shap  # lazy: 3-4 s import

    return shap.TreeExplainer(model)


def _rank_desc(values: np.ndarray) -> np.ndarray:
    """1 for the largest value; ties broken by position (stable)."""
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values), dtype=int)
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks


def fit_condition(condition: str, frame: pd.DataFrame, attributes: Sequence[str], config: DamageModelConfig) -> ConditionResult:
    """Repeated fits, OOF scores and SHAP for one condition (``frame`` has >= ``min_particles`` rows)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.metrics import mean_absolute_error, r2_score
    from sklearn.model_selection import KFold, train_test_split

    t0 = time.perf_counter()
    attributes = list(attributes)
    X_all = frame[attributes].to_numpy(dtype=np.float64)
    y_all = frame[TARGET].to_numpy(dtype=np.float64)
    n = len(frame)
    size = min(config.subsample_size, n)
    forest_kwargs = config.forest_kwargs()

    repeat_rows, oof_rows, shap_rows = [], [], []
    for sub in range(config.n_subsamples):
        rng = np.random.default_rng([config.random_seed, sub])
        idx = np.sort(rng.choice(n, size=size, replace=False)) if size < n else np.arange(n)
        X, y = X_all[idx], y_all[idx]

        # out-of-fold predictions for every particle of the subsample
        oof = np.empty(size)
        folds = KFold(n_splits=config.cv_folds, shuffle=True, random_state=config.random_seed + sub)
        for train, test in folds.split(X):
            model = RandomForestRegressor(random_state=config.random_seed + sub, **forest_kwargs).fit(X[train], y[train])
            oof[test] = model.predict(X[test])
        oof_rows.append({"subsample": sub, "n": size, "r2_oof": r2_score(y, oof), "mae_oof": mean_absolute_error(y, oof)})

        for seed in range(config.n_seeds):
            repeat_seed = config.random_seed + 1000 * sub + seed
            X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=config.test_fraction, random_state=repeat_seed)
            model = RandomForestRegressor(random_state=repeat_seed, **forest_kwargs).fit(X_train, y_train)
            pred = model.predict(X_test)
            repeat_rows.append(
                {
                    "subsample": sub,
                    "seed": seed,
                    "n_train": len(y_train),
                    "n_test": len(y_test),
                    "r2_test": r2_score(y_test, pred) if len(y_test) >= 2 else float("nan"),
                    "mae_test": mean_absolute_error(y_test, pred),
                }
            )
            mean_abs = np.abs(_shap_explainer(model).shap_values(X_train, check_additivity=False)).mean(axis=0)
            ranks = _rank_desc(mean_abs)
            for attr, value, rank in zip(attributes, mean_abs, ranks):
                shap_rows.append({"subsample": sub, "seed": seed, "attribute": attr, "mean_abs_shap": float(value), "rank": int(rank)})

    reference = RandomForestRegressor(random_state=config.random_seed, **forest_kwargs).fit(X_all, y_all)
    explainer = _shap_explainer(reference)
    reference_shap = np.asarray(explainer.shap_values(X_all, check_additivity=False), dtype=np.float64)
    expected = float(np.ravel(explainer.expected_value)[0])
    keep = [c for c in ("scan_id", "particle_id", "cycles") if c in frame.columns and c not in attributes]
    data = frame[keep + [TARGET] + attributes].reset_index(drop=True)
    return ConditionResult(
        condition=condition,
        n_particles=n,
        subsample_size=size,
        attributes=attributes,
        repeats=pd.DataFrame(repeat_rows),
        oof=pd.DataFrame(oof_rows),
        shap_repeats=pd.DataFrame(shap_rows),
        reference_model=reference,
        reference_shap=reference_shap,
        reference_expected_value=expected,
        data=data,
        seconds=time.perf_counter() - t0,
    )


def fit_damage_models(df: pd.DataFrame, config: DamageModelConfig | None = None) -> DamageModelResults:
    """Fit the damage forests of every condition of a ``particle_features`` table (see module doc).

    Conditions with too few particles, and the comparison when there is only one cycling condition,
    are listed in ``results.skipped`` with the reason instead of raising. Raises ``ValueError`` when
    the table has no ``damage`` column or fewer than two usable attributes.
    """
    config = config or DamageModelConfig()
    t0 = time.perf_counter()
    frames, columns, skipped, inputs = prepare_conditions(df, config)
    conditions = {label: fit_condition(label, frames[label], columns[label], config) for label in frames}
    return DamageModelResults(config=config, conditions=conditions, skipped=skipped, inputs=inputs, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------------
# aggregation


def drivers_table(results: DamageModelResults) -> pd.DataFrame:
    """Mean |SHAP| per condition and attribute, with its spread over the repeats and the scores.

    Columns: ``condition, attribute, mean_abs_shap, std_abs_shap, rank`` (1 = strongest, by
    ``mean_abs_shap``), ``rank_mean, rank_std`` (of the per-repeat ranks), ``top3_fraction`` (share of
    repeats in which the attribute is among the three strongest), ``n_particles, subsample_size,
    n_repeats`` and the condition's scores ``r2_oof_mean, r2_oof_std, mae_oof_mean, mae_oof_std,
    r2_test_mean, r2_test_std, mae_test_mean``. mean |SHAP| is in units of damage (volume fraction).
    """
    frames = []
    for label, cond in results.conditions.items():
        frames.append(summarise_condition(label, cond.shap_repeats, cond.n_particles, cond.subsample_size, cond.scores()))
    if not frames:
        return empty_drivers_table()
    return pd.concat(frames, ignore_index=True)
