"""Accuracy against the virtual beamline's ground truth (labels + per-particle truth table)."""

from __future__ import annotations

import numpy as np
import pytest

from nmc_assets.features import compute_particle_features

simulate = pytest.importorskip("nmc_assets.beamline.simulate", reason="virtual beamline not available")


@pytest.fixture(scope="session", params=[10, 50], ids=["10cycles", "50cycles"])
def virtual_scan(request):
    config = simulate.ScanConfig(shape=(48, 112, 112), voxel_size_um=0.2, cycles=request.param, seed=11)
    return simulate.simulate_scan(config)


def test_features_match_simulator_truth(virtual_scan):
    scan = virtual_scan
    voxel = scan.sidecar["voxel_size_um"]
    df = compute_particle_features(
        scan.labels, scan.image.astype(np.float32), voxel, scan_id="virtual", cycles=scan.sidecar["cycles"]
    ).set_index("particle_id")
    truth = scan.truth.set_index("particle_id")
    assert sorted(df.index) == sorted(truth.index)
    truth = truth.loc[df.index]
    assert len(df) >= 10
    volume_rel_err = np.abs(df["volume_um3"] / truth["volume_um3"] - 1)
    damage_abs_err = np.abs(df["damage"] - truth["damage"])
    assert np.median(volume_rel_err) <= 0.03
    assert np.median(damage_abs_err) <= 0.02
    # centroids agree to a voxel, contact tracks the simulator's face-adjacency contact
    for axis in ("x_um", "y_um", "z_um"):
        assert np.median(np.abs(df[axis] - truth[axis])) < voxel
    assert np.corrcoef(df["contact"], truth["contact"])[0, 1] > 0.6
    assert df.loc[truth["contact"] == 0, "contact"].max() <= 0.05
