"""The classical baseline: threshold + watershed per frame, overlap linking, automatic polarity."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.train.baseline import detect_polarity, object_tracks, run_baseline, segment_frame


def _blobs(t: int = 5, size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three drifting bright disks on a noisy dark background, and their true labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    movie = rng.normal(100, 5, (t, size, size))
    truth = np.zeros((t, size, size), np.uint16)
    for k in range(t):
        for i, (cy, cx) in enumerate(((25, 25), (60, 40), (40, 75)), start=1):
            disk = (yy - cy - k) ** 2 + (xx - cx - k) ** 2 < 100
            movie[k][disk] += 80
            truth[k][disk] = i
    return movie.astype(np.float32), truth


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_bright_cells_are_tracked_under_their_clicks():
    movie, truth = _blobs()
    points = {7: (25, 25), 8: (60, 40), 9: (5, 5)}  # the last click is on background
    out = object_tracks(movie, points)
    for obj, true_id in ((7, 1), (8, 2)):
        assert min(_iou(out[t] == obj, truth[t] == true_id) for t in range(len(movie))) > 0.8
    assert not (out == 9).any()


@pytest.mark.parametrize("polarity", ["auto", "dark"])
def test_dark_cells_on_a_bright_background(polarity):
    movie, truth = _blobs()
    dark = movie.max() - movie  # dark disks on a bright background
    assert detect_polarity(dark) == "dark" and detect_polarity(movie) == "bright"
    labels, _ = run_baseline(dark, polarity=polarity)
    bright, _ = run_baseline(movie)
    np.testing.assert_array_equal(labels > 0, bright > 0)
    assert _iou(labels[0] > 0, truth[0] > 0) > 0.9
    # the wrong polarity segments the background instead
    wrong, _ = run_baseline(dark, polarity="bright")
    assert _iou(wrong[0] > 0, truth[0] > 0) < 0.2


def test_touching_cells_are_split_and_a_division_is_linked():
    size = 80
    yy, xx = np.mgrid[:size, :size]
    one = ((yy - 40) ** 2 + (xx - 40) ** 2 < 144).astype(np.float32)
    two = (((yy - 40) ** 2 + (xx - 29) ** 2 < 110) | ((yy - 40) ** 2 + (xx - 51) ** 2 < 110))
    movie = np.stack([one, two.astype(np.float32)]) * 100 + 10
    assert segment_frame(movie[1]).max() == 2
    labels, lineage = run_baseline(movie)
    mother = int(labels[0, 40, 40])
    daughters = {int(labels[1, 40, 29]), int(labels[1, 40, 51])}
    assert mother and 0 not in daughters and len(daughters) == 2
    assert {lineage[d] for d in daughters} == {mother}
    # a click on the mother follows both daughters
    out = object_tracks(movie, {5: (40, 40)})
    assert (out[1] == 5).sum() == (labels[1] > 0).sum()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="single-channel"):
        run_baseline(np.zeros((2, 8, 8, 3)))
    with pytest.raises(ValueError, match="polarity"):
        run_baseline(np.zeros((2, 8, 8)), polarity="inverted")
