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
            "grain_model": {"config": {"steps": steps, "batch_size": 4, "checkpoint_every": 1, "interval_sections": 16}},
            "synthetic_particles": {"config": {"n_particles": 2, "grid_size": 32}},
            "grain_model_calibration_quality": {"config": {"n_pairs": 1, "equivalence_log_sd_delta": 0.1, "equivalence_sections": 4}},
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
    assert all(0 < r["alignment_spread_deg"] <= 80 for r in band)
    # the moment refinement: its estimate is published, the GAN's kept, 90 % intervals around it
    iv = params["intervals"]
    assert set(iv["intervals"]) == {"density_per_um3", "elongation_log_mean", "elongation_log_sd", "alignment_spread_deg", "mean_elongation"}
    for k, (lo, hi) in iv["intervals"].items():
        assert lo <= iv["estimate"][k] <= hi
    from nmc_assets.synthesis.intervals import architecture_verdict

    used = iv["estimate"] if architecture_verdict(iv)["model_fits"] else params["gan_params"]  # a misfit keeps the GAN's
    assert params["grain_params"]["density_per_um3"] == used["density_per_um3"]
    assert params["gan_params"]["elongation_log_sd"] == 0.35 and "converged" in params["convergence"]
    meta = checks[0].metadata
    assert meta["intervals_90"].value == iv["intervals"]
    assert meta["architecture"].value in ("radial", "equiaxed", "not radial", "undetermined")
    assert set(meta["intervals_cover_reference"].value) == set(iv["intervals"])
    assert "90 % intervals" in checks[0].description
    releases = list(layout.published.glob("nmc-virtual-particles-v*"))
    assert len(releases) == 1 and verify_sha256sums(releases[0]) == []
    card = (releases[0] / "README.md").read_text()
    lo, hi = iv["intervals"]["alignment_spread_deg"]
    assert f"- `alignment_spread_deg`: {lo:.4g} - {hi:.4g}" in card
    assert json.loads((releases[0] / "params.json").read_text())["grain_params_intervals_90"] == iv["intervals"]
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


def test_a_diverging_calibration_fails_with_its_reason_and_publishes_nothing(tmp_path, monkeypatch):
    from nmc_assets.paths import DataLayout
    from nmc_assets.synthesis.convergence import CalibrationDiverged
    from nmc_assets.synthesis.gan import StereologicalGan

    def runaway(self, **kw):
        self.history = [{"step": 1, "mean_elongation": 9.0, "density_per_um3": 1.0, "alignment_spread_deg": 20.0,
                         "elongation_log_sd": 0.35, "wasserstein_estimate": 8.0, "tau_rel": 1.0, "loss_generator": 0.0,
                         "gradient_penalty": 0.0, "loss_statistics": 0.0, "weight_spread": 0.1, "z": [0.0, 2.0, 3.0]}]
        raise CalibrationDiverged("grain-model calibration stopped at step 1/2: mean elongation ran away", {"problems": ["x"]})

    monkeypatch.setattr(StereologicalGan, "train", runaway)
    res = dg.materialize([S.grain_sections, S.grain_model], run_config={"ops": {"grain_sections": {"config": {"n_sections": 4}}}},
                         instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
                         resources={"data_root": DataRootResource(data_dir=str(tmp_path)), "device": DeviceResource(device="cpu")})
    assert not res.success
    failure = [e for e in res.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "mean elongation ran away" in failure.step_failure_data.error.message or "mean elongation ran away" in str(failure.step_failure_data.user_failure_data)
    layout = DataLayout.from_path(tmp_path)
    assert not layout.grain_model_latest.exists()
    assert list((layout.models / "grain_model").glob("*/diverged.pt"))
