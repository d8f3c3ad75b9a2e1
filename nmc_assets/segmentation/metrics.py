"""Instance-matching metrics between a ground-truth and a predicted label image (2D or 3D).

Definitions follow StarDist's ``matching`` (and ``/work/shared/tools/check_contract.py``): a predicted
object matches a ground-truth object when their IoU exceeds the threshold (which makes the matching
one-to-one for thresholds >= 0.5); ``ap = tp / (tp + fp + fn)`` (StarDist's "accuracy").
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


def match_instances(truth: np.ndarray, pred: np.ndarray, thresholds: Sequence[float] = (0.5, 0.75)) -> dict[float, dict]:
    """Match instances at each IoU threshold (>= 0.5, so matches are unique).

    Returns ``{threshold: {tp, fp, fn, ap, precision, recall, f1, mean_matched_iou, n_true, n_pred}}``.
    """
    t_ids, _, p_ids, _, pairs = overlap_table(truth, pred)
    out: dict[float, dict] = {}
    for thr in thresholds:
        if thr < 0.5:
            raise ValueError(f"IoU threshold {thr} < 0.5 does not give a one-to-one matching")
        hit = pairs[pairs[:, 2] > thr] if len(pairs) else pairs
        tp = int(len(hit))
        fp = int(len(p_ids) - tp)
        fn = int(len(t_ids) - tp)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        out[float(thr)] = {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "ap": tp / (tp + fp + fn) if tp + fp + fn else 1.0,
            "precision": precision,
            "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "mean_matched_iou": float(hit[:, 2].mean()) if tp else 0.0,
            "n_true": int(len(t_ids)),
            "n_pred": int(len(p_ids)),
        }
    return out


def accuracy_summary(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Flat summary used by checks and benchmarks: AP@0.5, AP@0.75, precision/recall@0.5, mean IoU@0.5."""
    m = match_instances(truth, pred, (0.5, 0.75))
    a, b = m[0.5], m[0.75]
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
    }
