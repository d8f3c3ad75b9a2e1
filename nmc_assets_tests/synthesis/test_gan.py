import numpy as np
import pytest
import torch

from nmc_assets.particles.grains import GrainParams
from nmc_assets.synthesis.gan import GanConfig, StereologicalGan
from nmc_assets.synthesis.quality import calibration_report
from nmc_assets.synthesis.sections import descriptor_samples, descriptor_scales, normalised_distance

def _tiny(steps: int, **kw) -> GanConfig:
    """The default calibration (start 3.45 / 0.35 / density 0.5 / alignment 22.5), small and short."""
    kw.setdefault("batch_size", 4)
    kw.setdefault("critic_warmup", 5)
    kw.setdefault("critic_channels", 8)
    kw.setdefault("canvas_px", 56)
    return GanConfig(steps=steps, **kw)


class DensityOnly(GanConfig):
    """Learns only the grain density (fast to check)."""

    learned = ("density_per_um3",)


def _distance(sections, params: GrainParams) -> float:
    """Normalised descriptor distance to the observed sections, mean over two generated samples of 64."""
    from nmc_assets.synthesis.section_geometry import SectionGeometry, sections_like_observed

    obs = descriptor_samples(sections)
    gens = [descriptor_samples(sections_like_observed(params, SectionGeometry.fit(sections), 64, seed=s)) for s in (98, 99)]
    return float(np.mean([normalised_distance(obs, g, descriptor_scales(obs)) for g in gens]))


@pytest.mark.slow
def test_short_calibration_lowers_descriptor_distance(observed_sections, reference_params):
    # short and CPU-cheap: only the grain density is learned, from a start 50 % below the reference
    start_params = GrainParams(**{**reference_params.__dict__, "density_per_um3": 0.5})
    cfg = DensityOnly.starting_at(start_params, steps=30, lr_params=0.05, batch_size=8, canvas_px=56)
    gan = StereologicalGan(observed_sections, cfg)
    logs = []
    gan.train(log=logs.append)
    assert len(gan.history) == 30 and logs and "density" in logs[-1]
    assert gan.current_params().density_per_um3 > 0.6
    start, end = _distance(observed_sections, start_params), _distance(observed_sections, gan.current_params())
    assert end < 0.85 * start, (start, end, gan.current_params())
    # the quality report runs on the result and names every descriptor
    rep = calibration_report(observed_sections[:8], gan.calibrated_params(), None, n_pairs=1)
    assert set(rep["distance_ratio"]) == {"area_um2", "aspect_ratio", "radial_angle_deg", "grains_per_section"}


def test_checkpoint_resume_continues_exactly(observed_sections, tmp_path):
    straight = StereologicalGan(observed_sections, _tiny(4))
    straight.train()
    first = StereologicalGan(observed_sections, _tiny(4))
    first.train(stop_at=2)
    ckpt = first.save(tmp_path / "checkpoint.pt")
    state = torch.load(ckpt, weights_only=False)
    assert {"z", "critic", "opt_params", "opt_critic", "history", "config"} <= set(state)
    assert GanConfig.from_dict(state["config"]) == _tiny(4)
    resumed = StereologicalGan.resume(ckpt, observed_sections, _tiny(4))
    assert resumed.step == 2
    resumed.train()
    assert resumed.step == 4 and len(resumed.history) == 4
    np.testing.assert_allclose(resumed.z.detach().numpy(), straight.z.detach().numpy(), rtol=1e-5)


def test_checkpoint_written_before_the_parameter_merge_resumes(observed_sections, tmp_path):
    """Checkpoints and params.json store the parameter dicts of the former GrainParams (six fields
    plus mean_elongation): they load, and today's dicts have the same keys (calibration versions hash them)."""
    old_initial = {"density_per_um3": 0.5, "elongation_log_mean": 1.1771148988274895, "elongation_log_sd": 0.35,
                   "alignment_spread_deg": 22.5, "weight_spread": 0.1, "hard_core_fraction": 0.5, "mean_elongation": 3.4499999999999984}
    assert GanConfig().initial_params().to_dict() == old_initial
    gan = StereologicalGan(observed_sections, _tiny(2))
    gan.train()
    state = gan.state()
    # the configuration as checkpoints stored it before the settings were flattened
    for key in [k for k in state["config"] if k.startswith("initial_")] + ["weight_spread", "hard_core_fraction"]:
        state["config"].pop(key)
    state["config"].update(initial=old_initial, learned=["density_per_um3", "elongation_log_mean", "alignment_spread_deg"],
                           stats_descriptors=["radial_angle_deg"], stats_pool_batches=0)
    state["calibrated_params"] = dict(old_initial, density_per_um3=0.61)
    torch.save(state, tmp_path / "checkpoint.pt")
    resumed = StereologicalGan.resume(tmp_path / "checkpoint.pt", observed_sections)
    assert resumed.step == 2
    assert resumed.base.to_dict() == pytest.approx(GrainParams.from_dict(old_initial).to_dict(), rel=1e-12)
    assert GrainParams.from_dict(torch.load(tmp_path / "checkpoint.pt", weights_only=False)["calibrated_params"]).density_per_um3 == 0.61
    resumed.train()  # the stored config's two steps are done: nothing to run
    assert resumed.step == 2 and set(resumed.calibrated_params().to_dict()) == set(old_initial)


