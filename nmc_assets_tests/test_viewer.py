"""``nmc-assets view``: the scene gathered from a data root (no napari needed), the CLI's errors, and a
headless screenshot where napari and an X server (xvfb-run) are available."""

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nmc_assets.cli import main
from nmc_assets.viewer import particle_caption, scan_scene


def test_scene_has_pyramids_scale_and_features(small_data_root):
    scene = scan_scene(small_data_root, "scan50", particle=6)
    assert [lv.shape for lv in scene.image_levels] == [(40, 64, 96), (20, 32, 48), (10, 16, 24)]
    assert [lv.shape for lv in scene.label_levels] == [(40, 64, 96), (20, 32, 48), (10, 16, 24)]
    assert scene.scale == (0.25, 0.25, 0.25)
    lo, hi = scene.contrast_limits
    coarse = np.asarray(scene.image_levels[-1][...])
    assert (lo, hi) == (pytest.approx(float(coarse.min())), pytest.approx(float(coarse.max())))
    table = pd.read_parquet(small_data_root.particle_features("scan50"))
    assert sorted(scene.features["index"]) == sorted(table["particle_id"]) == [1, 2, 3, 4, 5, 6]
    row = table.set_index("particle_id").loc[6]
    assert scene.center_um == pytest.approx((row["z_um"], row["y_um"], row["x_um"]))
    # the centre is inside particle 6 in the labels' voxel grid
    z, y, x = (int(round(c / 0.25)) for c in scene.center_um)
    assert int(scene.label_levels[0][z, y, x]) == 6
    caption = particle_caption(scene)
    assert caption.startswith("scan50, particle 6") and f"damage {row['damage']:.3g}" in caption


def test_scene_errors_name_the_missing_thing(small_data_root):
    with pytest.raises(FileNotFoundError, match=r"tomograms/nope\.zarr"):
        scan_scene(small_data_root, "nope")
    with pytest.raises(ValueError, match="has no particle 99"):
        scan_scene(small_data_root, "scan10", particle=99)


def test_cli_reports_bad_scan_and_missing_napari(small_data_root, monkeypatch, capsys):
    assert main(["view", "nope", "--data-dir", str(small_data_root.root)]) == 2
    assert "no tomogram for scan 'nope'" in capsys.readouterr().err
    assert main(["view", "../x", "--data-dir", str(small_data_root.root)]) == 2
    monkeypatch.setitem(sys.modules, "napari", None)  # import napari raises ImportError
    assert main(["view", "scan10", "--data-dir", str(small_data_root.root)]) == 3
    assert 'pip install -e ".[viewer]"' in capsys.readouterr().err


def test_headless_screenshot(small_data_root, tmp_path):
    pytest.importorskip("napari")
    if shutil.which("xvfb-run") is None:
        pytest.skip("needs xvfb-run (napari renders with OpenGL)")
    out = tmp_path / "shot.png"
    res = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1400x1000x24", sys.executable, "-m", "nmc_assets.cli", "view",
                          "scan50", "--particle", "6", "--data-dir", str(small_data_root.root), "--screenshot", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[0] > 400 and img.shape[1] > 600 and img.std() > 10


def test_hovering_a_particle_shows_its_features(small_data_root):
    """What napari's status bar shows at a particle's centroid (um): its label value and features."""
    components = pytest.importorskip("napari.components")
    scene = scan_scene(small_data_root, "scan10", particle=3)
    viewer = components.ViewerModel()  # the viewer's model, no window
    layer = viewer.add_labels(scene.label_levels, multiscale=True, features=scene.features, scale=scene.scale)
    viewer.dims.set_point(0, scene.center_um[0])  # the slice through the particle's centroid
    status = layer.get_status(scene.center_um, world=True)["value"]
    row = scene.features.set_index("index").loc[3]
    assert f"3; damage: {row['damage']:.3g}" in status and "volume_um3" in status  # "<level>, <label>; <features>"


def test_cli_without_a_display_says_how_to_run_headless(small_data_root, monkeypatch, capsys):
    pytest.importorskip("napari")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main(["view", "scan10", "--data-dir", str(small_data_root.root)]) == 3
    assert "xvfb-run" in capsys.readouterr().err
