import numpy as np
import pytest

from nmc_assets.particles.shell import ShellParams, sample_shell, shell_mask
from nmc_assets.synthesis.shell_fit import fit_power_law, fit_shell_params, particle_shapes, read_label_volume


@pytest.fixture(scope="module")
def particle_volume():
    """16 particles of known ShellParams, each in its own block of one label volume (0.25 um voxels),
    plus one particle cut by the volume border."""
    true = ShellParams(mean_diameter_um=8.0, size_sigma=0.2, amplitude=0.02, exponent=2.5)
    rng = np.random.default_rng(0)
    side = 48
    vol = np.zeros((side, 4 * side, 4 * side + side // 2), np.uint32)
    k = 0
    for i in range(4):
        for j in range(4):
            sh = sample_shell(rng, true)
            m = shell_mask(sh, (side,) * 3, 0.25, ((side - 1) / 2,) * 3)
            k += 1
            vol[:, i * side : (i + 1) * side, j * side : (j + 1) * side][m] = k
    vol[10:20, 10:20, -5:] = 99  # touches the border: skipped
    return true, vol


def test_shell_fit_recovers_simulator_parameters(particle_volume):
    true, vol = particle_volume
    shapes = particle_shapes(vol, 0.25, lmax=10, n_directions=500, min_voxels=200)
    assert shapes["skipped_border"] >= 1
    assert len(shapes["equivalent_diameter_um"]) >= 14  # particles reaching the volume faces are skipped too
    params, summary = fit_shell_params([shapes])
    assert summary["source"] == "fitted" and summary["n_particles"] == len(shapes["equivalent_diameter_um"])
    # tolerances (about 15 particles): median diameter 5 %, size sigma 0.08 absolute, amplitude 35 %, exponent 0.5
    assert params.mean_diameter_um == pytest.approx(true.mean_diameter_um, rel=0.05)
    assert abs(params.size_sigma - true.size_sigma) < 0.08
    assert params.amplitude == pytest.approx(true.amplitude, rel=0.35)
    assert params.exponent == pytest.approx(true.exponent, abs=0.5)


def test_prior_when_no_particles():
    params, summary = fit_shell_params([])
    assert summary["source"] == "prior" and params == ShellParams()
    with pytest.raises(ValueError, match="positive spectrum"):
        fit_power_law(np.zeros(5))


def test_read_label_volume_errors(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "s.labels.tif", np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match="s.labels.tif.*3D"):
        read_label_volume(tmp_path / "s.labels.tif")
