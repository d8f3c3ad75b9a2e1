"""OME-Zarr images (nmc_assets.ngff): pyramid shapes and transforms, coarsening, metadata that
ome-zarr-models validates, and readers that open level 0 of new images and old plain arrays alike."""

import numpy as np
import pytest
import zarr

from nmc_assets import ngff
from nmc_assets.storage import open_zarr, open_zarr_levels, read_zarr, write_zarr, zarr_attrs


def test_level_shapes_halve_until_the_largest_side_fits():
    assert ngff.level_shapes((492, 1324, 1985)) == [(492, 1324, 1985), (246, 662, 992), (123, 331, 496), (61, 165, 248)]
    assert ngff.level_shapes((48, 96, 96)) == [(48, 96, 96)]
    assert ngff.level_shapes((1, 40, 40), min_side=16) == [(1, 40, 40), (1, 20, 20), (1, 10, 10)]
    assert ngff.level_shapes((300, 10, 10), min_side=None) == [(300, 10, 10)]


def test_transforms_keep_voxel_centres():
    (s0, t0), (s1, t1), (s2, t2) = ngff.level_transforms((64, 64, 64), 0.1, "mean", min_side=16)
    assert s0 == [0.1] * 3 and t0 == [0.0] * 3
    assert s1 == pytest.approx([0.2] * 3) and t1 == pytest.approx([0.05] * 3)
    assert s2 == pytest.approx([0.4] * 3) and t2 == pytest.approx([0.15] * 3)  # centre of voxels 0..3 at 0.1 um
    nearest = ngff.level_transforms((64, 64, 64), 0.1, "nearest", min_side=16)
    assert [t for _, t in nearest] == [[0.0] * 3] * 3


def test_coarsen_mean_rounds_half_up_and_nearest_takes_the_first_voxel():
    block = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    mean = ngff.coarsen(block, (2, 2, 2), "mean")
    assert mean.shape == (1, 2, 2) and mean.dtype == np.uint8
    # cell (0, 0, 0): voxels 0, 1, 5, 6, 20, 21, 25, 26 -> mean 13.0
    assert mean[0, 0, 0] == 13 and mean[0, 1, 1] == int(np.floor(block[:2, 2:4, 2:4].mean() + 0.5))
    big = np.full((2, 2, 2), 255, np.uint8)
    assert ngff.coarsen(big, (2, 2, 2), "mean")[0, 0, 0] == 255  # no overflow
    signed = np.array([-3, -2] * 4, np.int16).reshape(2, 2, 2)  # mean -2.5 -> -2 (half up)
    assert ngff.coarsen(signed, (2, 2, 2), "mean")[0, 0, 0] == -2
    f16 = np.linspace(0, 1, 8, dtype=np.float16).reshape(2, 2, 2)
    assert ngff.coarsen(f16, (2, 2, 2), "mean").dtype == np.float16
    labels = np.arange(4 * 4 * 4, dtype=np.uint32).reshape(4, 4, 4)
    assert np.array_equal(ngff.coarsen(labels, (2, 2, 2), "nearest"), labels[::2, ::2, ::2])
    with pytest.raises(ValueError, match="unknown downsampling method"):
        ngff.coarsen(labels, (2, 2, 2), "mode")


