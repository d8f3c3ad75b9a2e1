"""The compiled kernels of feature extraction and their look-up tables, loaded on first use.

numba (a dependency of shap, already pinned) is imported and the marching-cubes tables are read off
skimage only when a feature is first computed, so importing :mod:`nmc_assets.features` stays cheap.
The kernels are compiled on their first call and cached on disk (``@njit(cache=True)``).
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import NamedTuple

import numpy as np


class Kernels(NamedTuple):
    """The kernel modules (numba) and the marching-cubes tables indexed by corner configuration."""

    surface: ModuleType  #: :mod:`nmc_assets.features._surface_kernels`
    morphology: ModuleType  #: :mod:`nmc_assets.features._morphology_kernels`
    filters: ModuleType  #: :mod:`nmc_assets.features._filter_kernels`
    mosaic: ModuleType  #: :mod:`nmc_assets.features._mosaic_kernels`
    triangles: np.ndarray  #: int8 (256, MAX_TRIANGLES, 3): skimage's triangles per configuration
    cube_areas: np.ndarray  #: float64 (256,): isosurface area (voxel units) of each binary cube
    ambiguous: np.ndarray  #: uint8 (256,): 1 where Lewiner's tiling depends on the corner values


@functools.cache
def kernels() -> Kernels:
    """The :class:`Kernels` (imported, and the tables built, once per process)."""
    import nmc_assets.features._filter_kernels as filter_kernels
    import nmc_assets.features._lookup_tables as lookup_tables
    import nmc_assets.features._morphology_kernels as morphology_kernels
    import nmc_assets.features._mosaic_kernels as mosaic_kernels
    import nmc_assets.features._surface_kernels as surface_kernels

    return Kernels(
        surface=surface_kernels,
        morphology=morphology_kernels,
        filters=filter_kernels,
        mosaic=mosaic_kernels,
        triangles=lookup_tables.triangle_table(),
        cube_areas=lookup_tables.cube_area_table(),
        ambiguous=lookup_tables.ambiguous_table(),
    )
