"""Instance-matching metrics between a ground-truth and a predicted label image (2D or 3D).

Definitions follow StarDist's ``matching`` (and ``/work/shared/tools/check_contract.py``): a predicted
object matches a ground-truth object when their IoU exceeds the threshold (which makes the matching
one-to-one for thresholds >= 0.5); ``ap = tp / (tp + fp + fn)`` (StarDist's "accuracy").

Interior scores (:func:`interior_matching`) leave out the objects cut by the volume border, which the
feature table flags (``touches_border``) and the analytics leave out: only true objects with no voxel on
a face of the array count, with the predictions matched to them and the unmatched predictions that touch
no face either.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def overlap_table(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sizes and pairwise intersections of all objects, vectorised.

    Returns ``(truth_ids, truth_sizes, pred_ids, pred_sizes, pairs_iou)`` where ``pairs_iou`` is an
    ``(n_pairs, 3)`` float array of ``(truth_id, pred_id, iou)`` for every overlapping pair.
    """
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"label shapes differ: truth {truth.shape} vs prediction {pred.shape}")
    t = truth.ravel().astype(np.int64, copy=False)
    p = pred.ravel().astype(np.int64, copy=False)
    t_ids, t_sizes = np.unique(t[t > 0], return_counts=True)
    p_ids, p_sizes = np.unique(p[p > 0], return_counts=True)
    both = (t > 0) & (p > 0)
    if not both.any():
        return t_ids, t_sizes, p_ids, p_sizes, np.zeros((0, 3))
    # encode each (truth, pred) pair as one integer and count pairs
    base = int(p.max()) + 1
    codes, inter = np.unique(t[both] * base + p[both], return_counts=True)
    ti, pi = codes // base, codes % base
    ts = t_sizes[np.searchsorted(t_ids, ti)]
    ps = p_sizes[np.searchsorted(p_ids, pi)]
    iou = inter / (ts + ps - inter)
    return t_ids, t_sizes, p_ids, p_sizes, np.stack([ti, pi, iou], axis=1).astype(float)


def _scores(tp: int, fp: int, fn: int, matched_iou: np.ndarray, n_true: int, n_pred: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "ap": tp / (tp + fp + fn) if tp + fp + fn else 1.0,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "mean_matched_iou": float(matched_iou.mean()) if tp else 0.0,
        "n_true": n_true,
        "n_pred": n_pred,
    }


def _matches(pairs: np.ndarray, threshold: float) -> np.ndarray:
    if threshold < 0.5:
        raise ValueError(f"IoU threshold {threshold} < 0.5 does not give a one-to-one matching")
    return pairs[pairs[:, 2] > threshold] if len(pairs) else pairs


def match_instances(truth: np.ndarray, pred: np.ndarray, thresholds: Sequence[float] = (0.5, 0.75)) -> dict[float, dict]:
    """Match instances at each IoU threshold (>= 0.5, so matches are unique).

    Returns ``{threshold: {tp, fp, fn, ap, precision, recall, f1, mean_matched_iou, n_true, n_pred}}``.
    """
    return _match_table(overlap_table(truth, pred), thresholds)


def _match_table(table: tuple, thresholds: Sequence[float]) -> dict[float, dict]:
    t_ids, _, p_ids, _, pairs = table
    out: dict[float, dict] = {}
    for thr in thresholds:
        hit = _matches(pairs, thr)
        tp = int(len(hit))
        out[float(thr)] = _scores(tp, int(len(p_ids)) - tp, int(len(t_ids)) - tp, hit[:, 2], int(len(t_ids)), int(len(p_ids)))
    return out


def border_ids(labels: np.ndarray) -> np.ndarray:
    """Sorted non-zero ids of ``labels`` with a voxel on any face of the array (2D or 3D)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0, labels.dtype)
    faces = [np.take(labels, i, axis=ax).ravel() for ax in range(labels.ndim) for i in (0, -1)]
    ids = np.unique(np.concatenate(faces))
    return ids[ids > 0]


def interior_matching(truth: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> dict:
    """:func:`match_instances` at one threshold over the interior only (module doc): true objects that
    touch no face of the array; tp = those matched, fn = those not; fp = unmatched predictions that touch
    no face either. Predictions matched to a border-cut true object are not counted. Same keys, with
    ``n_true`` / ``n_pred`` the interior objects of each."""
    return _interior_table(overlap_table(truth, pred), border_ids(truth), border_ids(pred), threshold)


def _interior_table(table: tuple, truth_border: np.ndarray, pred_border: np.ndarray, threshold: float) -> dict:
    t_ids, _, p_ids, _, pairs = table
    hit = _matches(pairs, threshold)
    t_in = np.setdiff1d(t_ids, truth_border)
    p_in = np.setdiff1d(p_ids, pred_border)
    hit_in = hit[np.isin(hit[:, 0], t_in)] if len(hit) else hit
    tp = int(len(hit_in))
    fp = int(np.setdiff1d(p_in, hit[:, 1] if len(hit) else []).size)
    return _scores(tp, fp, int(len(t_in)) - tp, hit_in[:, 2], int(len(t_in)), int(len(p_in)))


def accuracy_summary(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Flat summary used by checks and benchmarks: AP@0.5, AP@0.75, precision/recall@0.5, mean IoU@0.5, and
    the same at 0.5 over the interior (``interior_*``, :func:`interior_matching`)."""
    table = overlap_table(truth, pred)
    m = _match_table(table, (0.5, 0.75))
    a, b, c = m[0.5], m[0.75], _interior_table(table, border_ids(truth), border_ids(pred), 0.5)
    return {
        "ap50": a["ap"],
        "ap75": b["ap"],
        "precision50": a["precision"],
        "recall50": a["recall"],
        "mean_matched_iou": a["mean_matched_iou"],
        "n_true": a["n_true"],
        "n_pred": a["n_pred"],
        "tp50": a["tp"],
        "fp50": a["fp"],
        "fn50": a["fn"],
        "interior_ap50": c["ap"],
        "interior_precision50": c["precision"],
        "interior_recall50": c["recall"],
        "interior_mean_matched_iou": c["mean_matched_iou"],
        "interior_n_true": c["n_true"],
        "interior_tp50": c["tp"],
        "interior_fp50": c["fp"],
        "interior_fn50": c["fn"],
    }
