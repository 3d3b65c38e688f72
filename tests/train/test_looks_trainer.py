"""The trainer's clip stream draws clips from the look families when ``families`` is set."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_sam2.model.config import get_config
from napari_sam2.train.clips import clip_stream
from napari_sam2.train.train_config import TrainConfig


def test_clip_stream_samples_look_families():
    cfg = get_config("test_tiny_256")
    tcfg = TrainConfig(clip_len=2, max_objects=3, families=("phase", "bacteria"),
                       frame_size=96)
    clips = list(itertools.islice(clip_stream(cfg, tcfg, np.random.default_rng(0)), 3))
    s = cfg.image_size
    for clip in clips:
        k, n = clip.targets.shape[:2]
        assert clip.images.shape == (2, 3, s, s)
        assert k == 2 and 1 <= n <= 3
        assert clip.targets[0].flatten(1).sum(1).min() > 0  # every object is on frame 0
    again = next(clip_stream(cfg, tcfg, np.random.default_rng(0)))
    assert np.array_equal(again.images.numpy(), clips[0].images.numpy())


def test_clip_stream_rejects_unknown_family():
    tcfg = TrainConfig(clip_len=1, families=("nuclei", "dic"), frame_size=64)
    stream = clip_stream(get_config("test_tiny_256"), tcfg, np.random.default_rng(3))
    with pytest.raises(ValueError, match="unknown look family"):
        list(itertools.islice(stream, 4))


def test_clip_stream_mixes_the_kinds_movies_in(monkeypatch):
    import napari_sam2.train.clips as clips

    def tagged(tag):
        def stream(cfg, tcfg, size, rng):
            while True:
                yield tag
        return stream

    monkeypatch.setattr(clips, "_look_stream", tagged("look"))
    monkeypatch.setattr(clips, "_kind_stream", tagged("kind"))
    cfg = get_config("test_tiny_256")
    for fraction, lo, hi in ((0.0, 0, 0), (0.3, 0.2, 0.4), (1.0, 1.0, 1.0)):
        tcfg = TrainConfig(families=("nuclei",), kinds=("nuclei",), kinds_fraction=fraction)
        drawn = list(itertools.islice(clip_stream(cfg, tcfg, np.random.default_rng(1)), 400))
        share = drawn.count("kind") / len(drawn)
        assert lo <= share <= hi, (fraction, share)
    bad = TrainConfig(families=("nuclei",), kinds_fraction=1.5)
    with pytest.raises(ValueError, match="kinds_fraction"):
        next(clip_stream(cfg, bad, np.random.default_rng(1)))


def test_checkpoint_config_follows_the_registered_size_range():
    from dataclasses import replace

    from napari_sam2.model.config import config_from_dict, config_to_dict

    cfg = get_config("micro")
    assert "object_size_range" not in config_to_dict(cfg)
    assert config_from_dict(config_to_dict(cfg)) == cfg
    tuned = replace(cfg, object_size_range=(0.2, 0.3))
    assert config_from_dict(config_to_dict(tuned)).object_size_range == (0.2, 0.3)


def test_zstack_clips_show_nuclei_that_end():
    cfg = get_config("test_tiny_256")
    tcfg = TrainConfig(clip_len=6, max_objects=6, kinds=("zstack",), frame_size=96,
                       radius=(10.0, 16.0))
    clips = list(itertools.islice(clip_stream(cfg, tcfg, np.random.default_rng(2)), 6))
    present = [c.targets.flatten(2).sum(2) > 0 for c in clips]  # (K, N) per clip
    assert all(p[0].all() for p in present)  # every object is on the first slice
    assert any((~p[1:]).any() for p in present)  # some end inside the clip
    assert all(c.images.shape == (6, 3, cfg.image_size, cfg.image_size) for c in clips)


def test_zoom_window_clips_show_an_object_as_the_zoom_does():
    """window_fraction=1: each clip is read through windows that follow one object, in which
    its extent is a share of the input inside the model's object_size_range; the window
    inputs are those of the automatic zoom (the whole frame's normalisation)."""
    from napari_sam2.train.clips import _to_model, _zoom_windows
    from napari_sam2.train.synthetic import make_movie
    from napari_sam2.video.frames import FrameSource

    cfg = get_config("test_tiny_256")
    lo, hi = cfg.object_size_range
    mv = make_movie(kind="nuclei", shape=(256, 256), radius=(6.0, 8.0), n_cells=12, n_frames=3,
                    seed=5, division_rate=0.0, enter_leave=0.0, step=4.0)
    rng = np.random.default_rng(0)
    shares = []
    for _ in range(20):
        windows = _zoom_windows(mv.labels, cfg, rng)
        assert len(windows) == 3
        sides = {(y1 - y0, x1 - x0) for y0, x0, y1, x1 in windows}
        assert len(sides) == 1 and next(iter(sides))[0] == next(iter(sides))[1]
        side = next(iter(sides))[0]
        assert 16 <= side < 256 and all(0 <= v <= 256 for w in windows for v in w)
        # the object whose window it is: the one nearest the first window's centre
        y0, x0, y1, x1 = windows[0]
        ids = [i for i in np.unique(mv.labels[0]) if i]
        cents = {i: np.argwhere(mv.labels[0] == i).mean(0) for i in ids}
        obj = min(ids, key=lambda i: np.hypot(*(cents[i] - ((y0 + y1) / 2, (x0 + x1) / 2))))
        for t, (y0, x0, y1, x1) in enumerate(windows):  # followed: inside its window
            cy, cx = np.argwhere(mv.labels[t] == obj).mean(0)
            assert y0 <= cy < y1 and x0 <= cx < x1
        ys, xs = np.nonzero(mv.labels[0] == obj)
        shares.append((max(np.ptp(ys), np.ptp(xs)) + 1) / side)
    assert lo <= np.median(shares) <= hi and max(shares) < 1.0

    clip = _to_model(mv.movie, mv.labels, [obj], cfg, windows)
    src = FrameSource(mv.movie, axes="TYX", image_size=cfg.image_size,
                      pixel_mean=cfg.pixel_mean, pixel_std=cfg.pixel_std, prefetch=False)
    torch.testing.assert_close(clip.images[2], src.window_inputs(2, [windows[2]])[0])
    assert clip.targets[0].mean() > (mv.labels[0] == obj).mean()  # enlarged
    with pytest.raises(ValueError, match="window_fraction"):
        next(clip_stream(cfg, TrainConfig(window_fraction=2.0), np.random.default_rng(0)))


def test_window_fraction_sets_the_share_of_window_clips(monkeypatch):
    import napari_sam2.train.clips as clips

    calls = []
    real = clips._zoom_windows

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(clips, "_zoom_windows", counted)
    cfg = get_config("test_tiny_256")
    for fraction, lo, hi in ((0.0, 0, 0), (0.5, 3, 9), (1.0, 12, 12)):
        calls.clear()
        tcfg = TrainConfig(clip_len=1, max_objects=2, families=("nuclei",), frame_size=128,
                           window_fraction=fraction)
        stream = clip_stream(cfg, tcfg, np.random.default_rng(2))
        clips_ = list(itertools.islice(stream, 12))
        assert all(c.images.shape[-2:] == (cfg.image_size,) * 2 for c in clips_)
        assert lo <= len(calls) <= hi, (fraction, len(calls))
