"""Session fixture: a small data root as ``make demo`` leaves it, for the notebook and the viewer.

Two constructed scans (10 and 50 cycles) with OME-Zarr tomograms and fused labels and their measured
features, two feature-only scans drawn from the synthetic damage law (enough particles for the damage
model), the fitted damage model and drivers, and the DuckDB catalog over all of it (~15 s on 2 cores).
"""

import numpy as np
import pytest

SHAPE = (40, 64, 96)
VOXEL_UM = 0.25


def constructed_scan(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels uint32, intensity float32): six balls inside the volume, cavities of growing size (damage)."""
    from nmc_assets_tests.features.constructed import ball_mask, phase_image

    labels = np.zeros(SHAPE, np.uint32)
    solid = np.zeros(SHAPE, bool)
    rng = np.random.default_rng(seed)
    for k, (cy, cx) in enumerate([(18, 18), (18, 48), (18, 78), (46, 18), (46, 48), (46, 78)], start=1):
        r = 9 + int(rng.integers(0, 3))
        ball = ball_mask(SHAPE, (20, cy, cx), r)
        labels[ball] = k
        solid |= ball & ~ball_mask(SHAPE, (20, cy, cx), (k - 1) * r // 8)
    return labels, phase_image(solid, blur=0.7, noise=0.02, seed=seed)


@pytest.fixture(scope="session")
def small_data_root(tmp_path_factory):
    """A ``DataLayout`` of a small, complete data root (see the module docstring)."""
    from nmc_assets.analytics.damage_model import DamageModelConfig
    from nmc_assets.analytics.pipeline import build_damage_drivers, build_damage_model
    from nmc_assets.analytics.synthetic import synthetic_features
    from nmc_assets.features import compute_particle_features
    from nmc_assets.features.catalog import build_catalog
    from nmc_assets.features.table import write_features
    from nmc_assets.ngff import write_image
    from nmc_assets.paths import DataLayout

    layout = DataLayout.from_path(tmp_path_factory.mktemp("small_root"))
    for scan, cycles, seed in (("scan10", 10, 1), ("scan50", 50, 2)):
        labels, image = constructed_scan(seed)
        attrs = {"scan_id": scan, "voxel_size_um": VOXEL_UM, "cycles": cycles}
        write_image(layout.tomogram(scan), image, VOXEL_UM, attrs=attrs, chunks=(16, 32, 32), min_side=32)
        write_image(layout.fused_labels(scan), labels, VOXEL_UM, labels=True, chunks=(16, 32, 32), min_side=32,
                    attrs={**attrs, "n_particles": int(labels.max())}, source_image=f"../../tomograms/{scan}.zarr")
        df = compute_particle_features(labels, image, VOXEL_UM, scan_id=scan, cycles=cycles)
        write_features(df, layout.particle_features(scan))
    synthetic = synthetic_features(n_per_condition=120, seed=4)
    for scan, part in synthetic.groupby("scan_id"):
        write_features(part, layout.particle_features(scan))
    config = DamageModelConfig(n_trees=10, n_seeds=1, n_subsamples=1, subsample_size=100, cv_folds=2, min_particles=20)
    build_damage_model(layout.particle_features_glob, layout.analytics, config)
    build_damage_drivers(layout.analytics)
    build_catalog(layout)
    return layout
