"""The trainer's clip stream draws clips from the look families when ``families`` is set."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

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
