"""Label-free segmentation confidence per particle, from the data itself (no ground truth).

Inputs: the full-resolution (z, y, x) instance labels and the three stored view maps of the scan
(:mod:`.views`: ``prob_<view>``, ``dist_<view>`` at the binned resolution; a full-resolution voxel takes
the value of the binned voxel it lies in, ``index // bin_factor``). Per label, sums over its voxels and
over its boundary give the sub-scores, each in [0, 1] (1 = trustworthy):

``conf_view_agreement``
    1 - the mean over the particle's voxels of (max - min) of the xy, xz and yz probabilities: the three
    networks that saw different slices agree the voxels are particle.
``conf_boundary_margin``
    the mean fused (three-view mean) probability inside the particle minus that in a thin shell
    outside it, clipped to [0, 1]; the shell: the outer voxel ``w`` of every voxel pair ``(v in L,
    w not in L)`` ``shell`` voxels apart along an axis (``shell_um``, default 0.4 um = one working pixel).
    A real particle is a probability plateau above a drop; a piece of background called particle, or a
    cut through one particle (a crack split), is not.
``conf_size_agreement``
    exp(-|ln(r_eq / r_net)|): the particle's equivalent-sphere radius (from its voxel count) against the
    radius the network sees, the largest fused mean ray distance inside it (um). A fragment of a split
    particle is smaller than what the network sees, two merged particles larger.
``conf_shape``
    shape plausibility from the feature table: sphericity (1 for a ball; a half ball is 0.59, two balls
    merged about 0.63) mapped linearly from 0.5 -> 0 to 0.9 -> 1 (1 for particles touching the volume
    boundary, whose cut faces make any sphericity plausible), times 1 - exp(-V / V_min) with
    ``min_volume_um3`` (the smallest physical particle; a ball of 1.5 um diameter is 1.8 um^3).

``segmentation_confidence`` = sigmoid(b + sum_i w_i logit(s_i)) over the four sub-scores (clipped to
[0.01, 0.99] before the logit), with :data:`WEIGHTS` fitted by logistic regression (wrong = IoU < 0.5
with the truth) on simulator scans that are never the evaluation scans (provenance in
:data:`WEIGHTS_PROVENANCE`); it reads as the probability that the particle is segmented right. The
weights belong to the shipped default model and fusion: after retraining or new fusion defaults, refit
them with ``benchmarks/bench_confidence.py --fit``. On the evaluation scans the boundary margin alone
ranks almost as well as the combination (``benchmarks/results/confidence.md``).

Every per-voxel quantity is rounded to a multiple of 1/:data:`QUANT` before summing, so the float64
sums are exact integers and the scores are identical whatever the block shape or the block order
(:func:`view_scores` reads blocks with a ``shell``-voxel halo; maxima are exact anyway).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nmc_assets.features.columns import CONFIDENCE_COLUMNS
from nmc_assets.settings import setting

VIEWS = ("xy", "xz", "yz")
#: Per-voxel probabilities and distances are rounded to multiples of 1 / QUANT (exact float64 sums).
QUANT = 4096
#: Sub-score columns (feature table order; names and descriptions owned by :mod:`nmc_assets.features.columns`).
SUB_SCORES = tuple(CONFIDENCE_COLUMNS[:-1])
#: Voxels per block of :func:`view_scores` by default, and the peak bytes per voxel read (labels, maps, temporaries).
BLOCK_VOXELS = 2**22
BYTES_PER_VOXEL = 96
#: Label values up to this index the per-block sums directly; larger ones are sorted first (np.unique).
DENSE_LABELS = 2**22
#: Per-label sums of one block (the merge adds them; ``dist_max`` is merged by maximum).
_SUMS = ("n", "p", "spread", "pair_in", "pair_out", "pairs")

#: Combination weights (intercept, then one per sub-score in :data:`SUB_SCORES` order) on logit scale.
WEIGHTS: tuple[float, ...] = (6.4662, 0.3915, 4.1920, 0.8362, 0.1776)
WEIGHTS_PROVENANCE = ("logistic regression (sklearn, C=1) of right (IoU >= 0.5) vs wrong on 1835 fused particles "
                      "(24 wrong) of 4 simulator scans 160x384x384 at 0.2 um, seeds 3001-3004 at 10/50/100/200 "
                      "cycles, shipped default model, default fusion + refinement; "
                      "benchmarks/bench_confidence.py --fit, 2026-11-30; never the evaluation scans")


class MissingViewMaps(FileNotFoundError):
    """The scan has no (complete) stored view maps, so no confidence can be computed."""


@dataclass(frozen=True)
class ConfidenceSettings:
    """Method settings of the segmentation confidence (physical units)."""

    shell_um: float = setting(0.4, "distance (um) between the inside and outside voxel of a boundary pair")
    min_volume_um3: float = setting(1.8, "smallest physical particle volume (um^3): ball of 1.5 um diameter")
    sphericity_low: float = setting(0.5, "sphericity at which conf_shape reaches 0")
    sphericity_high: float = setting(0.9, "sphericity at and above which conf_shape is 1 (before the volume factor)")

    def __post_init__(self):
        if not self.shell_um > 0 or not self.min_volume_um3 > 0 or not self.sphericity_high > self.sphericity_low:
            raise ValueError(f"invalid confidence settings {self}")


# ----------------------------------------------------------------------------------------------------
# per-block sums
# ----------------------------------------------------------------------------------------------------
def voxel_fields(probs: Sequence[np.ndarray], dist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-voxel int32 fields, in units of 1 / QUANT: (3 x the mean view probability, max - min of the
    view probabilities, the fused mean ray distance in binned px) from the three views' probabilities
    and the fused distance (same grid: binned, or full resolution)."""
    q = [np.rint(np.asarray(p, np.float32) * QUANT).astype(np.int32) for p in probs]
    fused = q[0] + q[1] + q[2]
    spread = np.maximum(np.maximum(q[0], q[1]), q[2]) - np.minimum(np.minimum(q[0], q[1]), q[2])
    return fused, spread, np.rint(np.asarray(dist, np.float32) * QUANT).astype(np.int32)


