"""The synthesis group through Dagster (tiny configs, in-process, no fused labels -> shell prior)."""

import json

import dagster as dg
import pytest

from nmc_assets.defs import synthesis as S
from nmc_assets.defs.resources import DataRootResource, DeviceResource
from nmc_assets.synthesis.dataset import verify_sha256sums

ASSETS = [S.grain_sections, S.shell_model, S.grain_model, S.synthetic_particles, S.published_dataset]


def _run(tmp_path, steps: int):
    run_config = {
        "ops": {
            "grain_sections": {"config": {"n_sections": 8}},
            "grain_model": {"config": {"steps": steps, "batch_size": 4, "checkpoint_every": 1}},
            "synthetic_particles": {"config": {"n_particles": 2, "grid_size": 32}},
            "grain_model_calibration_quality": {"config": {"n_pairs": 1, "equivalence_sections": 4}},
        }
    }
    return dg.materialize(
        ASSETS + [S.calibration_quality],
        run_config=run_config,
        instance=dg.DagsterInstance.ephemeral(),
        resources={"data_root": DataRootResource(data_dir=str(tmp_path)), "device": DeviceResource(device="cpu")},
    )


@pytest.mark.slow
def test_synthesis_group_materializes_and_resumes(tmp_path):
    from nmc_assets.paths import DataLayout

    res = _run(tmp_path, steps=2)
    assert res.success
    layout = DataLayout.from_path(tmp_path)
    shell = json.loads((layout.synthesis / "shell_model.json").read_text())
    assert shell["source"] == "prior"
    version = json.loads((layout.models / "grain_model" / "latest.json").read_text())["version"]
    folder = layout.grain_model(version)
    params = json.loads((folder / "params.json").read_text())
    assert params["steps"] == 2 and (folder / "checkpoint.pt").exists()
    checks = res.get_asset_check_evaluations()
    assert len(checks) == 1 and "relative_error" in checks[0].metadata
    band = checks[0].metadata["alignment_given_log_sd"].value
    assert [round(r["elongation_log_sd"] - params["grain_params"]["elongation_log_sd"], 6) for r in band] == [-0.1, 0.1]
    assert all(0 < r["alignment_spread_deg"] <= 80 for r in band) and "given the elongation log-sd" in checks[0].description
    releases = list(layout.published.glob("nmc-virtual-particles-v*"))
    assert len(releases) == 1 and verify_sha256sums(releases[0]) == []
    # the same calibration with more steps resumes the checkpoint (same version folder)
    res2 = _run(tmp_path, steps=3)
    assert res2.success
    params2 = json.loads((folder / "params.json").read_text())
    assert params2["steps"] == 3 and params2["version"] == version
    logs = [e.message for e in res2.all_events if e.event_type_value == "ENGINE_EVENT"]  # noqa: F841
    import torch

    assert len(torch.load(folder / "checkpoint.pt", weights_only=False)["history"]) == 3


def test_user_sections_are_used(tmp_path):
    import numpy as np
    import tifffile

    from nmc_assets.paths import DataLayout

    layout = DataLayout.from_path(tmp_path)
    layout.cross_sections.mkdir(parents=True)
    lab = np.zeros((20, 20), np.uint16)
    lab[2:18, 2:10] = 1
    lab[2:18, 10:18] = 2
    tifffile.imwrite(layout.cross_sections / "ebsd1.tif", lab)
    (layout.cross_sections / "ebsd1.json").write_text(json.dumps({"pixel_size_um": 0.05}))
    res = dg.materialize([S.grain_sections], instance=dg.DagsterInstance.ephemeral(), resources={"data_root": DataRootResource(data_dir=str(tmp_path))})
    assert res.success
    out = layout.synthesis / "grain_sections"
    assert json.loads((out / "manifest.json").read_text())["source"] == "user"
    assert not (out / "reference_params.json").exists()
    (layout.cross_sections / "ebsd1.json").unlink()
    with pytest.raises(Exception, match="missing sidecar"):
        dg.materialize([S.grain_sections], instance=dg.DagsterInstance.ephemeral(), resources={"data_root": DataRootResource(data_dir=str(tmp_path))})