def test_bad_checkpoint_is_reported(observed_sections, tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="checkpoint.pt"):
        StereologicalGan.resume(bad, observed_sections, _tiny(2))
    with pytest.raises(ValueError, match="no observed sections"):
        StereologicalGan([], _tiny(2))


def test_statistics_term_is_logged_and_zero_weight_leaves_the_critic_alone(observed_sections):
    gan = StereologicalGan(observed_sections, _tiny(3, lr_params=0.04, stats_weight=0.1))
    gan.train()
    np.testing.assert_allclose(gan.opt_params.param_groups[0]["lr"], 0.04, rtol=1e-9)
    assert all(h["loss_statistics"] is not None and h["loss_statistics"] > 0 for h in gan.history)
    critic_only = StereologicalGan(observed_sections, _tiny(1, stats_weight=0.0))
    assert critic_only.critic_mask.tolist() == [1.0, 1.0, 1.0] and critic_only.stats_mask.tolist() == [0.0, 0.0, 0.0]
    critic_only.train()
    assert critic_only.stats_target is None and critic_only.history[0]["loss_statistics"] is None

    class UnknownDescriptor(StereologicalGan):
        stats_descriptors = ("grain_colour",)

    with pytest.raises(ValueError, match="unknown descriptors"):
        UnknownDescriptor(observed_sections, _tiny(1, stats_weight=0.1))


def test_same_seed_gives_byte_identical_checkpoints(observed_sections, tmp_path):
    # the published dataset records the checkpoint hash: no wall-clock value may enter the checkpoint
    paths = []
    for name in ("a", "b"):
        gan = StereologicalGan(observed_sections, _tiny(2, seed=3))
        gan.train()
        assert all("seconds" not in h for h in gan.history)
        paths.append(gan.save(tmp_path / name / "checkpoint.pt"))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    other = StereologicalGan(observed_sections, _tiny(2, seed=4))
    other.train()
    assert other.save(tmp_path / "c" / "checkpoint.pt").read_bytes() != paths[0].read_bytes()


def test_radial_channels_give_the_critic_the_radial_direction(observed_sections):
    from nmc_assets.synthesis.gan import radial_field

    field = radial_field(8)
    assert field.shape == (2, 8, 8)
    # cos 2psi is +1 along the row axis through the centre and -1 along the column axis
    assert field[0, 0, 3] > 0.9 and field[0, 3, 0] < -0.9
    # on the diagonals sin 2psi = +-1
    assert field[1, 0, 0] > 0.99 and field[1, 0, 7] < -0.99
    gan = StereologicalGan(observed_sections, _tiny(1, radial_channels=True))
    real = gan.real_batch()
    assert real.shape[1] == 4
    # outside the particle the extra channels are 0, inside they are the field
    np.testing.assert_allclose(real[:, 2].numpy(), (real[:, 1] * gan.field[0]).numpy())
    gan.train()
    assert len(gan.history) == 1 and gan.fake_batch(0.5).shape == real.shape


def test_parameters_follow_the_critic_or_the_statistics_term_as_configured(observed_sections):
    gan = StereologicalGan(observed_sections, _tiny(1, stats_weight=2.0))
    assert gan.names == ("density_per_um3", "elongation_log_mean", "alignment_spread_deg")
    a, b = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 20.0, 30.0])
    grad = gan._combined_gradient((gan.z * a).sum(), (gan.z * b).sum())
    np.testing.assert_allclose(grad.numpy(), [1.0, 2.0, 2.0 * 30.0])
    gan.train()
    assert gan.history[0]["loss_statistics"] is not None
    with_log_sd = StereologicalGan(observed_sections, _tiny(1, learn_elongation_log_sd=True))
    assert with_log_sd.names[-1] == "elongation_log_sd" and with_log_sd.critic_mask.tolist() == [1.0, 1.0, 0.0, 1.0]

    class OnlyDensityFollowsTheCritic(StereologicalGan):
        critic_params = ("density_per_um3",)

    class UnknownParameter(StereologicalGan):
        critic_params = ("grain_colour",)

    with pytest.raises(ValueError, match="follow neither"):
        OnlyDensityFollowsTheCritic(observed_sections, _tiny(1))
    with pytest.raises(ValueError, match="unknown parameters"):
        UnknownParameter(observed_sections, _tiny(1))


def test_a_run_to_a_physical_bound_stops_with_a_message(observed_sections):
    from nmc_assets.synthesis.convergence import CalibrationDiverged
    from nmc_assets.synthesis.gan import GanConfig, StereologicalGan
    from nmc_assets.synthesis.parameter_space import PHYSICAL_BOUNDS

    gan = StereologicalGan(observed_sections[:4], GanConfig(steps=4, batch_size=2, critic_warmup=0, canvas_px=32, lr_params=40.0))
    with pytest.raises(CalibrationDiverged, match="reached its physical bound|ran away") as err:
        gan.train()
    assert err.value.diagnostics["problems"]
    p = gan.current_params().to_dict()
    for k in ("density_per_um3", "alignment_spread_deg"):
        assert PHYSICAL_BOUNDS[k][0] * (1 - 1e-5) <= p[k] <= PHYSICAL_BOUNDS[k][1] * (1 + 1e-5)  # float32