def block_sums(labels: np.ndarray, probs: Sequence[np.ndarray], dist: np.ndarray, core, shell: int) -> dict[str, np.ndarray]:
    """Per-label sums over one block: ``labels`` (z, y, x) read with a halo, ``probs`` the three views'
    probabilities and ``dist`` the fused mean ray distance (binned px) on the same grid, ``core`` the
    block's own region inside them (three slices, or one z slice for a slab of whole planes), ``shell``
    the pair distance in voxels (the halo the block was read with, where the volume goes on).

    Returns ``{"ids", "n", "p", "spread", "pair_in", "pair_out", "pairs", "dist_max"}`` (one entry per
    label present in the core; sums in units of 1 / QUANT, exact integers as float64). A pair belongs to
    the block that holds its inside voxel, so every pair of the volume is counted once.
    """
    return field_sums(labels, *voxel_fields(probs, dist), core, shell)


def field_sums(labels: np.ndarray, fused: np.ndarray, spread: np.ndarray, dq: np.ndarray, core, shell: int) -> dict[str, np.ndarray]:
    """:func:`block_sums` from the :func:`voxel_fields` already on the labels' grid."""
    lab = np.asarray(labels)
    core = (core, slice(None), slice(None)) if isinstance(core, slice) else tuple(core)
    core = tuple(slice(*c.indices(n)[:2]) for c, n in zip(core, lab.shape))
    c_lab, c_fused, c_spread, c_dist = (a[core] for a in (lab, fused, spread, dq))
    flat = c_lab.ravel()
    top = int(flat.max()) if flat.size else 0
    if top <= DENSE_LABELS:  # label values index the sums directly (no sort)
        ids, k = None, top + 1
        inv = flat.astype(np.intp)
    else:
        ids, inv = np.unique(flat, return_inverse=True)
        inv, k = inv.ravel(), ids.size

    def index(values):
        return values.astype(np.intp) if ids is None else np.searchsorted(ids, values)

    def add(w):
        return np.bincount(inv, weights=np.asarray(w, np.float64).ravel(), minlength=k)

    out = {"n": np.bincount(inv, minlength=k).astype(np.float64), "p": add(c_fused), "spread": add(c_spread)}
    dmax = np.full(k, -1, np.int32)
    np.maximum.at(dmax, inv, c_dist.ravel())
    out["dist_max"] = dmax.astype(np.float64)
    p_in, p_out, pairs = np.zeros(k), np.zeros(k), np.zeros(k)
    for axis in range(3):
        n_ax, c = lab.shape[axis], core[axis]
        for sign in (1, -1):
            # v runs over the core; w = v + sign * shell along axis, inside the array read
            lo, hi = (c.start, min(c.stop, n_ax - shell)) if sign > 0 else (max(c.start, shell), c.stop)
            if hi <= lo:
                continue
            v_sl, w_sl = list(core), list(core)
            v_sl[axis] = slice(lo, hi)
            w_sl[axis] = slice(lo + sign * shell, hi + sign * shell)
            lv, lw = lab[tuple(v_sl)], lab[tuple(w_sl)]
            m = (lv != lw) & (lv > 0)
            if not m.any():
                continue
            where = index(lv[m])
            p_in += np.bincount(where, weights=fused[tuple(v_sl)][m].astype(np.float64), minlength=k)
            p_out += np.bincount(where, weights=fused[tuple(w_sl)][m].astype(np.float64), minlength=k)
            pairs += np.bincount(where, minlength=k)
    out.update(pair_in=p_in, pair_out=p_out, pairs=pairs)
    if ids is None:
        ids = np.arange(k)
        keep = out["n"] > 0
    else:
        keep = np.ones(k, bool)
    keep &= ids > 0
    return {"ids": ids[keep].astype(np.int64), **{key: val[keep] for key, val in out.items()}}


