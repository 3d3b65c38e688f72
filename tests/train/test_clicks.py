"""Simulated prompts of the training recipe: clicks inside masks, boxes, corrective clicks."""

from __future__ import annotations

import numpy as np

from napari_sam2.train.clicks import corrective_click, jittered_box, sample_click


def _disc(cy: int, cx: int, r: int, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_clicks_fall_inside_the_mask_and_favour_its_interior():
    mask = _disc(30, 20, 10)
    rng = np.random.default_rng(0)
    clicks = [sample_click(mask, rng) for _ in range(200)]
    assert all(mask[int(y), int(x)] for x, y in clicks)
    dist = [np.hypot(x - 20, y - 30) for x, y in clicks]
    uniform = [np.hypot(x - 20, y - 30) for x, y in (sample_click(mask, rng, False) for _ in dist)]
    assert np.mean(dist) < np.mean(uniform)  # interior-weighted clicks lie nearer the centre
    assert sample_click(np.zeros((8, 8), bool), rng) is None


def test_box_without_jitter_is_the_bounding_box_and_stays_in_the_frame():
    mask = np.zeros((64, 64), bool)
    mask[10:21, 5:40] = True
    rng = np.random.default_rng(1)
    assert jittered_box(mask, rng, jitter=0.0) == (5.0, 10.0, 39.0, 20.0)
    mask[:, :] = False
    mask[0:30, 50:64] = True
    for _ in range(50):
        x0, y0, x1, y1 = jittered_box(mask, rng, jitter=0.5)
        assert 0 <= min(x0, y0, x1, y1) and max(x0, y0, x1, y1) <= 63


def test_corrective_click_targets_the_largest_error():
    rng = np.random.default_rng(2)
    target = _disc(20, 20, 8) | _disc(45, 45, 4)
    assert corrective_click(target, target, rng) is None
    # the big disc is missed, the small one found: a positive click on the big disc
    (x, y), label = corrective_click(_disc(45, 45, 4), target, rng)
    assert label == 1 and _disc(20, 20, 8)[int(y), int(x)]
    # a false detection larger than the miss: a negative click on it
    pred = target | _disc(50, 10, 9)
    (x, y), label = corrective_click(pred, target, rng)
    assert label == 0 and _disc(50, 10, 9)[int(y), int(x)] and not target[int(y), int(x)]
