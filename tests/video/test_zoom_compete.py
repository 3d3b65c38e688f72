"""Objects segmented at different scales (a zoom window and the whole frame) compete for pixels
on a common scale: the magnified object's finer mask decides their shared boundary."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_sam2.video._sparse import (
    MAGNIFICATION_POWER,
    CropUpsampler,
    MaskCrop,
    composite,
    contest_factor,
)

FRAME = 128  # frame side, px
LOW_WHOLE = 32  # whole-frame logits: 4 frame px per logit px
WINDOW = (32, 16, 64, 48)  # (y0, x0, y1, x1): 32 px window, logits 64 x 64 (0.5 px per logit)
LOW_WINDOW = 64
CA, RA = (48.0, 32.0), 10.0  # disc A (in the window): centre (y, x) and radius, frame px
CB, RB = (48.0, 54.0), 12.0  # disc B (whole frame), touching A at x = 42
OVERREACH = 4.0  # frame px by which B's coarse mask reaches past its true edge
SLOPE = 1.0  # logit per frame px, the same for both objects


def _disc_logits(low: int, region: tuple[int, int, int, int], centre, radius) -> torch.Tensor:
    """(1, 1, low, low) logits = SLOPE x signed distance (frame px) to a disc, sampled at the
    frame positions of the low-resolution pixels of ``region``."""
    y0, x0, y1, x1 = region
    ys = y0 + (np.arange(low) + 0.5) * (y1 - y0) / low
    xs = x0 + (np.arange(low) + 0.5) * (x1 - x0) / low
    d = np.hypot(ys[:, None] - centre[0], xs[None, :] - centre[1])
    return torch.from_numpy((SLOPE * (radius - d)).astype(np.float32))[None, None]


def _crops() -> list[MaskCrop | None]:
    whole = (0, 0, FRAME, FRAME)
    a = CropUpsampler((LOW_WINDOW, LOW_WINDOW), WINDOW, "cpu")
    b = CropUpsampler((LOW_WHOLE, LOW_WHOLE), whole, "cpu")
    (crop_a,) = a(_disc_logits(LOW_WINDOW, WINDOW, CA, RA))
    (crop_b,) = b(_disc_logits(LOW_WHOLE, whole, CB, RB + OVERREACH))
    return [crop_a, crop_b]


def _boundary(winner: np.ndarray) -> int:
    """First column of B (index 1) on the row through both centres."""
    row = winner[int(CA[0])]
    return int(np.flatnonzero(row == 1)[0])


def test_steps_follow_the_magnification():
    crop_a, crop_b = _crops()
    assert crop_a is not None and crop_b is not None
    assert crop_a.step == 0.5 and crop_b.step == 4.0
    assert contest_factor(crop_a.step, crop_b.step) == pytest.approx(8.0**MAGNIFICATION_POWER)
    assert contest_factor(4.0, 4.0) == 1.0


def test_window_and_whole_frame_split_at_the_true_edge():
    crops = _crops()
    edge = CA[1] + RA  # x where the discs touch
    # both masks claim the pixels between the true edge and B's overreach
    (ya, xa, _, _), ma = crops[0].box, crops[0].logits > 0
    assert ma[int(CA[0]) - ya, int(edge) - 2 - xa]
    assert crops[1].logits[int(CA[0]) - crops[1].y0, int(edge) - 2 - crops[1].x0] > 0
    winner, masks = composite(iter(crops), (FRAME, FRAME))
    assert abs(_boundary(winner) - edge) <= 1.0
    # each object's own mask is still its logits > 0
    for crop, (box, mask) in zip(crops, masks):
        assert box == crop.box
        np.testing.assert_array_equal(mask, crop.logits > 0)

    # compared as raw logits, the coarse mask takes the boundary pixels (the rule before)
    raw = [MaskCrop(c.y0, c.x0, c.logits) for c in crops]
    winner_raw, _ = composite(iter(raw), (FRAME, FRAME))
    assert _boundary(winner_raw) <= edge - 2.0


def test_equal_steps_compare_raw_logits_bit_for_bit():
    """Objects at one scale (zoom off): the winners are those of the raw logits, ties included."""
    rng = np.random.default_rng(3)
    low = torch.from_numpy(rng.normal(0.0, 4.0, (5, 1, 20, 20)).astype(np.float32))
    low[1] = low[0]  # an exact tie: the first object wins
    up = CropUpsampler((20, 20), (0, 0, 100, 70), "cpu")
    crops = list(up(low))
    assert {c.step for c in crops if c is not None} == {up.step}
    winner, _ = composite(iter(crops), (100, 70))
    full = F.interpolate(low, size=(100, 70), mode="bilinear", align_corners=False)[:, 0]
    best, arg = full.max(0)
    expected = np.where(best.numpy() > 0, arg.numpy(), -1)
    np.testing.assert_array_equal(winner, expected)
    assert not (winner == 1).any()
