"""Zoom windows of neighbouring objects: objects in different windows run through the model as
one batch, each on its own window's encoding, so their masks are those of windows run one by
one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import VideoSession, load_model
from napari_sam2.model.sam2 import FrameFeatures
from napari_sam2.video._model_runner import stack_features


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


@pytest.fixture(scope="module")
def micro():
    return load_model("micro", device="cpu")


def test_stack_features_batches_windows():
    def feats(v: float) -> FrameFeatures:
        return FrameFeatures(
            torch.full((1, 2, 4, 4), v),
            torch.zeros(1, 2, 4, 4),
            (torch.full((1, 1, 16, 16), v), torch.full((1, 1, 8, 8), v)),
        )

    a, b = feats(1.0), feats(2.0)
    assert stack_features([a]) is a
    same = stack_features([a, a, a])
    assert same.vision.shape[0] == 3 and same.vision.data_ptr() == a.vision.data_ptr()
    mixed = stack_features([a, b, a])
    assert mixed.vision[:, 0, 0, 0].tolist() == [1.0, 2.0, 1.0]
    assert [x.shape[0] for x in mixed.high_res] == [3, 3]
    assert mixed.high_res[0][1].unique().tolist() == [2.0]


def approach_and_part(gaps=(64, 52, 40, 30, 40, 52, 64)):
    """Two synthetic nuclei ~19 px wide (the micro model's training look) side by side, whose
    centres are ``gaps`` px apart on successive frames: they approach, meet and part again.

    Returns:
        ((T, 2, 2) (y, x) centres, (T, H, W) uint8 movie, (T, 2, H, W) bool ground truth).
    """
    from napari_sam2.train.synthetic import make_movie

    one = make_movie(
        kind="nuclei", shape=(160, 320), n_cells=1, radius=(9, 10), n_frames=1, seed=2,
        enter_leave=0.0, division_rate=0.0,
    )
    frame, mask = one.movie[0], one.labels[0] > 0
    ys, xs = np.nonzero(mask)
    cy, cx = int(round(ys.mean())), int(round(xs.mean()))
    centres, movie, truth = [], [], []
    for g in gaps:
        pair = [(80, 160 - g // 2), (80, 160 + g - g // 2)]
        shifts = [(y - cy, x - cx) for y, x in pair]
        frames = [np.roll(frame, sh, (0, 1)) for sh in shifts]
        centres.append(pair)
        movie.append(np.maximum(*frames))
        truth.append(np.stack([np.roll(mask, sh, (0, 1)) for sh in shifts]))
    return np.array(centres, float), np.stack(movie), np.stack(truth)


def run(micro, movie, centres, ids, chunks=None):
    """Both nuclei (or one) from 20-px boxes on frame 0, tracked forward; returns the session
    and each object's masks per frame. ``chunks`` collects the windows of each model batch."""
    s = VideoSession(micro, movie, workers=1)
    if chunks is not None:
        track_chunk = s.runner.track_chunk

        def recording(feats, chunk, before, windows):
            chunks.append(list(windows))
            return track_chunk(feats, chunk, before, windows)

        s.runner.track_chunk = recording
    for i in ids:
        y, x = centres[0][i - 1]
        s.add_box(0, i, (y - 10, x - 10, y + 10, x + 10))
    masks = {i: [] for i in ids}
    for r in s.propagate():
        for k, i in enumerate(r.obj_ids):
            masks[i].append(r.mask(k))
    return s, masks


def test_windows_that_merge_and_split_give_the_masks_of_windows_run_one_by_one(micro):
    """Two nuclei approach until their windows overlap by more than 60 %, and part again.

    Each window follows its own object only, so each object's windows and masks equal those
    of a session holding the object alone, while both objects run through the memory
    attention, decoder and memory encoder as one batch, each on its own window's encoding
    (model outputs equal up to float rounding of a batch of 2 vs 1).
    """
    centres, movie, truth = approach_and_part()
    n = len(movie)
    chunks: list = []
    both, masks = run(micro, movie, centres, [1, 2], chunks)
    overlap = []
    for t in range(n):
        a, b = both.window(1, t), both.window(2, t)
        overlap.append(max(0, min(a[3], b[3]) - max(a[1], b[1])) / (a[3] - a[1]))
    assert max(overlap) > 0.6 and overlap[0] < 0.4 and overlap[-1] < 0.5, np.round(overlap, 2)
    assert len(chunks) == n - 1 and all(len(set(w)) == 2 for w in chunks)  # one batch each
    assert both.stats["window_encodings"] == 2 * n
    for i in (1, 2):
        alone, alone_masks = run(micro, movie, centres, [i])
        assert [alone.window(i, t) for t in range(n)] == [both.window(i, t) for t in range(n)]
        for t in range(n):
            a = alone._objects[i].bank.get(t).mask_logits
            b = both._objects[i].bank.get(t).mask_logits
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)
            assert iou(alone_masks[i][t], masks[i][t]) > 0.99
        assert np.mean([iou(m, g) for m, g in zip(masks[i], truth[:, i - 1])]) > 0.7


def test_window_encodings_split_over_workers(micro):
    """With several workers a frame's windows are encoded in one batch per worker, side by
    side: the same encodings as one batch."""
    _, movie, _ = approach_and_part((64,))
    windows = [(0, 0, 96, 96), (40, 90, 125, 175), (60, 200, 160, 300)]
    feats = {}
    for workers in (1, 2):
        s = VideoSession(micro, movie, workers=workers)
        feats[workers] = s.runner._encode_windows(0, windows)
        assert s.stats["window_encodings"] == 3
    for a, b in zip(
        (feats[1].vision, feats[1].vision_pos, *feats[1].high_res),
        (feats[2].vision, feats[2].vision_pos, *feats[2].high_res),
    ):
        assert a.shape[0] == 3
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