@pytest.mark.parametrize("labels", [False, True])
def test_written_image_validates_and_levels_match_coarsening(tmp_path, labels):
    rng = np.random.default_rng(0)
    vol = (rng.integers(0, 7, (40, 70, 90)) if labels else rng.integers(0, 256, (40, 70, 90))).astype(np.uint32 if labels else np.uint8)
    out = ngff.write_image(tmp_path / "v.zarr", vol, 0.07, labels=labels, chunks=(8, 16, 16), min_side=25,
                           attrs={"scan_id": "v", "voxel_size_um": 0.07}, source_image="../../tomograms/v.zarr" if labels else None)
    model = ngff.validate(out)
    ome = zarr.open_group(str(out), mode="r").attrs["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"] and {a["unit"] for a in ms["axes"]} == {"micrometer"}
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]
    assert ms["datasets"][2]["coordinateTransformations"][0]["scale"] == pytest.approx([0.28] * 3)
    if labels:
        assert type(model).__name__ == "ImageLabel"
        label_meta = ome["image-label"]
        assert label_meta["source"]["image"] == "../../tomograms/v.zarr"
        assert label_meta["colors"][0] == {"label-value": 0, "rgba": [0, 0, 0, 0]} and len(label_meta["colors"]) == 7
        counts = np.bincount(vol.ravel(), minlength=7)
        assert [p["voxels"] for p in label_meta["properties"]] == counts.tolist()
        assert label_meta["properties"][3]["volume_um3"] == pytest.approx(counts[3] * 0.07**3)
    levels = open_zarr_levels(out)
    assert [lv.shape for lv in levels] == [(40, 70, 90), (20, 35, 45), (10, 17, 22)]
    method = "nearest" if labels else "mean"
    want1 = ngff.coarsen(vol, (2, 2, 2), method)
    np.testing.assert_array_equal(levels[1][...], want1)
    np.testing.assert_array_equal(levels[2][...], ngff.coarsen(want1, (2, 2, 2), method))
    # readers: level 0 and the project attributes, as before
    np.testing.assert_array_equal(read_zarr(out), vol)
    assert zarr_attrs(out) == {"scan_id": "v", "voxel_size_um": 0.07}
    assert open_zarr(out, level=-1).shape == (10, 17, 22)


def test_old_plain_arrays_keep_loading_and_bad_groups_fail_with_the_path(tmp_path):
    old = write_zarr(tmp_path / "old.zarr", np.arange(24, dtype=np.uint16).reshape(2, 3, 4), attrs={"n": 3})
    assert read_zarr(old).shape == (2, 3, 4) and zarr_attrs(old) == {"n": 3}
    assert len(open_zarr_levels(old)) == 1
    with pytest.raises(ValueError, match="only level 0"):
        open_zarr(old, level=1)
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=3)
    with pytest.raises(ValueError, match=r"g\.zarr.*not an image"):
        open_zarr(tmp_path / "g.zarr")
    with pytest.raises(ValueError, match=r"g\.zarr: not a valid OME-Zarr"):
        ngff.validate(tmp_path / "g.zarr")
    img = ngff.write_image(tmp_path / "i.zarr", np.zeros((4, 4, 4), np.uint8), 1.0)
    with pytest.raises(ValueError, match="level 3 does not exist"):
        open_zarr(img, level=3)


def test_level1_streamed_from_aligned_slabs_equals_the_computed_one(tmp_path):
    vol = np.random.default_rng(1).integers(0, 65535, (37, 50, 44)).astype(np.uint16)
    writer = ngff.ImageWriter(tmp_path / "s", vol.shape, vol.dtype, (8, 16, 16), 0.5, min_side=10)
    for z0 in range(0, 37, 8):
        region = (slice(z0, min(37, z0 + 8)), slice(0, 50), slice(0, 44))
        writer.level0[region] = vol[region]
        writer.write_level1(region, vol[region])
    with pytest.raises(ValueError, match="not aligned"):
        writer.write_level1((slice(3, 9), slice(0, 50), slice(0, 44)), vol[3:9])
    writer.finish({"k": 1})
    whole = ngff.write_image(tmp_path / "w.zarr", vol, 0.5, min_side=10)
    for a, b in zip(open_zarr_levels(tmp_path / "s"), open_zarr_levels(whole)):
        np.testing.assert_array_equal(a[...], b[...])
    ngff.validate(tmp_path / "s")


def test_reserved_attribute_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'ome' is reserved"):
        ngff.write_image(tmp_path / "x.zarr", np.zeros((4, 4, 4), np.uint8), 1.0, attrs={"ome": 1})
    assert not (tmp_path / "x.zarr").exists()
