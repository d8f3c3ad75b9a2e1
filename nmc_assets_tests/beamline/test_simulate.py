import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from nmc_assets.beamline.cli import main as cli_main
from nmc_assets.beamline.damage import DamageLaw
from nmc_assets.beamline.simulate import DEFAULT_GRAIN_PARAMS, SIMULATOR_VERSION, ScanConfig, simulate_scan, write_scan
from nmc_assets.particles.grains import GrainParams

from .conftest import SMALL

TRUTH_COLUMNS = {"particle_id", "x_um", "y_um", "z_um", "volume_um3", "solid_volume_um3", "damage",
                 "equivalent_diameter_um", "contact", "cycles", "n_grains", "touches_border",
                 "law_diameter_um", "law_z_norm", "law_contact", "law_cycles", "damage_target"}


def test_files_and_sidecar(written_scan, small_scan):
    image = tifffile.imread(written_scan["volume"])
    labels = tifffile.imread(written_scan["labels"])
    assert image.dtype == np.uint8 and image.shape == SMALL["shape"]
    assert labels.dtype in (np.uint16, np.uint32) and labels.shape == SMALL["shape"]
    with tifffile.TiffFile(written_scan["volume"]) as tif:
        assert tif.imagej_metadata["images"] == SMALL["shape"][0]  # truncation is detectable
    side = json.loads(written_scan["sidecar"].read_text())
    assert side["voxel_size_um"] == 0.2 and side["cycles"] == 50 and side["beamline"] == "virtual"
    assert side["thickness_axis"] == "z" and side["shape"] == list(SMALL["shape"])
    assert side["seed"] == 1 and side["simulator_version"] == SIMULATOR_VERSION
    assert side["scan_id"] == "vs_c50" and side["n_particles"] == int(labels.max())
    assert set(side["damage_law"]) >= {"b0", "b_size_per_um", "b_depth", "b_contact", "cycles_exponent", "formula"}
    # 8-bit image uses the range like the real slice, particles bright
    assert 100 < np.median(image[labels > 0]) and np.median(image[labels == 0]) < np.median(image[labels > 0]) - 40


def test_labels_and_truth_agree(written_scan):
    labels = tifffile.imread(written_scan["labels"])
    truth = pd.read_parquet(written_scan["truth"])
    assert TRUTH_COLUMNS <= set(truth.columns)
    n = int(labels.max())
    assert n >= 15
    assert truth.particle_id.tolist() == list(range(1, n + 1))
    assert set(np.unique(labels)) == set(range(n + 1))
    vs = 0.2
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    np.testing.assert_allclose(truth.volume_um3, counts * vs ** 3, rtol=1e-9)
    zz, yy, xx = np.nonzero(labels == 5)
    row = truth.set_index("particle_id").loc[5]
    assert row.z_um == pytest.approx(zz.mean() * vs) and row.x_um == pytest.approx(xx.mean() * vs)
    assert row.y_um == pytest.approx(yy.mean() * vs)
    assert np.all(truth.solid_volume_um3 <= truth.volume_um3)
    np.testing.assert_allclose(truth.damage, 1 - truth.solid_volume_um3 / truth.volume_um3, atol=1e-12)
    np.testing.assert_allclose(truth.equivalent_diameter_um, (6 * truth.volume_um3 / np.pi) ** (1 / 3))
    border = np.zeros(n + 1, bool)
    for a in range(3):
        for f in (0, -1):
            border[np.take(labels, f, axis=a)] = True
    assert truth.touches_border.tolist() == border[1:].tolist()
    assert truth.n_grains.min() >= 1


def test_solid_fraction_and_contacts(small_scan):
    side = small_scan.sidecar
    assert 0.45 <= side["solid_fraction"] <= 0.6
    assert 0.45 <= side["particle_fraction"] <= 0.65
    truth = small_scan.truth
    assert (truth.contact > 0).mean() > 0.5  # most particles touch a neighbour
    assert truth.contact.max() < 0.8
    d = truth.equivalent_diameter_um[~truth.touches_border]
    assert len(d) == 0 or (d.max() <= 12.5 and d.min() >= 1.5)
    assert 4.5 <= truth.law_diameter_um.min() and truth.law_diameter_um.max() <= 12.0


def test_damage_follows_the_law(small_scan):
    t = small_scan.truth
    law = DamageLaw()
    assert t.damage.min() >= 0 and t.damage.max() <= law.damage_max + 0.03
    big = t.volume_um3 > 30
    assert np.abs(t.damage - t.damage_target)[big].max() < 0.03  # cracking meets the target
    expected = law.expected(t.law_diameter_um, t.law_z_norm, t.law_contact, 50)
    assert np.corrcoef(t.damage, expected)[0, 1] > 0.8
    # each driver carries the sign of its coefficient (least squares on the realised damage)
    x = np.column_stack([np.ones(len(t)), t.law_diameter_um, t.law_z_norm, t.law_contact])
    coef = np.linalg.lstsq(x, t.damage, rcond=None)[0]
    assert coef[1] > 0 and coef[2] > 0 and coef[3] > 0


