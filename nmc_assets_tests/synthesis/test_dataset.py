import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nmc_assets.particles.shell import ShellParams
from nmc_assets.synthesis.dataset import generate_dataset, publish, readme_python_example, verify_sha256sums

SHELL = ShellParams(mean_diameter_um=5.0, size_sigma=0.1, min_diameter_um=4.0, max_diameter_um=6.0)


@pytest.fixture(scope="module")
def release(tmp_path_factory, reference_params):
    root = tmp_path_factory.mktemp("ds")
    out = generate_dataset(root / "particles", SHELL, reference_params, n_particles=3, grid_size=32, seed=5, provenance={"checkpoint_sha256": "0" * 64})
    dest = publish(root / "particles", root / "published")
    return out, dest


def test_generated_particles_have_grains_and_descriptors(release):
    out, dest = release
    parts = pd.read_parquet(dest / "particles.parquet")
    grains = pd.read_parquet(dest / "grains.parquet")
    assert len(parts) == 3 and out["particles_per_second"] > 0
    assert (parts["n_grains"] > 5).all()
    assert parts["sphericity"].between(0.5, 1.05).all()
    assert parts["equivalent_diameter_um"].between(3.5, 6.5).all()
    assert set(grains["particle_id"]) == {0, 1, 2}
    assert grains["radial_cos"].between(0, 1).all()


def test_published_checksums_verify_and_detect_tampering(release, tmp_path):
    import shutil

    _, dest = release
    assert dest.name.startswith("nmc-virtual-particles-v")
    assert verify_sha256sums(dest) == []
    copy = tmp_path / "copy"
    shutil.copytree(dest, copy)
    (copy / "params.json").write_text("{}")
    assert verify_sha256sums(copy) == ["params.json"]
    text = (dest / "README.md").read_text()
    assert "CC-BY-4.0" in text and "2407.05333" in text


def test_readme_loading_example_runs(release):
    _, dest = release
    code = readme_python_example((dest / "README.md").read_text())
    res = subprocess.run([sys.executable, "-c", code], cwd=dest, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "3 particles" in res.stdout


def test_same_seed_same_bytes(release, tmp_path, reference_params):
    _, dest = release
    generate_dataset(tmp_path / "particles", SHELL, reference_params, n_particles=3, grid_size=32, seed=5, provenance={"checkpoint_sha256": "0" * 64})
    again = publish(tmp_path / "particles", tmp_path / "published")
    assert again.name == dest.name
    assert (again / "SHA256SUMS").read_bytes() == (dest / "SHA256SUMS").read_bytes()
    generate_dataset(tmp_path / "other", SHELL, reference_params, n_particles=3, grid_size=32, seed=6)
    assert (tmp_path / "other" / "particles.parquet").read_bytes() != (dest / "particles.parquet").read_bytes()


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_particles"):
        generate_dataset("/tmp/never", SHELL, None, n_particles=0, grid_size=32, seed=0)


def test_release_volumes_are_valid_ome_zarr_label_images(release):
    import json

    from nmc_assets.ngff import image_paths, validate
    from nmc_assets.storage import open_zarr_group, read_zarr

    _, dest = release
    found = image_paths(dest)
    assert [p.relative_to(dest).as_posix() for p in found] == [f"volumes.zarr/particle_{i:05d}" for i in range(3)]
    voxel = json.loads((dest / "params.json").read_text())["voxel_size_um"]
    parts = pd.read_parquet(dest / "particles.parquet")
    for path, (_, row) in zip(found, parts.iterrows()):
        assert type(validate(path)).__name__ == "ImageLabel"
        ome = open_zarr_group(path).attrs["ome"]
        assert ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] == pytest.approx([voxel] * 3)
        labels = read_zarr(path)
        assert labels.shape == (32, 32, 32) and labels.dtype == np.uint16
        assert len(np.unique(labels[labels > 0])) == row["n_grains"] and row["file"] == path.relative_to(dest).as_posix()
