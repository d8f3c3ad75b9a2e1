"""The law-recovery rule itself: passes on a law's drivers, fails when an unrelated attribute drives damage."""

import json

import pandas as pd
import pytest

from nmc_assets.analytics.damage_model import DamageModelConfig, drivers_table, fit_damage_models
from nmc_assets.analytics.synthetic import synthetic_features
from nmc_assets.analytics.validation import driver_recovery, law_recovery_report, virtual_scan_laws


def _table(condition, ranking):
    return pd.DataFrame({"condition": condition, "attribute": ranking, "rank": range(1, len(ranking) + 1)})


def test_rule_on_hand_made_rankings():
    good = _table("10", ["z_um", "volume_um3", "contact", "vs_ratio", "surface_outer_um2", "yaw_deg", "orien_iso"])
    r = driver_recovery(good, "10")
    # surface_outer_um2 (size's second column) takes no place: yaw_deg is 5th
    assert r["passed"] and r["group_ranks"] == {"size": 2, "depth": 1, "contact": 3} and r["best_unrelated_rank"] == 5
    both_size = _table("10", ["contact", "volume_um3", "surface_outer_um2", "z_um", "yaw_deg"])
    assert driver_recovery(both_size, "10")["group_ranks"] == {"size": 2, "depth": 3, "contact": 1}
    proxies = _table("10", ["z_um", "volume_um3", "vs_ratio", "sphericity", "rough_outer", "contact", "yaw_deg"])
    assert driver_recovery(proxies, "10")["passed"]  # size proxies may sit between the drivers
    late = _table("10", ["z_um", "volume_um3", "vs_ratio", "sphericity", "rough_outer", "p_density", "contact"])
    assert "contact" in driver_recovery(late, "10")["failures"][0]
    size_low = _table("10", ["z_um", "contact", "vs_ratio", "volume_um3", "yaw_deg"])
    assert driver_recovery(size_low, "10")["failures"] == ["driver group 'size' ranks 4 > top 3"]
    assert driver_recovery(size_low, "10", top_k=4)["passed"]
    noisy = _table("10", ["z_um", "yaw_deg", "volume_um3", "contact", "orien_iso"])
    r = driver_recovery(noisy, "10")
    assert not r["passed"] and "yaw_deg" in r["failures"][0]
    with pytest.raises(ValueError, match="condition '50' not in"):
        driver_recovery(good, "50")


def test_rule_fails_when_damage_follows_an_unrelated_attribute():
    table = synthetic_features(n_per_condition=200, seed=9)
    table["damage"] = 0.002 * table["yaw_deg"] + 0.4 + 0.002 * table.index.to_series().mod(7)
    results = fit_damage_models(table, DamageModelConfig(n_trees=20, n_seeds=1, n_subsamples=1, criterion="squared_error"))
    report = law_recovery_report(drivers_table(results))
    assert set(report["conditions"]) == {"10", "50"}
    assert report["passed"] is False
    assert report["conditions"]["10"]["ranking"][0] == "yaw_deg"


def test_virtual_scan_laws_reads_sidecars(tmp_path):
    (tmp_path / "v1.json").write_text(json.dumps({"cycles": 10, "damage_law": {"b0": 0.03}}))
    (tmp_path / "real.json").write_text(json.dumps({"cycles": 10}))
    (tmp_path / "broken.json").write_text("{not json")
    laws = virtual_scan_laws(tmp_path, ["v1", "real", "broken", "nosidecar"])
    assert laws == {"v1": {"b0": 0.03}, "real": None, "broken": None, "nosidecar": None}
