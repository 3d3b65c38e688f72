"""Automatic zoom: object windows (``video/windows.py``) in the video session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import VideoSession, load_model
from napari_sam2.video.windows import (
    WindowEncodings,
    ZoomPlanner,
    check_cell_diameter,
    logits_extent,
    remap_logits,
)


@pytest.fixture(scope="module")
def micro():
    return load_model("micro", device="cpu")


def disc_movie(centres, shape=(512, 512), radius=10.0, seed=0) -> np.ndarray:
    """(T, H, W) uint8 movie of bright blurred discs on a dark noisy background.

    Args:
        centres: (T, K, 2) (y, x) disc centres per frame.
    """
    centres = np.asarray(centres, np.float64)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.empty((len(centres), *shape), np.uint8)
    for t, frame_centres in enumerate(centres):
        img = rng.normal(20, 4, shape)
        for cy, cx in frame_centres:
            d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
            img += 150 / (1 + np.exp((d - radius) / 1.0))
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def disc(shape, centre, radius=10.0) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


# ----------------------------------------------------------------------------- planner


def test_planner_sizes_windows_from_the_model_range():
    z = ZoomPlanner("auto", (0.18, 0.32), 256, (0, 0, 1024, 1024))
    side = z.side_for(20.0)
    assert side == round(20 / np.sqrt(0.18 * 0.32))  # the object spans the middle of the range
    assert z.side_for(0.18 * 1024) is None  # comfortable on the whole frame
    assert z.side_for(0.5) == 16  # never below the smallest window
    assert ZoomPlanner("off", (0.18, 0.32), 256, (0, 0, 1024, 1024)).side_for(20.0) is None
    w = z.place((5.0, 1020.0), side)  # near a corner: clamped inside the frame
    assert w[0] == 0 and w[3] == 1024 and w[2] - w[0] == side == w[3] - w[1]
    roi = ZoomPlanner("auto", (0.18, 0.32), 256, (100, 200, 612, 712))
    w = roi.place((120.0, 230.0), 64)
    assert w[0] >= 100 and w[1] >= 200 and (w[0] - 100) % 8 == 0 and (w[1] - 200) % 8 == 0


def test_planner_follows_the_mask():
    z = ZoomPlanner("auto", (0.18, 0.32), 256, (0, 0, 512, 512))
    window = (100, 100, 180, 180)
    logits = torch.full((1, 1, 64, 64), -5.0)
    logits[..., 40:50, 40:50] = 5.0  # centre at 45/64 of the window
    new = z.follow(window, logits)
    cy = 100 + 45 * 80 / 64
    assert abs((new[0] + new[2]) / 2 - cy) <= 80 / 8 / 2 + 1
    assert z.follow(window, torch.full((1, 1, 64, 64), -5.0)) == window  # lost: stays
    z.recentre = "edge"
    logits = torch.full((1, 1, 64, 64), -5.0)
    logits[..., 28:36, 30:38] = 5.0  # well inside: the window stays
    assert z.follow(window, logits) == window
    with pytest.raises(ValueError, match="recentre"):
        z.recentre = "sometimes"
    with pytest.raises(ValueError, match="zoom must be"):
        ZoomPlanner("on", (0.18, 0.32), 256, (0, 0, 8, 8))
    with pytest.raises(ValueError, match="cell_diameter must be > 0"):
        check_cell_diameter(-3)


def test_remap_logits_moves_the_mask_with_the_window():
    logits = torch.full((1, 1, 64, 64), -10.0)
    logits[..., 20:30, 20:30] = 10.0
    src, dst = (0, 0, 128, 128), (32, 16, 160, 144)  # shifted by 16 / 8 model px
    out = remap_logits(logits, src, dst)
    a = logits_extent(logits, src)
    b = logits_extent(out, dst)
    assert np.allclose(a[0], b[0], atol=1.0)  # same place in the frame
    assert out[0, 0, 60, 60] < -5  # outside the source window: background
    assert remap_logits(logits, src, src) is logits


def test_window_encodings_batch_and_cache():
    calls = []

    def encode(t, windows):
        calls.append((t, list(windows)))
        k = len(windows)
        from napari_sam2.model.sam2 import FrameFeatures

        return FrameFeatures(
            torch.arange(k, dtype=torch.float32).view(k, 1, 1, 1),
            torch.zeros(k, 1, 1, 1),
            (torch.zeros(k, 1, 4, 4), torch.zeros(k, 1, 2, 2)),
        )

    enc = WindowEncodings(encode, frames_kept=2)
    a, b = (0, 0, 32, 32), (8, 8, 40, 40)
    got = enc.get(0, [a, b, a])
    assert calls == [(0, [a, b])]  # distinct windows, one batch
    assert float(got[b].vision) == 1.0
    enc.get(0, [b])
    assert len(calls) == 1  # cached
    enc.get(1, [a])
    enc.get(2, [a])
    enc.get(0, [a])
    assert len(calls) == 4  # frame 0 was evicted (2 frames kept)


# ----------------------------------------------------------------------------- session


def test_zoom_off_and_large_objects_run_exactly_as_without_windows(micro):
    """Objects large at the whole-frame input get no window: bit-identical to zoom="off"."""
    centres = [[(128 + 2 * t, 120 + 3 * t)] for t in range(5)]
    movie = disc_movie(centres, shape=(256, 256), radius=30.0)
    out = {}
    for zoom in ("off", "auto"):
        s = VideoSession(micro, movie, zoom=zoom, workers=1)
        s.add_points(0, 1, [[128, 120]], [1])
        s.add_box(2, 2, (20, 20, 80, 90))
        out[zoom] = (s.labels().copy(), [r.scores for r in s.propagate()], s.labels().copy())
        assert all(s.window(i, t) is None for i in (1, 2) for t in range(5))
        assert s.stats.get("window_encodings", 0) == 0
    np.testing.assert_array_equal(out["off"][0], out["auto"][0])
    np.testing.assert_array_equal(out["off"][2], out["auto"][2])
    for a, b in zip(out["off"][1], out["auto"][1]):
        np.testing.assert_array_equal(a, b)


def nucleus_movie(path, shape=(160, 512), seed=2):
    """One synthetic nucleus (the micro model's training look) moved along ``path``.

    Args:
        path: (T, 2) (y, x) centres of the nucleus per frame.

    Returns:
        (T, H, W) uint8 movie and (T, H, W) bool ground truth.
    """
    from napari_sam2.train.synthetic import make_movie

    one = make_movie(
        kind="nuclei", shape=shape, n_cells=1, radius=(9, 10), n_frames=1, seed=seed,
        enter_leave=0.0, division_rate=0.0,
    )
    frame, mask = one.movie[0], one.labels[0] > 0
    ys, xs = np.nonzero(mask)
    cy, cx = int(round(ys.mean())), int(round(xs.mean()))
    movie = np.stack([np.roll(frame, (int(y) - cy, int(x) - cx), (0, 1)) for y, x in path])
    truth = np.stack([np.roll(mask, (int(y) - cy, int(x) - cx), (0, 1)) for y, x in path])
    return movie, truth


def test_small_cell_crossing_the_frame_is_followed(micro):
    """A ~19-px nucleus crossing a 280-px wide frame at 3 px per frame: its window follows
    it, so it is never cut (a fixed region would lose it; the whole frame is too coarse)."""
    shape = (100, 280)
    n = 61
    path = [(50 + 6 * np.sin(t / 8), 50 + 3 * t) for t in range(n)]
    movie, truth = nucleus_movie(path, shape)
    s = VideoSession(micro, movie, workers=1)  # zoom="auto" by default
    m0 = s.add_points(0, 1, [path[0]], [1])
    assert iou(m0, truth[0]) > 0.6
    first = s.window(1, 0)
    side = first[2] - first[0]
    assert side < 200
    ious = [iou(r.mask(0), truth[r.frame]) for r in s.propagate()]
    assert min(ious) > 0.4 and np.mean(ious) > 0.65, np.round(ious, 2)
    last = s.window(1, n - 1)
    assert last[1] >= 280 - side - 50  # the window went all the way across
    assert s.stats["image_encodings"] == 0  # no whole-frame encoding was needed


def test_shared_windows_give_the_masks_of_windows_run_one_by_one(micro):
    """Two cells start on top of each other (their windows coincide: one encoding for both)
    and part; each object's model output on every frame equals that of a session holding the
    object alone (windows depend on their own object only). Boxes on every other frame place
    the windows whatever the weights track; the frames between are tracked."""
    n = 6
    centres = [[(250, 236 - 10 * t), (250, 244 + 10 * t)] for t in range(n)]
    movie = disc_movie(centres, radius=5.0)

    def run(ids):
        # 30-px boxes: 128-px windows on a 16-px grid, both on the same grid point at first
        s = VideoSession(micro, movie, workers=1)
        for i in ids:
            for t in range(0, n, 2):
                y, x = centres[t][i - 1]
                s.add_box(t, i, (y - 15, x - 15, y + 15, x + 15))
        for _ in s.propagate():
            pass
        return s

    both = run([1, 2])
    shared = [t for t in range(n) if both.window(1, t) == both.window(2, t)]
    assert shared and len(shared) < n  # merged on the first frames, apart later
    per_object = sum(len({both.window(i, t) for t in range(n)}) for i in (1, 2))
    assert both.stats["window_encodings"] < 2 * n and per_object > 2
    for i in (1, 2):
        alone = run([i])
        assert [alone.window(i, t) for t in range(n)] == [both.window(i, t) for t in range(n)]
        for t in range(n):
            a = alone._objects[i].bank.get(t).mask_logits
            b = both._objects[i].bank.get(t).mask_logits
            # equal up to float rounding of batched vs single encodings / decodes
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_click_size_estimate_and_hint(micro):
    movie = disc_movie([[(200, 300)]] * 2, radius=10.0)
    s = VideoSession(micro, movie, workers=1)
    s.add_points(0, 1, [[200, 300]], [1])
    side = s.window(1, 0)[2] - s.window(1, 0)[0]
    expected = ZoomPlanner("auto", micro.config.object_size_range, 256, (0, 0, 512, 512)).side_for(
        20.0
    )
    assert 0.6 * expected < side < 1.6 * expected  # estimated from the image around the click
    hinted = VideoSession(micro, movie, cell_diameter=30, workers=1)
    hinted.add_points(0, 1, [[200, 300]], [1])
    w = hinted.window(1, 0)
    assert w[2] - w[0] == hinted._zoom.side_for(30)  # a hint within 2x of the model's size
    assert s.too_small_hint(box=(190, 290, 210, 310)) is None  # zoom makes it large enough
    s.zoom = "off"
    assert s.too_small_hint(box=(190, 290, 210, 310)) is not None


def test_seed_labels_use_windows(micro):
    """Seeding from a label image sizes each object's window from its label."""
    from napari_sam2.train.synthetic import make_movie

    mv = make_movie(
        kind="nuclei", shape=(384, 384), radius=(8, 11), n_cells=4, n_frames=3, seed=7,
        enter_leave=0.0, division_rate=0.0,
    )
    s = VideoSession(micro, mv.movie, workers=1)
    ids = s.add_labels(0, mv.labels[0])
    assert ids == [int(i) for i in np.unique(mv.labels[0]) if i]
    for i in ids:
        w = s.window(i, 0)
        ys, xs = np.nonzero(mv.labels[0] == i)
        extent = max(np.ptp(ys), np.ptp(xs)) + 1
        assert w is not None and w[2] - w[0] == s._zoom.side_for(extent)
    ious = []
    for r in s.propagate():
        ious += [iou(r.mask(k), mv.labels[r.frame] == i) for k, i in enumerate(r.obj_ids)]
    assert np.mean(ious) > 0.6, np.round(ious, 2)
