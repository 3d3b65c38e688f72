"""Seeding many objects: from labels, automatically (grid + NMS), and chunked propagation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import VideoSession
from napari_sam2.video import _model_runner as runner_module
from napari_sam2.video.seeding import (
    find_objects,
    find_objects_steps,
    mask_iou,
    mask_nms,
    point_grid,
    stability_score,
)

# ---------------------------------------------------------------------- inputs


def grid_labels(h: int = 64, w: int = 64, rows: int = 3, cols: int = 4, r: int = 5):
    """(H, W) uint16 label image with rows x cols disks, ids 1..rows*cols (row-major)."""
    yy, xx = np.mgrid[:h, :w]
    lab = np.zeros((h, w), np.uint16)
    k = 0
    for i in range(rows):
        for j in range(cols):
            k += 1
            cy, cx = (i + 0.5) * h / rows, (j + 0.5) * w / cols
            lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k
    return lab


def movie_of(lab: np.ndarray, t: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    frames = []
    for k in range(t):
        img = rng.normal(200, 20, lab.shape) + 1500 * (np.roll(lab, k, axis=1) > 0)
        frames.append(img)
    return np.clip(frames, 0, 65535).astype(np.uint16)


@pytest.fixture
def cells():
    lab = grid_labels()
    return lab, movie_of(lab)


# ---------------------------------------------------------------------- helpers


def test_point_grid():
    g = point_grid(4)
    assert g.shape == (16, 2)
    np.testing.assert_allclose(g[0], [0.125, 0.125])
    np.testing.assert_allclose(g[1], [0.375, 0.125])  # x varies fastest
    np.testing.assert_allclose(g[-1], [0.875, 0.875])
    with pytest.raises(ValueError):
        point_grid(0)


def test_stability_score_hand_made():
    # a cone of logits: > +1 on a small disk, > -1 on a larger one
    yy, xx = torch.meshgrid(torch.arange(21.0), torch.arange(21.0), indexing="ij")
    dist = ((yy - 10) ** 2 + (xx - 10) ** 2).sqrt()
    logits = 5.0 - dist  # > 1 for dist < 4, > -1 for dist < 6
    inner, outer = int((dist < 4).sum()), int((dist < 6).sum())
    assert stability_score(logits).item() == pytest.approx(inner / outer)
    sharp = torch.where(dist < 5, 20.0, -20.0)
    assert stability_score(sharp).item() == 1.0  # a hard edge is perfectly stable
    batch = torch.stack([logits, sharp, torch.full_like(logits, -5.0)])
    np.testing.assert_allclose(stability_score(batch).numpy(), [inner / outer, 1.0, 0.0])


def test_mask_iou_and_nms_hand_made():
    def box(y0, x0, y1, x1):
        m = np.zeros((30, 30), bool)
        m[y0:y1, x0:x1] = True
        return m

    a = box(0, 0, 10, 10)
    a_shift = box(0, 1, 10, 11)  # IoU 90/110 = 0.818 with a
    b = box(15, 15, 25, 25)  # disjoint
    c = box(0, 0, 10, 5)  # half of a: IoU 0.5
    assert mask_iou(a, a_shift) == pytest.approx(90 / 110)
    assert mask_iou(a, b) == 0.0 and mask_iou(np.zeros_like(a), np.zeros_like(a)) == 0.0
    masks = np.stack([a, a_shift, b, c])
    keep = mask_nms(masks, [0.8, 0.9, 0.5, 0.7], iou_thresh=0.5)
    assert keep.tolist() == [1, 3, 2]  # a suppressed by its better-scored shifted twin
    # c's IoU with a_shift is 40/110 = 0.36: kept at 0.5, dropped at 0.3
    assert mask_iou(c, a_shift) == pytest.approx(40 / 110)
    assert mask_nms(masks, [0.8, 0.9, 0.5, 0.7], iou_thresh=0.3).tolist() == [1, 2]
    # a list of masks works too; equal scores keep the input order
    assert mask_nms([a, a, b], [1.0, 1.0, 1.0], 0.5).tolist() == [0, 2]
    assert mask_nms(np.zeros((0, 5, 5), bool), [], 0.5).tolist() == []
    with pytest.raises(ValueError, match="scores"):
        mask_nms([a, b], [1.0], 0.5)


# ---------------------------------------------------------------------- add_labels


def test_add_labels_creates_objects_with_masks_like_the_labels(model, cells):
    lab, movie = cells
    s = VideoSession(model, movie)
    ids = s.add_labels(0, lab)
    assert ids == list(range(1, 13)) and s.obj_ids == ids
    assert all(s.prompted_frames(i) == [0] for i in ids)
    assert s.stats["image_encodings"] == 1
    out = s.labels()[0]
    for i in ids:
        assert mask_iou(out == i, lab == i) > 0.8
    assert ((out > 0) == (lab > 0)).mean() > 0.98
    assert s.prompts(3)[0].mask is not None
    res = list(s.propagate())
    assert [r.frame for r in res] == [0, 1, 2, 3]
    assert res[0].obj_ids == ids and res[0].masks.shape == (12, 64, 64)
    assert s.stats["image_encodings"] == 4  # one encoding per frame for all 12 objects


def test_add_labels_equals_add_mask_per_label(model, cells):
    lab, movie = cells
    batched = VideoSession(model, movie, object_chunk_size=5)
    batched.add_labels(2, lab)
    single = VideoSession(model, movie)
    for i in range(1, 13):
        single.add_mask(2, i, lab == i)
    assert batched.obj_ids == single.obj_ids
    for i in single.obj_ids:
        a = batched._objects[i].pending[2][0]
        b = single._objects[i].pending[2][0]
        torch.testing.assert_close(a.mask_logits, b.mask_logits, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(a.obj_ptr, b.obj_ptr, atol=1e-4, rtol=1e-4)
    # disjoint, separated disks: the label frames agree exactly
    np.testing.assert_array_equal(batched.labels()[2], single.labels()[2])
    a = [r.masks for r in batched.propagate()]
    b = [r.masks for r in single.propagate()]
    for x, y in zip(a, b):
        assert (x == y).mean() > 0.999


def test_add_labels_inputs(model, cells):
    lab, movie = cells
    s = VideoSession(model, movie)
    assert s.add_labels(0, np.zeros_like(lab)) == []
    with pytest.raises(ValueError, match="shape"):
        s.add_labels(0, lab[:10])
    with pytest.raises(ValueError, match="integer"):
        s.add_labels(0, lab.astype(np.float32))
    with pytest.raises(ValueError, match="negative"):
        s.add_labels(0, -lab.astype(np.int32))
    with pytest.raises(ValueError, match="out of range"):
        s.add_labels(9, lab)
    assert s.obj_ids == []  # nothing was created by the failed calls
    assert s.add_labels(1, lab > 0) == [1]  # a bool mask is one object
    sparse = np.where(lab == 3, 70, np.where(lab == 5, 9, 0)).astype(np.int32)
    assert s.add_labels(2, sparse) == [9, 70]
    assert mask_iou(s.labels()[2] == 70, lab == 3) > 0.8
    # pixels of other objects are kept, as with add_mask (object 1 covers all disks on frame 1)
    s.add_labels(1, sparse)
    assert not (s.labels()[1] == 70).any() and s.prompted_frames(70) == [1, 2]


# ---------------------------------------------------------------------- find_objects


def test_find_objects_returns_deduplicated_masks_within_area_limits(model, cells):
    lab, movie = cells
    s = VideoSession(model, movie)
    masks, scores = find_objects(
        s,
        1,
        points_per_side=6,
        pred_iou_thresh=0.0,
        stability_thresh=0.0,
        min_area=20,
        max_area=2000,
        nms_iou=0.5,
        batch=8,
        return_scores=True,
    )
    assert 1 <= len(masks) <= 3 * 36 and len(scores) == len(masks)
    assert np.all(np.diff(scores) <= 0)  # by decreasing predicted IoU
    for m in masks:
        assert m.shape == (64, 64) and m.dtype == bool
        assert 20 <= m.sum() <= 2000
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert mask_iou(masks[i], masks[j]) <= 0.5
    assert s.stats["image_encodings"] == 1
    assert s.obj_ids == []  # candidates, not objects
    # the session method is the same thing; stricter thresholds keep a subset
    same = s.find_objects(
        1, points_per_side=6, pred_iou_thresh=0.0, stability_thresh=0.0, min_area=20,
        max_area=2000, batch=8,
    )
    assert len(same) == len(masks) and all((a == b).all() for a, b in zip(same, masks))
    strict = s.find_objects(1, points_per_side=6, pred_iou_thresh=0.0, stability_thresh=0.99,
                            min_area=20, max_area=2000)
    assert len(strict) <= len(masks)
    small = s.find_objects(1, points_per_side=6, pred_iou_thresh=0.0, stability_thresh=0.0,
                           min_area=1, max_area=10)
    assert all(1 <= m.sum() <= 10 for m in small)
    assert s.stats["image_encodings"] == 1  # the frame encoding is reused
    if masks:  # candidates can be seeded right away
        seeds = np.zeros(lab.shape, np.uint16)
        for k, m in enumerate(masks[:3], start=1):
            seeds[m & (seeds == 0)] = k
        assert s.add_labels(1, seeds) == sorted(set(np.unique(seeds)) - {0})


def test_find_objects_steps_reports_batches_and_equals_find_objects(model, cells):
    _, movie = cells
    s = VideoSession(model, movie)
    kw = dict(points_per_side=6, pred_iou_thresh=0.0, stability_thresh=0.0, min_area=20,
              max_area=2000, batch=8)
    steps = find_objects_steps(s, 1, **kw)
    progress = []
    while True:
        try:
            progress.append(next(steps))
        except StopIteration as done:
            masks, scores = done.value
            break
    assert progress == [(k, 5) for k in range(1, 6)]  # 36 clicks in batches of 8
    ref_masks, ref_scores = find_objects(s, 1, return_scores=True, **kw)
    assert len(masks) == len(ref_masks) and all((a == b).all() for a, b in zip(masks, ref_masks))
    np.testing.assert_array_equal(scores, ref_scores)
    # closing early stops the search (what Cancel does in the widget)
    steps = find_objects_steps(s, 1, **kw)
    assert next(steps) == (1, 5)
    steps.close()
    with pytest.raises(StopIteration):
        next(steps)


def test_find_objects_filters_on_predicted_iou(model, cells):
    _, movie = cells
    s = VideoSession(model, movie)
    _, scores = find_objects(
        s, 0, points_per_side=4, pred_iou_thresh=0.0, stability_thresh=0.0, min_area=1,
        max_area=64 * 64, nms_iou=1.0, return_scores=True,
    )
    assert len(scores) > 0
    cut = float(np.median(scores))
    _, kept = find_objects(
        s, 0, points_per_side=4, pred_iou_thresh=cut, stability_thresh=0.0, min_area=1,
        max_area=64 * 64, nms_iou=1.0, return_scores=True,
    )
    assert len(kept) < len(scores) or cut == scores.min()
    assert np.all(kept >= cut - 1e-6)
    with pytest.raises(ValueError, match="batch"):
        find_objects(s, 0, batch=0)


# ---------------------------------------------------------------------- many objects, chunks


def test_chunked_equals_unchunked_and_one_encoding_per_frame(model, cells):
    lab, movie = cells
    runs = []
    for chunk in (None, 5):
        s = VideoSession(model, movie, object_chunk_size=chunk)
        s.add_labels(0, lab)
        runs.append([r.masks for r in s.propagate()])
        assert s.stats["image_encodings"] == movie.shape[0]
        assert s.stats["frames_propagated"] == movie.shape[0]
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert a.shape == b.shape == (12, 64, 64)
            assert (a == b).mean() > 0.999


def test_auto_chunk_follows_the_memory_budget(model, cells, monkeypatch):
    lab, movie = cells
    s = VideoSession(model, movie)
    budget = runner_module._memory_budget(torch.device("cpu"))
    assert (256 << 20) <= budget <= (4 << 30)
    monkeypatch.setattr(runner_module, "_memory_budget", lambda device: 1)
    assert s.runner.auto_chunk() == 1
    s.add_labels(0, lab)
    tiny = [r.masks for r in s.propagate()]
    monkeypatch.setattr(runner_module, "_memory_budget", lambda device: 1 << 40)
    assert s.runner.auto_chunk() == 256
    s2 = VideoSession(model, movie)
    s2.add_labels(0, lab)
    big = [r.masks for r in s2.propagate()]
    for a, b in zip(tiny, big):
        assert (a == b).mean() > 0.999
