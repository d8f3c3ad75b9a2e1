"""Tiny StarDist model (session fixture) -> view maps -> fused labels, scored against ground truth."""

import numpy as np
import pytest
import zarr

from nmc_assets.segmentation.metrics import accuracy_summary
from nmc_assets.segmentation.model import load_stardist, read_model_meta
from nmc_assets.segmentation.pipeline import FusionParams, fused_labels, view_probabilities
from nmc_assets.storage import open_zarr, open_zarr_group

pytestmark = pytest.mark.slow


def test_tiny_model_folder_and_validation_ap(tiny_model):
    model_dir, meta = tiny_model
    for f in ("config.json", "weights_best.h5", "thresholds.json", "nmc_model.json"):
        assert (model_dir / f).exists()
    stored = read_model_meta(model_dir)
    assert stored["working_pixel_um"] == 0.25 and stored["train_config"]["n_rays"] == 16
    assert 0 < stored["thresholds"]["prob"] < 1
    assert stored["val_ap50"] > 0.5, stored  # 2D AP on the held-out scan's slices
    assert not (model_dir.parent / "_stardist_build").exists()


def test_view_maps_and_fused_labels_match_truth(tiny_model, phantom_scans, tmp_path):
    model_dir, _ = tiny_model
    img, truth = phantom_scans["v"]  # never trained on
    lo, hi = np.percentile(img, [1, 99.8])
    info = view_probabilities(model_dir, img, 0.25, tmp_path / "v.zarr", normalize=(lo, hi), attrs={"scan_id": "v"})
    root = zarr.open_group(str(tmp_path / "v.zarr"), mode="r")
    for view in ("xy", "xz", "yz"):
        for c in ("prob", "dist"):
            a = open_zarr(tmp_path / "v.zarr" / f"{c}_{view}")  # level 0 of an OME-Zarr image
            assert a.shape == img.shape and a.dtype == np.float16
    prob = np.asarray(open_zarr(tmp_path / "v.zarr" / "prob_xy")[...], np.float32)
    assert prob[truth > 0].mean() > prob[truth == 0].mean() + 0.2
    assert info["bin_factor"] == 1 and root.attrs["scan_id"] == "v"

    params = FusionParams(fg_threshold=0.2, h=0.1)
    labels, finfo = fused_labels(tmp_path / "v.zarr", tmp_path / "fused.zarr", params, attrs={"scan_id": "v"})
    stored = open_zarr(tmp_path / "fused.zarr")
    assert stored.dtype == np.uint32 and stored.shape == truth.shape
    assert stored.attrs["n_particles"] == finfo["n_particles"] == int(labels.max()) > 5
    fused = accuracy_summary(truth, np.asarray(stored[...]))
    assert fused["ap50"] > 0.35, fused  # modest bar for a 375-step, 34k-parameter model
    assert fused["mean_matched_iou"] > 0.6


def test_binned_prediction_upsamples_to_full_grid(tiny_model, phantom_scans, tmp_path):
    """A scan at half the working pixel size is binned 2x for prediction; labels come back at full size."""
    from scipy import ndimage

    model_dir, _ = tiny_model
    img, truth = phantom_scans["v"]
    img2 = ndimage.zoom(img[:24, :48, :48], 2, order=1)
    info = view_probabilities(model_dir, img2, 0.125, tmp_path / "v2.zarr", normalize=tuple(np.percentile(img2, [1, 99.8])))
    assert info["bin_factor"] == 2 and tuple(info["binned_shape"]) == (24, 48, 48)
    # the binned maps sit on the full-resolution grid: scale 2 voxels, first centre half a voxel in
    ds = open_zarr_group(tmp_path / "v2.zarr" / "prob_xz").attrs["ome"]["multiscales"][0]["datasets"][0]
    assert ds["coordinateTransformations"] == [{"type": "scale", "scale": [0.25] * 3},
                                               {"type": "translation", "translation": [0.0625] * 3}]
    labels, _ = fused_labels(tmp_path / "v2.zarr", tmp_path / "f2.zarr", FusionParams(fg_threshold=0.2, h=0.1))
    assert open_zarr(tmp_path / "f2.zarr").shape == img2.shape
    assert labels.shape == (24, 48, 48)


def test_missing_model_files_raise(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="weights_best.h5"):
        load_stardist(tmp_path / "m")
