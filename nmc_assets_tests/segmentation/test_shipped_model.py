"""The default model shipped in the repository (data/models/stardist/nmc_default)."""

import json

from nmc_assets.segmentation.model import DEFAULT_MODEL_NAME, read_model_meta, shipped_model_dir
from nmc_assets.segmentation.scaling import DEFAULT_WORKING_PIXEL_UM


def test_shipped_default_model_is_complete_and_documented():
    d = shipped_model_dir(DEFAULT_MODEL_NAME)
    meta = read_model_meta(d)  # raises when a StarDist file is missing
    assert meta["working_pixel_um"] == DEFAULT_WORKING_PIXEL_UM
    assert meta["val_ap50"] > 0.6 and set(meta["val_scans"]).isdisjoint(meta["train_scans"])
    thresholds = json.loads((d / "thresholds.json").read_text())
    assert 0 < thresholds["prob"] < 1 and 0 < thresholds["nms"] < 1
    config = json.loads((d / "config.json").read_text())
    assert config["n_rays"] == meta["train_config"]["n_rays"] and config["n_channel_in"] == 1
    readme = (d / "README.md").read_text()
    assert "make_default_model" in readme and "val" in readme.lower()
    assert (d / "weights_best.h5").stat().st_size < 20 * 2**20  # small enough to ship
