"""The parts a VideoSession owns (model runner, label volume, model scale), the batched
``add_masks``, the prompt-region check and the one label-array check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import VideoSession
from napari_sam2.io.label_checks import check_labels
from napari_sam2.video._label_volume import LabelVolume
from napari_sam2.video._model_runner import ModelRunner
from napari_sam2.video._model_scale import ModelScale
from napari_sam2.video._sparse import MaskCrop
from napari_sam2.video.prompts import inside_region


def _disk(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r * r


# ---------------------------------------------------------------------- the session's parts


def test_session_owns_its_parts_and_inherits_nothing(model, movie):
    assert VideoSession.__mro__ == (VideoSession, object)
    s = VideoSession(model, movie, object_chunk_size=3, precision="fp32", workers=1)
    assert isinstance(s.runner, ModelRunner)
    assert isinstance(s.label_volume, LabelVolume)
    assert isinstance(s.scale, ModelScale)
    # settings, precision and the chunk size are the runner's: assigning them reaches it
    new = s.settings.replace(num_memory_frames=2)
    s.settings = new
    s.precision = "bf16"
    s.object_chunk_size = 7
    assert s.runner.settings is new and s.runner.precision == "bf16"
    assert s.runner.object_chunk_size == 7 and s.stats is s.runner.stats
    with pytest.raises(ValueError, match="precision"):
        s.precision = "fp16"
    assert s.precision == "bf16"


def test_runner_cache_follows_features_and_drop(model, movie):
    s = VideoSession(model, movie)
    s.features(3)
    s.features(np.int64(5))
    assert s.runner.cached_frames == [3, 5] and s.runner.is_cached(5)
    assert s.runner.cached_nbytes() > 0
    s.runner.drop_features(3)
    assert s.runner.cached_frames == [5]
    with pytest.raises(ValueError, match="out of range"):
        s.features(8)


# ---------------------------------------------------------------------- label volume


def _crop(mask: np.ndarray) -> MaskCrop:
    return MaskCrop(0, 0, np.where(mask, 10.0, -10.0).astype(np.float32))


def test_label_volume_writes_only_background_and_its_own_pixels():
    top = [2]
    vol = LabelVolume((3, 16, 16), True, lambda: top[0])
    assert not vol.created
    a = _disk(16, 16, 8, 8, 5)
    vol.write(1, [1], [_crop(a)])
    arr = vol.array()
    assert vol.created and arr.dtype == np.uint16
    arr[1, 0:4, 0:4] = 9  # a manual edit of another label
    vol.write(1, [2], [_crop(np.ones((16, 16), bool))])
    assert (arr[1][a] == 1).all() and (arr[1, 0:4, 0:4] == 9).all()
    assert ((arr[1] == 2) == ~(a | (arr[1] == 9))).all()
    vol.write(1, [2], [None])  # an empty mask clears the object's own pixels
    assert not (arr[1] == 2).any() and (arr[1][a] == 1).all()
    vol.erase(1, [1])
    assert not (arr == 1).any() and (arr[1, 0:4, 0:4] == 9).all()
    top[0] = 70000  # ids past uint16 widen the volume, values kept
    assert vol.array().dtype == np.uint32 and (vol.array()[1, 0:4, 0:4] == 9).all()
    vol.clear()
    assert not vol.array().any()


def test_label_volume_without_keep_composites_but_stores_nothing():
    vol = LabelVolume((2, 8, 8), False, lambda: 1)
    winner, masks = vol.write(0, [1], [_crop(_disk(8, 8, 4, 4, 2))])
    assert (winner >= 0).sum() == masks[0][1].sum() > 0
    assert not vol.created
    with pytest.raises(RuntimeError, match="keep_labels=False"):
        vol.array()


def test_label_volume_use_checks_the_array():
    vol = LabelVolume((2, 8, 8), True, lambda: 1)
    with pytest.raises(ValueError, match=r"shape \(2, 8, 9\), expected \(2, 8, 8\)"):
        vol.use(np.zeros((2, 8, 9), np.uint16))
    with pytest.raises(ValueError, match="integer"):
        vol.use(np.zeros((2, 8, 8), np.float32))
    external = np.zeros((2, 8, 8), np.int32)
    vol.use(external)
    vol.write(1, [4], [_crop(np.ones((8, 8), bool))])
    assert (external[1] == 4).all() and vol.array() is external


# ---------------------------------------------------------------------- add_masks


def test_add_masks_equals_add_labels_and_takes_pairs_one_at_a_time(model, movie):
    a, b = _disk(48, 64, 14, 16, 7), _disk(48, 64, 32, 46, 6)
    lab = np.zeros((48, 64), np.uint16)
    lab[a], lab[b] = 3, 5
    by_labels = VideoSession(model, movie)
    assert by_labels.add_labels(1, lab) == [3, 5]
    by_masks = VideoSession(model, movie)
    assert by_masks.add_masks(1, ((i, lab == i) for i in (5, 3))) == [3, 5]
    for i in (3, 5):
        x = by_labels._objects[i].pending[1][0].mask_logits
        y = by_masks._objects[i].pending[1][0].mask_logits
        torch.testing.assert_close(x, y)
    np.testing.assert_array_equal(by_labels.labels()[1], by_masks.labels()[1])
    assert by_masks.stats["image_encodings"] == 1


def test_add_masks_checks_every_mask_before_changing_anything(model, movie):
    s = VideoSession(model, movie, roi=(0, 0, 24, 64))
    good = _disk(48, 64, 10, 10, 4)
    with pytest.raises(ValueError, match="mask prompt of object 2 lies wholly outside"):
        s.add_masks(0, {1: good, 2: _disk(48, 64, 40, 40, 4)})
    with pytest.raises(ValueError, match="empty"):
        s.add_masks(0, {1: good, 2: np.zeros((48, 64), bool)})
    with pytest.raises(ValueError, match="object id"):
        s.add_masks(0, {1: good, 0: good})
    assert s.obj_ids == [] and s.stats["image_encodings"] == 0


# ---------------------------------------------------------------------- prompt region


def test_inside_region_checks_points_boxes_and_masks():
    region = (10, 20, 30, 40)
    inside_region(region, points=np.array([[10.0, 20.0], [29.0, 39.0]]))
    with pytest.raises(ValueError, match=r"point \(y=30, x=25\) is outside .* \(10, 20, 30, 40\)"):
        inside_region(region, points=np.array([[30.0, 25.0]]))
    clipped = inside_region(region, box=np.array([0.0, 0.0, 15.0, 25.0]))
    np.testing.assert_array_equal(clipped, [10, 20, 15, 25])
    with pytest.raises(ValueError, match="box .* is outside"):
        inside_region(region, box=np.array([0.0, 0.0, 5.0, 5.0]))
    mask = np.zeros((50, 50), bool)
    mask[0:5, 0:5] = True
    with pytest.raises(ValueError, match="mask prompt of object 7 lies wholly outside"):
        inside_region(region, mask=mask, what="of object 7")
    mask[12, 22] = True
    assert inside_region(region, mask=mask) is None


# ---------------------------------------------------------------------- label-array check


def test_check_labels_is_the_one_rule():
    ok = np.arange(6, dtype=np.int32).reshape(2, 3)
    assert check_labels(ok, ndims=(2,), shape=(2, 3)) is ok
    with pytest.raises(ValueError, match="seeds must hold integer labels .* got float32"):
        check_labels(ok.astype(np.float32), name="seeds")
    with pytest.raises(ValueError, match="negative"):
        check_labels(-ok)
    with pytest.raises(ValueError, match=r"must have 3 or 4 dimensions, got shape \(2, 3\)"):
        check_labels(ok, ndims=(3, 4))
    with pytest.raises(ValueError, match=r"has shape \(2, 3\), expected \(3, 3\), the frames"):
        check_labels(ok, shape=(3, 3), shape_of="the frames (H, W)")
    with pytest.raises(ValueError, match="integer"):
        check_labels(ok > 2)  # a bool mask is not labels unless asked for
    one = check_labels(ok > 2, bool_ok=True)
    assert one.dtype == np.uint8 and one.sum() == 3
    assert check_labels(-ok, check_values=False) is not None  # values not scanned


def test_check_labels_reads_no_values_of_lazy_arrays():
    da = pytest.importorskip("dask.array")
    lazy = da.from_array(-np.ones((2, 4, 4), np.int16), chunks=(1, 4, 4))
    assert check_labels(lazy, ndims=(3,)) is lazy  # negative values are not read
    with pytest.raises(ValueError, match="integer"):
        check_labels(lazy.astype(np.float32))
    with pytest.raises(ValueError, match="dimensions"):
        check_labels(lazy, ndims=(2,))


def test_remove_object_from_a_frame_keeps_earlier_labels(model, movie):
    s = VideoSession(model, movie)
    for t in (0, 5):
        s.add_mask(t, 1, _disk(48, 64, 14 + t, 16 + t, 7))
    s.add_mask(5, 2, _disk(48, 64, 32, 46, 6))
    before = s.labels().copy()
    assert (before[0] == 1).any() and (before[5] == 1).any()
    with pytest.raises(ValueError, match="from_frame 8 is out of range"):
        s.remove_object(1, from_frame=8)
    s.remove_object(1, from_frame=3)
    assert s.obj_ids == [2]
    np.testing.assert_array_equal(s.labels()[0], before[0])
    assert not (s.labels()[5] == 1).any() and (s.labels()[5] == 2).any()
    s.remove_object(2)
    expected = np.where(before == 1, 1, 0)
    expected[3:] = 0  # object 1 kept its labels before frame 3 only
    np.testing.assert_array_equal(s.labels(), expected)
