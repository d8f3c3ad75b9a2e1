"""The per-scan intensity threshold between solid and cracks/voids inside the filled particles.

Inputs: a ``(z, y, x)`` label volume (0 = background) and the tomogram of the same shape; intensities
and the threshold are in the tomogram's units (phase). Order statistics are exact and linear in time
(:mod:`nmc_assets.features._filter_kernels`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from nmc_assets.features._compiled import kernels

#: Percentile of the background intensity taken as the void (pore/electrolyte) level of the threshold.
BACKGROUND_VOID_PERCENTILE = 10.0
#: At most about this many voxels are sampled for the threshold (a regular flat stride, see :func:`sample_step`).
MAX_SAMPLES = 4_000_000


class IntensityLevels(NamedTuple):
    """A scan's intensity levels (tomogram units): ``solid_threshold`` (:func:`estimate_solid_threshold`)
    and ``solid_level``, the median intensity inside the labelled particles."""

    solid_threshold: float
    solid_level: float


def estimate_intensity_levels(labels: np.ndarray, intensity: np.ndarray, *, max_samples: int | None = None
                              ) -> IntensityLevels:
    """:class:`IntensityLevels` from the regular subsample :func:`estimate_solid_threshold` takes."""
    step = sample_step(labels.size, max_samples)
    lab = np.asarray(labels).reshape(-1)[::step]
    val = np.asarray(intensity, dtype=np.float32).reshape(-1)[::step]
    return levels_from_sample(lab, val)


def estimate_solid_threshold(labels: np.ndarray, intensity: np.ndarray, *, max_samples: int | None = None) -> float:
    """Per-scan intensity threshold separating solid from cracks/voids inside the filled particles.

    Otsu's threshold over the intensities inside all labelled particles (solid vs. crack/void modes,
    centred in the empty gap around it), capped at the midpoint between the *void level* and the
    median particle intensity (the solid level). Cracks and voids hold pore space or electrolyte, the
    least dense phase of the background, so the void level is the
    :data:`BACKGROUND_VOID_PERCENTILE`-th percentile of the background (``labels == 0``; its median
    would be binder). A voxel half solid and half void then sits at the threshold, and the cap keeps
    intact particles intact when Otsu splits the solid mode of a scan with little damage. Without
    background voxels Otsu alone is used. A regular subsample of at most about ``max_samples`` voxels (default
    :data:`MAX_SAMPLES`) is used (:func:`sample_step`).
    """
    return estimate_intensity_levels(labels, intensity, max_samples=max_samples).solid_threshold


def sample_step(n_voxels: int, max_samples: int | None = None) -> int:
    """Stride of the regular subsample :func:`estimate_solid_threshold` takes: flat (C-order) voxel
    indices ``0, step, 2 step, ...`` of the volume, at most about ``max_samples`` (default
    :data:`MAX_SAMPLES`) of them (exactly ``ceil(n_voxels / step)``)."""
    return max(1, int(n_voxels) // int(MAX_SAMPLES if max_samples is None else max_samples))


def threshold_from_sample(lab: np.ndarray, val: np.ndarray) -> float:
    """The threshold of :func:`estimate_solid_threshold` from its subsample: ``lab`` (m,) integer labels
    and ``val`` (m,) float32 intensities of the same voxels, in flat voxel order."""
    return levels_from_sample(lab, val).solid_threshold


def levels_from_sample(lab: np.ndarray, val: np.ndarray) -> IntensityLevels:
    """:class:`IntensityLevels` from the subsample of :func:`threshold_from_sample` (same arguments)."""
    from skimage.filters import threshold_otsu

    k = kernels().filters
    inside, outside = k.split_by_label(lab, val)
    if inside.size == 0:
        raise ValueError("no labelled voxels: cannot estimate the solid threshold")
    if inside.max() > inside.min():
        otsu = float(threshold_otsu(inside))
        # centre it in the empty gap around it (matters for clean, few-valued phantoms)
        below_max, above_min, both = k.gap_around(inside, np.float32(otsu))
        if both:
            otsu = 0.5 * (float(below_max) + float(above_min))
    else:
        otsu = float(inside[0])
    solid_level = float(percentile(inside, 50.0))
    if outside.size >= 16:
        void_level = float(percentile(outside, BACKGROUND_VOID_PERCENTILE))
        return IntensityLevels(min(otsu, 0.5 * (void_level + solid_level)), solid_level)
    return IntensityLevels(otsu, solid_level)


def percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` of a non-empty 1-D array (linear interpolation between the two
    order statistics around rank ``q / 100 * (n - 1)``), from exact order statistics in linear time (no
    sort, no copy)."""
    n = values.size
    pos = q / 100.0 * (n - 1)
    lo = int(math.floor(pos))
    a, b = kernels().filters.order_statistics(values, lo)
    return a + (b - a) * (pos - lo)
