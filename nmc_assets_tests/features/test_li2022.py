"""The ``li2022`` feature set equals the slow, readable port of ``getAllFeatures.m`` (li2022_port.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nmc_assets.features import FeatureSettings, compute_particle_features
from nmc_assets.features.li2022 import li2022_raw, solid_labels
from nmc_assets_tests.features import li2022_port

simulate = pytest.importorskip("nmc_assets.beamline.simulate", reason="virtual beamline not available")

VOXEL = 0.5  # um: radiusCube = 20 voxels


@pytest.fixture(scope="module")
def virtual():
    """Ground-truth labels of a small virtual scan; the solid = labels with cracks and voids removed."""
    scan = simulate.simulate_scan(simulate.ScanConfig(shape=(48, 128, 112), voxel_size_um=VOXEL, cycles=50, seed=11))
    return scan.labels, scan.image.astype(np.float32)


def test_li2022_equals_the_port_on_a_virtual_scan(virtual):
    labels, image = virtual
    thr = float(np.median(image[labels > 0]))  # a solid with cracks and voids in every particle
    fast = li2022_raw(labels, image, VOXEL, thr).set_index("label")
    port = pd.DataFrame(li2022_port.get_all_features(solid_labels(labels, image, thr), image, VOXEL)).set_index("label")
    assert len(fast) >= 200
    assert fast.index.tolist() == port.index.tolist()
    for col in ("SurfOuter", "SurfInner", "Volume", "touches_border"):  # counts: exact
        assert (fast[col] == port[col]).all(), col
    for col in port.columns.drop(["SurfOuter", "SurfInner", "Volume", "touches_border"]):
        np.testing.assert_allclose(fast[col].to_numpy(float), port[col].to_numpy(float), rtol=1e-6, atol=1e-9,
                                   err_msg=col)
    # the scene exercises the fixed bugs: non-zero neighbour spreads, particles at the upper faces
    assert (fast["locSphericity"] > 0).all() and (fast["locVolume"] > 0).all()
    assert fast["touches_border"].sum() >= 10 and (fast["PDensity"] <= 1).all()


def test_li2022_selectable_and_in_column_units(virtual):
    labels, image = virtual
    cut = labels[:24, :56, :56]
    img = image[:24, :56, :56]
    thr = float(np.median(img[cut > 0]))
    df = compute_particle_features(cut, img, VOXEL, scan_id="v", cycles=50, solid_threshold=thr,
                                   settings=FeatureSettings(feature_set="li2022"))
    raw = li2022_raw(cut, img, VOXEL, thr)
    assert df.attrs["feature_set"] == "li2022"
    np.testing.assert_allclose(df["volume_um3"], raw["Volume"] * VOXEL**3)
    np.testing.assert_allclose(df["surface_outer_um2"], raw["SurfOuter"] * VOXEL**2)
    np.testing.assert_allclose(df["sphericity_std"], raw["locSphericity"])


def test_unknown_feature_set_is_a_clear_error():
    with pytest.raises(ValueError, match="feature_set must be one of"):
        FeatureSettings(feature_set="li2021")


def test_li2022_without_solid_voxels_gives_an_empty_table():
    from nmc_assets.features import FEATURE_COLUMNS
    from nmc_assets_tests.features.constructed import ball_mask, phase_image

    labels = ball_mask((30, 30, 30), (15, 15, 15), 8).astype(np.uint16)
    df = compute_particle_features(labels, phase_image(labels > 0), 0.5, scan_id="a", cycles=None,
                                   solid_threshold=5.0, settings=FeatureSettings(feature_set="li2022"))
    assert df.empty and list(df.columns) == FEATURE_COLUMNS


def test_blockwise_path_refuses_li2022(tmp_path):
    from nmc_assets.features.blockwise import compute_particle_features_zarr

    with pytest.raises(ValueError, match="'li2022' is computed on whole volumes"):
        compute_particle_features_zarr(tmp_path / "l.zarr", tmp_path / "t.zarr", 0.5, scan_id="x", cycles=None,
                                       settings=FeatureSettings(feature_set="li2022"))
