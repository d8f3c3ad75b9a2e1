"""Session fixtures: a tiny StarDist model trained once on small constructed scans (~20-40 s on 2 cores).

Registered suite-wide by ``nmc_assets_tests/conftest.py`` (the segmentation and the Dagster-layer tests use it).
"""

import pytest

from .constructed import phantom_scan

TINY_SHAPE = (48, 96, 96)


@pytest.fixture(scope="session")
def phantom_scans():
    """Two training scans and one validation scan (different seeds), 0.25 um voxels (no binning)."""
    return {name: phantom_scan(TINY_SHAPE, n=40, seed=seed) for name, seed in (("a", 0), ("b", 1), ("v", 5))}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, phantom_scans):
    """(model_dir, meta): a 16-ray, depth-2, 8-filter StarDist2D trained for 375 steps on patches of 64 px."""
    pytest.importorskip("stardist")
    from nmc_assets.segmentation.model import TrainConfig, train_stardist
    from nmc_assets.segmentation.training_set import scan_slices

    def flat(sets):
        return sum((s.images for s in sets), []), sum((s.labels for s in sets), [])

    train = []
    for name in ("a", "b"):
        img, lab = phantom_scans[name]
        train += scan_slices(img, lab, 0.25, name, working_pixel_um=0.25, slice_step=3)
    img, lab = phantom_scans["v"]
    val = scan_slices(img, lab, 0.25, "v", working_pixel_um=0.25, slice_step=6)
    cfg = TrainConfig(n_rays=16, unet_depth=2, unet_filters=8, patch_size=64, epochs=15, steps_per_epoch=25, max_val_images=8, working_pixel_um=0.25)
    out = tmp_path_factory.mktemp("models") / "stardist" / "tiny"
    meta = train_stardist(*flat(train), *flat(val), out, cfg, extra_meta={"made_by": "test fixture"})
    return out, meta


@pytest.fixture(scope="session")
def dask_cluster():
    """A local Dask cluster of 2 worker processes with 1 thread each (started once per session)."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40)
    yield cluster
    cluster.close()
