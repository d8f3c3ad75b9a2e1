"""A virtual slab at the real slice's pixel scale, for the side-by-side realism check (docs/realism.md).

The real slice (``../shared/data/example_xy_left.tif``, 655 x 1024 px) carries no pixel size. With this
simulator's size law (median equivalent diameter 8 um) its particle section diameters (median 110.7 px
by ``realism.py``) match at about 0.06 um per pixel, so the slab is simulated at 0.06 um with the default
simulator settings and the real slice's in-plane size; ``realism.py`` compares its middle slice.
"""

from __future__ import annotations

from pathlib import Path

from nmc_assets.beamline.simulate import ScanConfig, SimulatedScan, simulate_scan

REAL_PIXEL_SIZE_UM = 0.06  # estimated (see the module docstring)
REAL_SLICE_SHAPE = (655, 1024)


def realism_slab(seed: int = 7, cycles: int = 50, n_slices: int = 24,
                 voxel_size_um: float = REAL_PIXEL_SIZE_UM) -> SimulatedScan:
    """Simulate a thin (n_slices, 655, 1024) slab at the real slice's estimated pixel size."""
    return simulate_scan(ScanConfig(shape=(n_slices, *REAL_SLICE_SHAPE), voxel_size_um=voxel_size_um,
                                    cycles=cycles, seed=seed))


def write_realism_slab(path: str | Path, **kwargs) -> Path:
    """Write the slab's 8-bit image as a TIFF stack (z, y, x) for ``realism.py``."""
    import tifffile

    from nmc_assets.storage import atomic_path

    scan = realism_slab(**kwargs)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, scan.image, imagej=True, metadata={"axes": "ZYX"})
    return Path(path)
