"""The shipped model's training scans (tools/make_default_model.py): unseen by every benchmark, valid configs."""

import importlib.util
from pathlib import Path

import pytest

from nmc_assets.beamline.defaults import PRESETS
from nmc_assets.segmentation.scaling import bin_factor_for

TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_default_model.py"
#: seeds of the benchmark scans: bench_segmentation / confidence 2001-2006, bench_hard and the confidence fit 3001-3004,
#: bench_voxel_size 3101-3109
BENCHMARK_SEEDS = set(range(2001, 2007)) | set(range(3001, 3005)) | set(range(3101, 3110))


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("make_default_model", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_training_seeds_are_unique_and_unseen_by_the_benchmarks(tool):
    seeds = [s[0] for s in tool.TRAIN_SCANS]
    assert len(seeds) == len(set(seeds)) == 30
    assert BENCHMARK_SEEDS.isdisjoint(seeds)
    ids = [tool.scan_id(*s) for s in tool.TRAIN_SCANS]
    assert len(set(ids)) == len(ids) and all(i.startswith("train_") for i in ids)


def test_training_scans_cover_both_presets_the_mix_and_other_bin_factors(tool):
    kinds = {s[2] for s in tool.TRAIN_SCANS}
    assert kinds == {"default", "hard", "mix"} and kinds - {"mix"} <= set(PRESETS)
    factors = {bin_factor_for(s[3]) for s in tool.TRAIN_SCANS}
    assert {2, 3, 4, 5} <= factors
    for spec in tool.TRAIN_SCANS[:1] + [s for s in tool.TRAIN_SCANS if s[2] == "mix"][:2]:
        cfg, pos = tool.scan_config(*spec)
        assert cfg.seed == spec[0] and cfg.cycles == spec[1] and cfg.voxel_size_um == spec[3] and cfg.shape == spec[4]
        assert (pos != {}) == (spec[2] == "mix")
