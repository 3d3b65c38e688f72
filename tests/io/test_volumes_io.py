"""3-D exports: hyperstack TIFF with voxel size, 3-D measurements, CTC 3-D result validity."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_sam2.io.ctc import save_ctc, save_ctc_ground_truth
from napari_sam2.io.measurements import save_measurements_csv
from napari_sam2.io.volumes import measure_volumes, read_voxel_size, save_labels_hyperstack
from napari_sam2.train.zstack import make_zstack_movie


def test_hyperstack_keeps_axes_and_voxel_size(tmp_path):
    lab = np.zeros((3, 4, 10, 12), np.uint16)
    lab[1, 1:3, 2:5, 3:7] = 7
    path = save_labels_hyperstack(tmp_path / "l.tif", lab, voxel_size=(2.0, 0.25, 0.5))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and tif.series[0].axes == "TZYX"
        assert tif.imagej_metadata["frames"] == 3 and tif.imagej_metadata["slices"] == 4
        np.testing.assert_array_equal(tif.asarray(), lab)
    assert read_voxel_size(path) == pytest.approx((2.0, 0.25, 0.5))
    zyx = save_labels_hyperstack(tmp_path / "z.tif", lab[1])
    with tifffile.TiffFile(zyx) as tif:
        assert tif.series[0].axes == "ZYX"
    assert read_voxel_size(zyx) is None  # uncalibrated
    with pytest.raises(ValueError, match="0..65535"):
        save_labels_hyperstack(tmp_path / "big.tif", lab.astype(np.int32) * 10000)
    with pytest.raises(ValueError, match="voxel_size must be"):
        save_labels_hyperstack(tmp_path / "bad.tif", lab, voxel_size=(1.0, 0.0, 1.0))


def test_voxel_size_from_an_imagej_movie(tmp_path):
    path = tmp_path / "m.tif"
    tifffile.imwrite(
        path,
        np.zeros((2, 5, 8, 8), np.uint8),
        imagej=True,
        resolution=(4.0, 4.0),
        metadata={"axes": "TZYX", "spacing": 1.5, "unit": "um"},
    )
    assert read_voxel_size(path) == pytest.approx((1.5, 0.25, 0.25))


def test_measure_volumes_volume_and_z_centroid(tmp_path):
    lab = np.zeros((2, 6, 8, 8), np.uint16)
    lab[0, 1:4, 2:4, 2:4] = 3  # 3 x 2 x 2 = 12 voxels, z centre 2
    lab[1, 3:6, 2:4, 2:4] = 3  # z centre 4
    table = measure_volumes(lab, voxel_size=(2.0, 0.5, 0.5))
    assert table["frame"].tolist() == [0, 1] and table["obj_id"].tolist() == [3, 3]
    assert table["voxels"].tolist() == [12, 12]
    np.testing.assert_allclose(table["volume_um3"], [6.0, 6.0])
    np.testing.assert_allclose(table["z_centroid"], [2.0, 4.0])
    np.testing.assert_allclose(table["z_centroid_um"], [4.0, 8.0])
    one = measure_volumes(lab[0])  # a z-stack is timepoint 0
    assert one["voxels"].tolist() == [12] and "volume_um3" not in one
    out = save_measurements_csv(tmp_path / "m.csv", table)
    assert out.read_text().splitlines()[0].split(",")[-4:] == [
        "volume_um3",
        "z_centroid_um",
        "y_centroid_um",
        "x_centroid_um",
    ]


def test_ctc_3d_result_is_valid_and_scores_one(tmp_path):
    ctc_metrics = pytest.importorskip("ctc_metrics")
    movie = make_zstack_movie((12, 48, 48), frames=5, count=2, radius=(8.0, 9.0), seed=2)
    gt = save_ctc_ground_truth(tmp_path / "01_GT", movie.labels, movie.lineage)
    res = save_ctc(tmp_path / "01_RES", movie.labels, movie.lineage)
    with tifffile.TiffFile(res / "mask000.tif") as tif:
        assert tif.asarray().shape == (12, 48, 48)  # one 3-D mask per timepoint
    assert int(ctc_metrics.validate_sequence(str(res), threads=1)["Valid"]) == 1
    scores = ctc_metrics.evaluate_sequence(str(res), str(gt), metrics=["TRA", "SEG"], threads=1)
    assert scores["TRA"] == pytest.approx(1.0) and scores["SEG"] == pytest.approx(1.0)
