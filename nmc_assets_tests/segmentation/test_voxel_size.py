"""The shipped model holds when a scan's declared voxel size is off by +-20 % (issue 15 part 4).

A small virtual scan at 0.133 um (bin factor 3 to the 0.4-um working pixel) is segmented as if it were
0.8x, 1x and 1.2x that size: the binning then changes (4 / 3 / 3), so the model sees particles a third
smaller or as they are. On 23 particles one particle moves AP@0.5 by ~0.04, so this guard asks for
AP >= 0.9 at every declared size and at most two particles' worth (0.1) of change; the issue's 0.03 is
measured on more scans by ``benchmarks/bench_voxel_size.py`` (met there with the shipped model).
"""

import numpy as np
import pytest

from nmc_assets.beamline.defaults import preset_config
from nmc_assets.beamline.simulate import simulate_scan
from nmc_assets.ingest.readers import intensity_percentiles
from nmc_assets.segmentation.metrics import accuracy_summary
from nmc_assets.segmentation.model import DEFAULT_MODEL_NAME, shipped_model_dir
from nmc_assets.segmentation.pipeline import FusionParams, fused_labels, view_probabilities
from nmc_assets.storage import read_zarr

TRUE_VOXEL_UM = 0.133


@pytest.fixture(scope="module")
def small_scan():
    return simulate_scan(preset_config("default", shape=(48, 224, 224), voxel_size_um=TRUE_VOXEL_UM, cycles=50,
                                       seed=4242))


def segment(scan, declared_um: float, tmp_path) -> tuple[int, dict]:
    pct = intensity_percentiles(scan.image)
    views, labels = tmp_path / f"{declared_um}.views.zarr", tmp_path / f"{declared_um}.fused.zarr"
    params = FusionParams()
    info = view_probabilities(shipped_model_dir(DEFAULT_MODEL_NAME), scan.image, declared_um, views,
                              normalize=(pct["1"], pct["99.8"]))
    fused_labels(views, labels, params, intensity=scan.image, band_um=params.refine_band_um,
                 sigma_um=params.refine_sigma_um)
    return info["bin_factor"], accuracy_summary(scan.labels, read_zarr(labels))


def test_declared_voxel_size_off_by_20_percent_keeps_ap(small_scan, tmp_path):
    results = {f: segment(small_scan, TRUE_VOXEL_UM * f, tmp_path) for f in (0.8, 1.0, 1.2)}
    assert [results[f][0] for f in (0.8, 1.0, 1.2)] == [4, 3, 3]  # the model really sees another scale at 0.8x
    ap = {f: r[1]["ap50"] for f, r in results.items()}
    assert int(small_scan.labels.max()) >= 20
    assert ap[1.0] >= 0.9, ap
    assert min(ap.values()) >= 0.9, ap
    assert max(abs(ap[f] - ap[1.0]) for f in (0.8, 1.2)) <= 0.1, ap
    assert np.isfinite([r[1]["mean_matched_iou"] for r in results.values()]).all()