def test_damage_law_unit():
    law = DamageLaw()
    e = law.expected([6, 8, 10], [0.5, 0.5, 0.5], [0.1, 0.1, 0.1], 50)
    assert np.all(np.diff(e) > 0)
    assert law.expected(8, 1.0, 0.1, 50) > law.expected(8, 0.0, 0.1, 50)
    assert law.expected(8, 0.5, 0.3, 50) > law.expected(8, 0.5, 0.0, 50)
    assert law.expected(8, 0.5, 0.1, 10) == pytest.approx(law.expected(8, 0.5, 0.1, 50) * np.sqrt(0.2))
    s, noise = law.sample(np.random.default_rng(0), np.full(5000, 8.0), np.full(5000, 0.5), np.full(5000, 0.1), 50)
    assert noise.std() == pytest.approx(law.noise_sd, rel=0.05)
    with pytest.raises(ValueError):
        law.cycles_factor(-1)


def test_fewer_cycles_less_damage(small_scan):
    c10 = simulate_scan(ScanConfig(cycles=10, seed=1, **SMALL))
    # same seed: same packing, only the cycles factor differs
    assert c10.truth.volume_um3.tolist() == small_scan.truth.volume_um3.tolist()
    assert c10.truth.damage.mean() < 0.7 * small_scan.truth.damage.mean()


def test_same_seed_same_bytes(tmp_path, written_scan):
    again = write_scan(simulate_scan(ScanConfig(cycles=50, seed=1, **SMALL)), tmp_path, "vs_c50")
    for key, path in written_scan.items():
        assert path.read_bytes() == again[key].read_bytes(), key


def test_fixed_seed_scan_equals_the_recorded_one(tmp_path):
    """A tiny scan (24 x 64 x 64 at 0.25 um, seed 2): image, labels and grain counts as recorded at commit
    c09933e, so that the default scans, the StarDist model trained on them and the recorded figures stay valid;
    its sidecar as written at 96578d2 (before the presets: default scans record no preset knobs)."""
    scan = simulate_scan(ScanConfig(cycles=10, seed=2, shape=(24, 64, 64), voxel_size_um=0.25))
    sidecar = write_scan(scan, tmp_path, "tiny")["sidecar"]
    assert hashlib.sha256(sidecar.read_bytes()).hexdigest() == "b105aff61dade593ee2a29bf6e49aa2a0f30ed45584b92f755833efdc23d95f5"
    assert hashlib.sha256(scan.image.tobytes()).hexdigest() == "4702fbd06dbd441b11b512cc1e458f6a0f57669556f2a8be2e923d178180bd84"
    assert scan.labels.dtype == np.uint16
    assert hashlib.sha256(scan.labels.tobytes()).hexdigest() == "25fc21cdb011d55ecd7875a0b3c0c29521ad6e2a10af1ff04aae776abc2f5ad9"
    assert scan.truth.n_grains.tolist() == [21, 40, 23, 23, 32, 21, 11, 40, 11, 31, 21, 27, 18]
    np.testing.assert_allclose(scan.truth.damage[:5], [0.061001262095, 0.033352923891, 0.018446349701, 0.048647729206,
                                                       0.045007451565], atol=1e-12)


def test_sidecar_grain_params_keep_their_names_and_load_back(small_scan):
    gp = small_scan.sidecar["grain_params"]
    assert gp == {"number_density_per_um3": 0.15, "hard_core_fraction": 0.5, "elongation_log_mean": 0.7,
                  "elongation_log_sd": 0.2, "alignment_spread_deg": 15.0, "weight_spread": 0.1, "core_density_ratio": 1.0}
    assert GrainParams.from_dict(gp) == DEFAULT_GRAIN_PARAMS


def test_cli_and_bad_input(tmp_path, capsys):
    rc = cli_main(["simulate", "--out", str(tmp_path), "--shape", "24", "64", "64", "--voxel-size", "0.25",
                   "--cycles", "10", "--seed", "2", "--scan-id", "tiny"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scan_id"] == "tiny"
    assert {p.name for p in tmp_path.iterdir()} == {"tiny.tif", "tiny.json", "tiny.labels.tif", "tiny.truth.parquet"}
    assert cli_main(["simulate", "--out", str(tmp_path), "--shape", "24", "64", "64", "--scan-id", "bad id"]) == 2
    assert "invalid scan id" in capsys.readouterr().err
    with pytest.raises(ValueError, match="shape"):
        ScanConfig(shape=(4, 64, 64))
    with pytest.raises(ValueError, match="voxel_size_um"):
        ScanConfig(voxel_size_um=0)


def test_write_default_scans_skips_up_to_date(tmp_path, monkeypatch):
    from nmc_assets.beamline import defaults

    small = {"t_c10": ScanConfig(cycles=10, seed=4, shape=(24, 64, 64), voxel_size_um=0.25)}
    monkeypatch.setattr(defaults, "DEFAULT_SCANS", small)
    [vol] = defaults.write_default_scans(tmp_path)
    assert vol == tmp_path / "t_c10.tif" and vol.exists()
    mtime = vol.stat().st_mtime_ns
    assert defaults.write_default_scans(tmp_path) == [vol] and vol.stat().st_mtime_ns == mtime  # skipped
    side = tmp_path / "t_c10.json"
    meta = json.loads(side.read_text())
    side.write_text(json.dumps({**meta, "simulator_version": "0.0.1"}))
    defaults.write_default_scans(tmp_path)  # stale version: regenerated
    assert json.loads(side.read_text())["simulator_version"] == SIMULATOR_VERSION


def test_default_scan_configs():
    from nmc_assets.beamline.defaults import DEFAULT_SCANS

    assert set(DEFAULT_SCANS) == {"virtual_c10", "virtual_c50"}
    assert {c.cycles for c in DEFAULT_SCANS.values()} == {10, 50}
    assert len({c.seed for c in DEFAULT_SCANS.values()}) == 2
