"""``mix_config``: scans between the ``default`` and ``hard`` presets (the shipped model's training distribution)."""

import pytest

from nmc_assets.beamline.defaults import MIX_GROUPS, PRESETS, mix_config
from nmc_assets.beamline.render import RenderParams
from nmc_assets.beamline.simulate import ScanConfig

HARD = PRESETS["hard"]


def test_ends_are_the_presets():
    zero, pos = mix_config(7, t=0.0)
    assert pos == {g: 0.0 for g in MIX_GROUPS}
    assert zero == ScanConfig(seed=7)  # every knob at the default's
    one, _ = mix_config(7, t=1.0, shape=(32, 64, 64))
    assert one.render == HARD["render"] and one.shape == (32, 64, 64)
    assert one.target_solid_fraction == pytest.approx(HARD["target_solid_fraction"]) and one.overlap == pytest.approx(HARD["overlap"])
    assert one.damage_override.mean == pytest.approx(HARD["damage_override"].mean)
    assert one.damage_override.max == pytest.approx(HARD["damage_override"].max)


def test_positions_interpolate_each_group_on_its_own():
    cfg, _ = mix_config(1, t={"contrast": 0.5})
    d, h = RenderParams(), HARD["render"]
    assert cfg.render.phase_cbd == pytest.approx((d.phase_cbd + h.phase_cbd) / 2)
    assert cfg.render.noise_sd == d.noise_sd and cfg.target_solid_fraction is None and cfg.damage_override is None
    cfg, _ = mix_config(1, t={"noise": 0.25})
    assert cfg.render.noise_sd == pytest.approx(d.noise_sd + 0.25 * (h.noise_sd - d.noise_sd))
    assert cfg.render.phase_cbd == d.phase_cbd


def test_drawn_positions_are_seeded_and_in_range():
    a, pa = mix_config(1015)
    b, pb = mix_config(1015)
    _, pc = mix_config(1016)
    assert a == b and pa == pb and pa != pc
    assert set(pa) == set(MIX_GROUPS) and all(0 <= v <= 1 for v in pa.values())
    lo, hi = sorted((RenderParams().phase_cbd, HARD["render"].phase_cbd))
    assert lo <= a.render.phase_cbd <= hi and a.seed == 1015


def test_bad_positions_raise():
    with pytest.raises(ValueError, match="unknown mix groups"):
        mix_config(1, t={"colour": 0.5})
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        mix_config(1, t=1.5)