def merge_sums(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Add the blocks' per-label sums (maximum for ``dist_max``); ids ascending."""
    parts = [p for p in parts if p["ids"].size]
    if not parts:
        return {"ids": np.zeros(0, np.int64), **{s: np.zeros(0) for s in (*_SUMS, "dist_max")}}
    all_ids = np.concatenate([p["ids"] for p in parts]).astype(np.int64)
    ids, inv = np.unique(all_ids, return_inverse=True)
    out = {"ids": ids}
    for s in _SUMS:
        out[s] = np.bincount(inv, weights=np.concatenate([p[s] for p in parts]), minlength=ids.size)
    dmax = np.full(ids.size, -1.0)
    np.maximum.at(dmax, inv, np.concatenate([p["dist_max"] for p in parts]))
    out["dist_max"] = dmax
    return out


# ----------------------------------------------------------------------------------------------------
# reading labels and view maps block by block
# ----------------------------------------------------------------------------------------------------
def open_view_maps(views_path: str | os.PathLike, full_shape: Sequence[int]) -> tuple[dict, dict]:
    """``({"prob_xy": array, ...}, attrs)`` of the stored view maps, checked against the labels' shape.

    Raises :class:`MissingViewMaps` when the store or a view is missing, ``ValueError`` when the maps
    were made for a tomogram of another shape (stale maps).
    """
    from nmc_assets.storage import image_level, open_zarr_group

    if not os.path.exists(views_path):
        raise MissingViewMaps(f"no view maps at {views_path}: materialize view_probabilities for this scan "
                              "(the segmentation confidence needs the xy, xz and yz probability maps)")
    root = open_zarr_group(views_path)
    attrs = dict(root.attrs)
    names = [f"{c}_{v}" for v in VIEWS for c in ("prob", "dist")]
    missing = [n for n in names if n not in root]
    if missing:
        raise MissingViewMaps(f"view maps {views_path} lack {missing}: rematerialize view_probabilities")
    if tuple(attrs.get("full_shape", ())) != tuple(int(s) for s in full_shape):
        raise ValueError(f"view maps {views_path} were made for a tomogram of shape {tuple(attrs.get('full_shape', ()))}, "
                         f"the labels have shape {tuple(full_shape)}: stale view maps, rematerialize view_probabilities")
    return {n: image_level(root[n], 0, f"{views_path}/{n}") for n in names}, attrs


def _binned(binned, region: Sequence[slice], factor: int) -> np.ndarray:
    """The binned voxels (float32) covering the full-resolution ``region`` (three slices) of a binned map."""
    return np.asarray(binned[tuple(slice(r.start // factor, (r.stop - 1) // factor + 1) for r in region)], np.float32)


def _upsampled(b: np.ndarray, region: Sequence[slice], factor: int) -> np.ndarray:
    """Full-resolution ``region`` from its :func:`_binned` voxels ``b``, nearest: index i takes i // factor."""
    if factor > 1:
        for ax in range(3):
            b = np.repeat(b, factor, axis=ax)
    off = [r.start - (r.start // factor) * factor for r in region]
    return b[tuple(slice(o, o + r.stop - r.start) for o, r in zip(off, region))]


def block_task(block, *, labels_path, views_path, shell: int) -> dict[str, np.ndarray]:
    """:func:`block_sums` of one :class:`~nmc_assets.blockwise.Block` (read at ``block.outer``, a
    ``shell``-voxel halo) of the labels and view maps stored at the given paths (a Dask task: paths in,
    sums out; ``labels_path`` may also be an in-memory array). The per-voxel fields are computed on the
    binned voxels and then upsampled (the same values, factor^3 fewer operations)."""
    from nmc_assets.storage import open_zarr

    lab = open_zarr(labels_path) if isinstance(labels_path, (str, os.PathLike)) else labels_path
    maps, attrs = open_view_maps(views_path, tuple(lab.shape))
    f, region = int(attrs["bin_factor"]), block.outer
    probs = [_binned(maps[f"prob_{v}"], region, f) for v in VIEWS]
    dist = sum(_binned(maps[f"dist_{v}"], region, f) for v in VIEWS) / 3.0
    fields = [_upsampled(a, region, f) for a in voxel_fields(probs, dist)]
    return field_sums(np.asarray(lab[region]), *fields, block.core_in_outer, shell)


def view_scores(labels, views_path: str | os.PathLike, voxel_size_um: float, *,
                settings: ConfidenceSettings | None = None, block_shape: Sequence[int] | None = None,
                runner=None, progress=None, memory_budget: int | None = None) -> pd.DataFrame:
    """Per-label view sub-scores of full-resolution (z, y, x) labels (a Zarr path, or an array) against
    the view maps stored at ``views_path``; ``voxel_size_um``: the labels' voxel edge (um).

    ``block_shape``: voxels per task (default: about :data:`BLOCK_VOXELS`, aligned to the label chunks;
    the result does not depend on it); ``runner``: a :class:`~nmc_assets.blockwise.BlockRunner` to run
    the blocks on (None, or labels given as an array: one after the other here), at most as many at once
    as ``memory_budget`` (bytes) allows. Raises :class:`MissingViewMaps` / ``ValueError`` as
    :func:`open_view_maps`. Returns a frame indexed by ``particle_id`` with ``conf_view_agreement``,
    ``conf_boundary_margin``, ``conf_size_agreement``, ``mean_probability`` and ``n_voxels``.
    """
    from nmc_assets.blockwise import block_grid, workers_within_budget
    from nmc_assets.storage import open_zarr, resolve_version

    settings = settings or ConfidenceSettings()
    if isinstance(labels, (str, os.PathLike)):
        labels_at = str(resolve_version(labels))
        lz = open_zarr(labels_at)
        shape, chunks = tuple(lz.shape), tuple(lz.chunks)
    else:
        labels_at, shape, chunks, runner = labels, tuple(labels.shape), (), None
    if len(shape) != 3:
        raise ValueError(f"labels must be a 3D (z, y, x) volume, got shape {shape}")
    _, attrs = open_view_maps(views_path, shape)  # fail early, with the reason
    views_at = str(resolve_version(views_path))
    shell = max(1, int(round(settings.shell_um / float(voxel_size_um))))
    if block_shape is None:
        from nmc_assets.features.blockwise import io_block_shape

        block_shape = io_block_shape(shape, *([chunks] if chunks else []), target_voxels=BLOCK_VOXELS)
    blocks = block_grid(shape, block_shape, halo=shell)
    kwargs = {"labels_path": labels_at, "views_path": views_at, "shell": shell}
    if progress is not None:
        progress.total = len(blocks)
    if runner is None:
        parts = []
        for block in blocks:
            parts.append(block_task(block, **kwargs))
            if progress is not None:
                progress.advance()
    else:
        outer = max(math.prod(s.stop - s.start for s in b.outer) for b in blocks)
        in_flight = None if memory_budget is None else workers_within_budget(
            scan=str(attrs.get("scan_id", labels)), step="particle_features (segmentation confidence)",
            budget=int(memory_budget), fixed=0, per_worker=outer * BYTES_PER_VOXEL, workers=runner.workers)
        parts = runner.map(block_task, blocks, progress=progress, max_in_flight=in_flight, **kwargs)
    return scores_from_sums(merge_sums(parts), float(voxel_size_um), float(attrs["pixel_um"]))


def scores_from_sums(s: dict[str, np.ndarray], voxel_size_um: float, pixel_um: float) -> pd.DataFrame:
    """The view sub-scores from merged per-label sums (see the module doc)."""
    n = s["n"]
    with np.errstate(divide="ignore", invalid="ignore"):
        agreement = 1.0 - s["spread"] / (QUANT * n)
        margin = s["p"] / (3 * QUANT * n) - s["pair_out"] / (3 * QUANT * s["pairs"])
        r_eq = np.cbrt(3.0 * n / (4.0 * math.pi)) * voxel_size_um
        r_net = s["dist_max"] / QUANT * pixel_um
        size = np.exp(-np.abs(np.log(r_eq / r_net)))
    return pd.DataFrame({
        "conf_view_agreement": np.clip(agreement, 0, 1),
        "conf_boundary_margin": np.clip(np.nan_to_num(margin, nan=0.0), 0, 1),
        "conf_size_agreement": np.nan_to_num(size, nan=0.0, posinf=0.0),
        "mean_probability": s["p"] / (3 * QUANT * n),
        "n_voxels": n.astype(np.int64),
    }, index=pd.Index(s["ids"].astype(np.int64), name="particle_id"))


# ----------------------------------------------------------------------------------------------------
# shape and the combination
# ----------------------------------------------------------------------------------------------------
def shape_score(sphericity, volume_um3, touches_border=None, settings: ConfidenceSettings | None = None) -> np.ndarray:
    """``conf_shape`` in [0, 1] from the feature table's sphericity, volume (um^3) and touches_border
    (particles cut by the volume boundary are not judged on sphericity); NaN inputs give 0."""
    s = settings or ConfidenceSettings()
    sph = np.nan_to_num(np.asarray(sphericity, np.float64), nan=0.0)
    vol = np.nan_to_num(np.asarray(volume_um3, np.float64), nan=0.0)
    ramp = np.clip((sph - s.sphericity_low) / (s.sphericity_high - s.sphericity_low), 0, 1)
    if touches_border is not None:
        ramp = np.where(np.asarray(touches_border, bool), 1.0, ramp)
    return ramp * (1.0 - np.exp(-np.maximum(vol, 0) / s.min_volume_um3))


def _logit(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, np.float64), 0.01, 0.99)
    return np.log(x / (1 - x))


def design_matrix(sub: pd.DataFrame) -> np.ndarray:
    """(n, 4) logits of the :data:`SUB_SCORES` columns (clipped to [0.01, 0.99]): the combiner's inputs."""
    return np.column_stack([_logit(sub[c].to_numpy(np.float64)) for c in SUB_SCORES])


def combine(sub: pd.DataFrame, weights: Sequence[float] = WEIGHTS) -> np.ndarray:
    """``segmentation_confidence`` in [0, 1] from the sub-score columns (see the module doc)."""
    w = np.asarray(weights, np.float64)
    if w.size != len(SUB_SCORES) + 1:
        raise ValueError(f"need {len(SUB_SCORES) + 1} weights (intercept first), got {w.size}")
    z = w[0] + design_matrix(sub) @ w[1:]
    return 1.0 / (1.0 + np.exp(-z))


def confidence_columns(features: pd.DataFrame, scores: pd.DataFrame | None,
                       settings: ConfidenceSettings | None = None) -> pd.DataFrame:
    """The :data:`CONFIDENCE_COLUMNS` for the rows of a feature table (``particle_id``, ``sphericity``,
    ``volume_um3``) from :func:`view_scores` ``scores`` (None: no view maps, every column NaN).

    Raises ``ValueError`` when the table has particles the scores do not (labels and maps of different runs).
    """
    ids = features["particle_id"].to_numpy(np.int64)
    if scores is None:
        return pd.DataFrame({c: np.full(ids.size, np.nan) for c in CONFIDENCE_COLUMNS}, index=features.index)
    missing = np.setdiff1d(ids, scores.index.to_numpy())
    if missing.size:
        raise ValueError(f"no confidence scores for {missing.size} particles of the table (e.g. {missing[:5].tolist()}): "
                         "the labels the scores were computed on are not the table's")
    sub = scores.loc[ids, list(SUB_SCORES[:3])].reset_index(drop=True)
    border = features["touches_border"].to_numpy(bool) if "touches_border" in features else None
    sub["conf_shape"] = shape_score(features["sphericity"], features["volume_um3"], border, settings)
    sub["segmentation_confidence"] = combine(sub)
    sub.index = features.index
    return sub[list(CONFIDENCE_COLUMNS)]
