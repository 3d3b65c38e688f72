"""Every writer and reader of label arrays refuses bad labels with the one check's messages."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_sam2.io.ctc import save_ctc
from napari_sam2.io.measurements import measure
from napari_sam2.io.seed_labels import seed_label_image
from napari_sam2.io.tiff import load_labels_tiff
from napari_sam2.io.tracks import tracks_from_labels
from napari_sam2.io.volumes import save_labels_hyperstack
from napari_sam2.video.lineage import track_divisions


class _Lazy:
    """A lazy (T, Y, X) array-like: dtype and shape, values only by frame."""

    def __init__(self, arr):
        self._arr, self.dtype, self.shape = arr, arr.dtype, arr.shape

    def __getitem__(self, t):
        return self._arr[t]


def test_writers_share_the_messages(tmp_path):
    floats = np.zeros((2, 8, 8), np.float32)
    calls = {
        "ctc": lambda a: save_ctc(tmp_path / "ctc", a),
        "tracks": tracks_from_labels,
        "measure": measure,  # a 2-D image counts as one frame
        "hyperstack": lambda a: save_labels_hyperstack(tmp_path / "h.tif", a),
        "divisions": track_divisions,
    }
    for what, call in calls.items():
        with pytest.raises(ValueError, match=r"must hold integer labels .* got float32"):
            call(floats)
        if what != "measure":
            with pytest.raises(ValueError, match=r"dimensions, got shape \(4, 2, 8, 8, 1\)"):
                call(np.zeros((4, 2, 8, 8, 1), np.uint8))


def test_lazy_labels_are_checked_frame_by_frame():
    lab = np.zeros((3, 8, 8), np.int32)
    lab[0, 2:5, 2:5] = 1
    lab[2, 1, 1] = -4
    for call in (tracks_from_labels, measure):
        with pytest.raises(ValueError, match="labels of frame 2 holds negative label values"):
            call(_Lazy(lab))
    rows = measure(_Lazy(lab[:2]))
    assert list(rows["obj_id"]) == [1] and list(rows["area"]) == [9]


def test_hyperstack_refuses_negative_ids(tmp_path):
    lab = np.zeros((2, 4, 4), np.int16)
    lab[0, 0, 0] = -1
    with pytest.raises(ValueError, match="hyperstack labels holds negative label values"):
        save_labels_hyperstack(tmp_path / "n.tif", lab)
    assert not (tmp_path / "n.tif").exists()


def test_label_tiff_reading_uses_the_rule(tmp_path):
    neg = tmp_path / "neg.tif"
    tifffile.imwrite(neg, np.array([[0, -2], [1, 1]], np.int16))
    with pytest.raises(ValueError, match="neg.tif holds negative label values"):
        load_labels_tiff(neg)
    with pytest.raises(ValueError, match="cannot read neg.tif .*negative"):
        seed_label_image(neg)
    flt = tmp_path / "whole.tif"
    tifffile.imwrite(flt, np.array([[0, 3], [70000, 1]], np.float32))
    out = load_labels_tiff(flt)
    assert out.dtype == np.uint32 and out.tolist() == [[0, 3], [70000, 1]]
    mask = tmp_path / "mask.tif"
    tifffile.imwrite(mask, np.array([[0, 1], [1, 0]], bool))
    assert load_labels_tiff(mask).dtype == np.uint8
