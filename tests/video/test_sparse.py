"""Frame-size masks from cropped upsampling: same values as F.interpolate, nothing lost."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_sam2 import FrameResult
from napari_sam2.video._sparse import CropUpsampler, composite


def _blobs(n: int, hw: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """(n, 1, h, w) logits: negative, one positive patch per object; object 1 also has a
    positive speck in a far corner, object 2 none at all (an empty mask)."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    h, w = hw
    low = torch.randn(n, 1, h, w, generator=gen) - 8
    for k in range(n):
        y, x = rng.integers(0, h - 6), rng.integers(0, w - 6)
        low[k, 0, y : y + rng.integers(1, 6), x : x + rng.integers(1, 6)] += 14
    low[1, 0, -1, -1] = 3.0  # far speck: a crop over most of the frame
    low[2] = -5.0
    low[0, 0, 0, :3] = 2.0  # touching the border
    return low


@pytest.mark.parametrize(
    "hw, roi",
    [
        ((64, 64), (0, 0, 512, 512)),
        ((64, 64), (100, 37, 800, 1137)),  # a ROI, non-integer scales
        ((64, 64), (0, 0, 40, 50)),  # smaller than the logits
        ((256, 256), (0, 0, 1000, 333)),
    ],
)
def test_crops_match_full_upsampling_and_miss_nothing(hw, roi):
    low = _blobs(8, hw)
    y0, x0, y1, x1 = roi
    ref = F.interpolate(low, size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)
    crops = list(CropUpsampler(hw, roi, "cpu")(low))
    assert crops[2] is None  # no positive logit: no crop
    for k, crop in enumerate(crops):
        if crop is None:
            assert not (ref[k] > 0).any()
            continue
        cy0, cx0, cy1, cx1 = crop.box
        assert y0 <= cy0 < cy1 <= y1 and x0 <= cx0 < cx1 <= x1
        inside = ref[k, 0, cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        np.testing.assert_allclose(crop.logits, inside.numpy(), atol=1e-4, rtol=0)
        outside = ref[k, 0].clone()
        outside[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = -1.0
        assert not (outside > 0).any()  # every positive pixel lies in the crop
    small = [c.logits.size for c in crops if c is not None]
    assert min(small) < 0.1 * (y1 - y0) * (x1 - x0)  # compact objects stay small


def test_composite_is_the_highest_positive_logit_first_on_ties():
    low = _blobs(6, (64, 64), seed=3)
    low[4] = low[3]  # a tie everywhere: the first of the two wins
    frame = (300, 420)
    ref = F.interpolate(low, size=frame, mode="bilinear", align_corners=False)[:, 0]
    best, arg = ref.max(0)
    expected = torch.where(best > 0, arg, -1).numpy()
    winner, masks = composite(CropUpsampler((64, 64), (0, 0, *frame), "cpu")(low), frame)
    assert np.array_equal(winner, expected)
    assert not (winner == 4).any() and (winner == 3).any()
    for k, item in enumerate(masks):
        full = np.zeros(frame, bool)
        if item is not None:
            (y0, x0, y1, x1), m = item
            full[y0:y1, x0:x1] = m
        assert np.array_equal(full, (ref[k] > 0).numpy())


def test_frame_result_crops_and_frame_size_masks():
    masks = np.zeros((3, 40, 50), bool)
    masks[0, 5:9, 10:30] = True
    masks[1, 39, 49] = True
    masks[0, 20, 20] = True
    r = FrameResult(4, [7, 8, 9], masks, [0.9, 0.8, 0.1])
    assert r.boxes.tolist() == [[5, 10, 21, 30], [39, 49, 40, 50], [0, 0, 0, 0]]
    assert r.crops[2].shape == (0, 0) and r.shape == (40, 50)
    assert np.array_equal(r.masks, masks) and np.array_equal(r.mask(1), masks[1])
    again = FrameResult(4, [7, 8, 9], scores=r.scores, boxes=r.boxes, crops=r.crops, shape=r.shape)
    assert np.array_equal(again.masks, masks)
    moved = dataclasses.replace(r, frame=5)
    assert moved.frame == 5 and np.array_equal(moved.masks, masks)
    with pytest.raises(ValueError, match="masks"):
        FrameResult(0, [1, 2], masks[:1], [1.0])
    with pytest.raises(ValueError, match="boxes, crops and shape"):
        FrameResult(0, [1])


def test_session_results_agree_with_the_labels(model, movie):
    from napari_sam2 import VideoSession

    s = VideoSession(model, movie, axes="TYX")
    s.add_points(0, 1, [[14, 16]], [1])
    s.add_points(0, 2, [[32, 46]], [1])
    for r in s.propagate():
        lab = s.labels()[r.frame]
        for k, obj in enumerate(r.obj_ids):
            # every labelled pixel of an object is in its mask (overlaps go to one object)
            assert not ((lab == obj) & ~r.mask(k)).any()
        assert np.array_equal(np.any(r.masks, 0), lab > 0)


def test_mask_prompts_are_kept_as_crops(model, movie):
    from napari_sam2 import VideoSession

    s = VideoSession(model, movie, axes="TYX")
    lab = np.zeros(movie.shape[1:], np.uint16)
    lab[10:20, 12:22] = 3
    lab[30:33, 40:60] = 4
    s.add_labels(0, lab)
    for obj in (3, 4):
        p = s.prompts(obj)[0]
        assert np.array_equal(p.mask, lab == obj)  # the frame-size mask, rebuilt
        assert p._mask[2].size == (lab == obj).sum()  # stored: the bounding rectangle only
    assert "mask" in repr(p)
