import math

import pytest
import torch

from nmc_assets.particles.grains import GrainParams
from nmc_assets.synthesis.parameter_space import DEFAULT_LEARNED, LEARNABLE, from_unconstrained, generic_start, to_unconstrained, torch_params


def test_parameter_transforms_roundtrip(reference_params):
    z = to_unconstrained(reference_params)
    assert z.tolist() == pytest.approx([0.0, 0.8, math.log(15.0)])
    back = from_unconstrained(z, generic_start(), DEFAULT_LEARNED)
    for k in DEFAULT_LEARNED:
        assert getattr(back, k) == pytest.approx(getattr(reference_params, k))
    assert back.weight_spread == 0.05 and back.elongation_log_sd == 0.3  # the others come from the base
    every = to_unconstrained(reference_params, LEARNABLE)
    for k in LEARNABLE:
        assert getattr(from_unconstrained(every, GrainParams(), LEARNABLE), k) == pytest.approx(getattr(reference_params, k))
    assert from_unconstrained([math.log(200.0)], reference_params, ("alignment_spread_deg",)).alignment_spread_deg == 80.0


def test_torch_params_are_differentiable_and_match_the_numpy_map(reference_params):
    z = torch.tensor(to_unconstrained(reference_params, LEARNABLE) + 0.1, requires_grad=True)
    tp = torch_params(z, reference_params, LEARNABLE)
    p = from_unconstrained(z.detach().numpy(), reference_params, LEARNABLE)
    for k in LEARNABLE:
        assert float(tp[k].detach()) == pytest.approx(getattr(p, k), rel=1e-12)
    sum(tp.values()).backward()
    assert (z.grad > 0).all()
    # parameters not learned: the base's values, as constants
    tp2 = torch_params(torch.zeros(1, dtype=torch.float32), reference_params, ("density_per_um3",))
    assert tp2["density_per_um3"].item() == 1.0 and tp2["weight_spread"].dtype == torch.float32
    assert tp2["weight_spread"].item() == pytest.approx(0.1) and not tp2["weight_spread"].requires_grad


def test_generic_start_is_the_former_default_initial_guess():
    """The GAN's default initial guess (stored in configs and hashed into calibration versions) keeps its
    values and keys."""
    assert generic_start().to_dict() == {"density_per_um3": 1.0, "elongation_log_mean": 1.1489211909640482,
                                         "elongation_log_sd": 0.3, "alignment_spread_deg": 22.5, "weight_spread": 0.05,
                                         "hard_core_fraction": 0.5, "mean_elongation": 3.2999999999999994}
