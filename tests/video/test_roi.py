"""VideoSession with a region of interest: the model sees only the ROI, prompts and results stay
full-frame. A session on the full movie with ``roi`` must give exactly what a session on the
cropped movie gives, placed at the ROI, and nothing outside it."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2 import VideoSession, segment_movie
from napari_sam2.video.frames import frame_source_for

ROI = (4, 6, 40, 52)  # (y0, x0, y1, x1) inside the (48, 64) test frames
Y0, X0, Y1, X1 = ROI
WINDOW = (200.0, 2500.0)  # fixed contrast: percentiles of a crop differ from the full frame's


def _pair(model, movie, **kwargs):
    """(session on the cropped movie, session on the full movie with the ROI)."""
    crop = VideoSession(model, movie[:, Y0:Y1, X0:X1], contrast_limits=WINDOW, **kwargs)
    full = VideoSession(model, movie, contrast_limits=WINDOW, roi=ROI, **kwargs)
    return crop, full


def _assert_placed(full_mask: np.ndarray, crop_mask: np.ndarray) -> None:
    """``full_mask`` (..., H, W) equals ``crop_mask`` inside the ROI and is empty outside."""
    assert full_mask.shape[-2:] == (48, 64)
    np.testing.assert_array_equal(full_mask[..., Y0:Y1, X0:X1], crop_mask)
    outside = full_mask.copy()
    outside[..., Y0:Y1, X0:X1] = 0
    assert not outside.any()


def _disk(cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:48, :64]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r * r


# ---------------------------------------------------------------------- construction, property


def test_roi_argument_and_property(model, movie):
    s = VideoSession(model, movie, roi=ROI)
    assert s.roi == ROI and s.frames.roi == ROI
    assert s.frame_shape == (48, 64) and s.frames.region_shape == (Y1 - Y0, X1 - X0)
    assert VideoSession(model, movie).roi is None
    assert VideoSession(model, movie, roi=(0, 0, 48, 64)).roi is None  # the whole frame
    with pytest.raises(ValueError, match="does not fit the frame"):
        VideoSession(model, movie, roi=(0, 0, 49, 10))
    with pytest.raises(ValueError, match="roi must be"):
        VideoSession(model, movie, roi=(1, 2, 3))


def test_frame_source_roi_is_kept_or_overridden(model, movie):
    fs = frame_source_for(movie, model.config, roi=ROI)
    assert VideoSession(model, fs).roi == ROI
    assert VideoSession(model, fs, roi=(0, 0, 20, 20)).roi == (0, 0, 20, 20)
    assert fs.roi == (0, 0, 20, 20)


def test_roi_change_rules(model, movie):
    s = VideoSession(model, movie)
    s.features(0)
    assert s.stats["image_encodings"] == 1
    s.roi = ROI  # no objects yet: allowed, drops the cached encodings
    assert s.roi == ROI
    s.features(0)
    assert s.stats["image_encodings"] == 2
    s.add_points(0, 1, [[20, 20]], [1])
    with pytest.raises(ValueError, match=r"reset\(\)"):
        s.roi = None
    assert s.roi == ROI  # unchanged
    s.reset()
    s.roi = None
    assert s.roi is None
    m = s.add_points(0, 1, [[2, 2]], [1])  # outside the old ROI: fine now
    assert m.shape == (48, 64)
    with pytest.raises(ValueError, match="does not fit the frame"):
        VideoSession(model, movie).roi = (10, 10, 5, 20)


def test_changing_the_frame_source_roi_directly_drops_stale_encodings(model, movie):
    s = VideoSession(model, movie)
    a = s.features(0).vision.clone()
    s.frames.roi = ROI
    b = s.features(0).vision
    assert s.stats["image_encodings"] == 2
    assert not np.allclose(a.numpy(), b.numpy())


# ---------------------------------------------------------------------- prompts


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda s: s.add_points(0, 1, [[2, 20]], [1]), r"point \(y=2, x=20\) is outside"),
        (lambda s: s.add_points(0, 1, [[20, 20], [20, 52]], [1, 0]), "x=52"),
        (lambda s: s.add_points(0, 1, [[40, 20]], [1]), "region of interest"),
        (lambda s: s.add_box(0, 1, (0, 0, 3, 30)), "box .* outside the region of interest"),
        (lambda s: s.add_box(0, 1, (10, 53, 30, 63)), r"\(4, 6, 40, 52\)"),
        (lambda s: s.add_mask(0, 1, _disk(44, 58, 3)), "wholly outside the region of interest"),
        (lambda s: s.add_labels(0, (_disk(44, 58, 3) * 3).astype(np.uint8)), "label.* 3 lie"),
        (lambda s: s.add_points(0, 1, [[100, 5]], [1]), "outside the image"),  # frame check
    ],
)
def test_prompts_outside_the_roi_raise(model, movie, call, match):
    s = VideoSession(model, movie, roi=ROI)
    with pytest.raises(ValueError, match=match):
        call(s)
    assert s.obj_ids == [] and not s.labels().any()


def test_points_box_and_mask_prompts_match_a_cropped_movie(model, movie):
    crop, full = _pair(model, movie)
    pts = np.array([[14.0, 16.0], [20.5, 30.0]])
    m_crop = crop.add_points(1, 1, pts - (Y0, X0), [1, 0])
    m_full = full.add_points(1, 1, pts, [1, 0])
    assert m_full.any()
    _assert_placed(m_full, m_crop)

    box = np.array([24.0, 36.0, 39.0, 51.0])
    m_crop = crop.add_box(1, 2, box - (Y0, X0, Y0, X0))
    m_full = full.add_box(1, 2, box)
    _assert_placed(m_full, m_crop)
    # a box sticking out of the ROI is clipped to it, like a box sticking out of a frame
    m_crop = crop.add_box(3, 4, (20 - Y0, 40 - X0, 60 - Y0, 70 - X0))
    m_full = full.add_box(3, 4, (20, 40, 60, 70))
    _assert_placed(m_full, m_crop)
    assert np.allclose(full.prompts(4)[3].box, (20, 40, Y1 - 1, X1 - 1))

    disk = _disk(36, 50, 6)  # partly outside the ROI: that part is ignored
    m_crop = crop.add_mask(5, 3, disk[Y0:Y1, X0:X1])
    m_full = full.add_mask(5, 3, disk)
    assert m_full.any()
    _assert_placed(m_full, m_crop)

    assert full.labels().shape == (8, 48, 64)
    _assert_placed(full.labels(), crop.labels())


def test_propagation_matches_a_cropped_movie(model, movie):
    crop, full = _pair(model, movie)
    disk = _disk(20, 40, 5)
    for s, (dy, dx), mask in ((crop, (Y0, X0), disk[Y0:Y1, X0:X1]), (full, (0, 0), disk)):
        s.add_points(2, 1, [[16 - dy, 18 - dx]], [1])
        s.add_box(2, 2, (25 - dy, 38 - dx, 39 - dy, 51 - dx))
        s.add_mask(4, 3, mask)
    res_crop = list(crop.propagate(direction="both"))
    res_full = list(full.propagate(direction="both"))
    assert [r.frame for r in res_full] == [r.frame for r in res_crop] == [2, 3, 4, 5, 6, 7, 1, 0]
    for rc, rf in zip(res_crop, res_full):
        assert rf.obj_ids == rc.obj_ids == [1, 2, 3]
        assert rf.masks.shape == (3, 48, 64) and rf.masks.dtype == bool
        _assert_placed(rf.masks, rc.masks)
        np.testing.assert_array_equal(rf.scores, rc.scores)
    lab = full.labels()
    assert lab.shape == (8, 48, 64) and lab.any()
    _assert_placed(lab, crop.labels())


def test_add_labels_ignores_the_part_outside_the_roi(model, movie):
    crop, full = _pair(model, movie)
    lab = np.zeros((48, 64), np.uint16)
    lab[_disk(16, 18, 6)] = 1
    lab[_disk(38, 50, 5)] = 7  # partly outside the ROI
    assert crop.add_labels(0, lab[Y0:Y1, X0:X1]) == full.add_labels(0, lab) == [1, 7]
    _assert_placed(full.labels(), crop.labels())
    assert np.array_equal(full.prompts(7)[0].mask, lab == 7)  # kept full-frame
    r_crop = next(crop.propagate(start=0))
    r_full = next(full.propagate(start=0))
    _assert_placed(r_full.masks, r_crop.masks)


def test_find_objects_works_within_the_roi(model, movie):
    crop, full = _pair(model, movie)
    # random weights: big masks, so no area limit
    opts = dict(
        points_per_side=3, pred_iou_thresh=0.0, stability_thresh=0.0, min_area=1, max_area=48 * 64
    )
    found_crop = crop.find_objects(0, **opts)
    found_full = full.find_objects(0, **opts)
    assert found_full and len(found_full) == len(found_crop)
    for mf, mc in zip(found_full, found_crop):
        _assert_placed(mf, mc)


def test_segment_movie_roi(model, movie):
    prompts = [(0, 16, 18, 1), (0, 30, 44, 2)]
    crop = segment_movie(
        movie[:, Y0:Y1, X0:X1],
        [(t, y - Y0, x - X0, i) for t, y, x, i in prompts],
        model=model,
        contrast_limits=WINDOW,
        direction="forward",
    )
    full = segment_movie(
        movie, prompts, model=model, contrast_limits=WINDOW, direction="forward", roi=ROI
    )
    assert full.shape == (8, 48, 64) and full.any()
    _assert_placed(full, crop)
    with pytest.raises(ValueError, match="region of interest"):
        segment_movie(movie, [(0, 45, 60, 1)], model=model, roi=ROI)


def test_size_at_model_and_the_too_small_hint(model):
    movie = np.zeros((2, 400, 1000), np.uint16)
    session = VideoSession(model, movie, axes="TYX", zoom="off")  # shrunk to 256 x 256
    assert session.scale.size_at_model((40, 40)) == pytest.approx((25.6, 10.24))
    mask = np.zeros((400, 1000), bool)
    mask[100:140, 500:540] = True  # 40 x 40 px: 25.6 x 10.2 px at the model's input
    hint = session.too_small_hint(mask=mask)
    assert hint is not None and "~26 x 10 px" in hint and "256-px input" in hint
    assert "the frame is shrunk" in hint and "roi=(y0, x0, y1, x1)" in hint
    assert session.too_small_hint(mask=np.zeros_like(mask)) is None  # nothing segmented
    assert session.too_small_hint(box=(0, 0, 40, 80)) is None  # 25.6 x 20.5 px
    session.roi = (100, 400, 300, 656)  # 200 x 256 px: the cell is now 51 x 40 px
    assert session.scale.size_at_model((40, 40)) == pytest.approx((51.2, 40.0))
    assert session.too_small_hint(mask=mask) is None
    session.roi = (0, 0, 400, 999)  # (the whole frame would mean no region)
    assert "the region of interest is shrunk" in session.too_small_hint(mask=mask)
