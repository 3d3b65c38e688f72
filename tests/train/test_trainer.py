"""Trainer smoke tests: the loss falls within a few steps, the loss terms behave."""

from __future__ import annotations

import json

import numpy as np
import torch

from napari_sam2.model.config import get_config
from napari_sam2.train.clips import clip_stream
from napari_sam2.train.losses import loss_terms
from napari_sam2.train.train_config import TrainConfig
from napari_sam2.train.trainer import train


def test_loss_falls_in_a_few_steps(tmp_path):
    torch.set_num_threads(1)
    tcfg = TrainConfig(
        steps=16,
        clip_len=1,
        max_objects=4,
        correction_rounds=0,
        lr=3e-3,
        warmup_steps=1,
        kinds=("nuclei",),
        radius=(22.0, 30.0),
        focal_alpha=0.75,
        balanced_bce_weight=1.0,
        save_every=100,
    )
    cfg = get_config("test_tiny_256")
    clip = next(clip_stream(cfg, tcfg, np.random.default_rng(0)))

    def same_clip(_rng):
        while True:
            yield clip

    train("test_tiny_256", tcfg, tmp_path, clips=same_clip, log=None)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").open()]
    assert len(losses) == 16
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), np.round(losses, 3)
    assert (tmp_path / "model.pt").exists() and (tmp_path / "last.pt").exists()


def test_loss_terms_reward_the_right_mask():
    tcfg = TrainConfig(focal_alpha=0.75, balanced_bce_weight=1.0)
    target = torch.zeros(2, 64, 64)
    target[:, 20:40, 20:40] = 1
    good = (target * 20 - 10)[:, None].repeat(1, 3, 1, 1)  # (B, 3, h, w) logits
    bad = -good
    ious = torch.ones(2, 3)
    present = torch.full((2, 1), 5.0)
    loss_good, parts_good = loss_terms(good, ious, present, target, tcfg)
    loss_bad, parts_bad = loss_terms(bad, ious, present, target, tcfg)
    assert parts_good["iou"] == 1.0 and parts_bad["iou"] == 0.0
    assert loss_good < 0.05 * loss_bad
    # the IoU head is trained toward the real IoU: predicting 1 for a wrong mask costs ~1
    assert parts_bad["iou_head"] > 0.9 and parts_good["iou_head"] < 1e-6
    # absent object: presence BCE only, and it prefers a negative score
    empty = torch.zeros_like(target)
    _, absent_pos = loss_terms(good, ious, present, empty, tcfg)
    _, absent_neg = loss_terms(good, ious, -present, empty, tcfg)
    assert absent_neg["score"] < absent_pos["score"]
    assert absent_pos["mask"] == 0.0


def test_motion_step_sets_how_far_training_cells_move():
    """``motion_step`` draws each clip's random-walk step: fast clips move their targets more."""
    from scipy import ndimage

    cfg = get_config("test_tiny_256")

    def mean_shift(step_range) -> float:
        tcfg = TrainConfig(clip_len=4, kinds=("nuclei",), radius=(18.0, 24.0),
                           motion_step=step_range, single_frame_fraction=0.0)
        shifts = []
        stream = clip_stream(cfg, tcfg, np.random.default_rng(0))
        for _ in range(3):
            clip = next(stream)
            t = clip.targets.numpy() > 0.5  # (K, N, S, S)
            for n in range(t.shape[1]):
                if t[0, n].any() and t[-1, n].any():
                    a = np.array(ndimage.center_of_mass(t[0, n]))
                    b = np.array(ndimage.center_of_mass(t[-1, n]))
                    shifts.append(np.hypot(*(a - b)))
        return float(np.mean(shifts))

    slow, fast = mean_shift((0.2, 0.2)), mean_shift((6.0, 6.0))
    assert fast > 3 * slow, (slow, fast)


def test_density_sets_how_crowded_training_clips_are():
    """``density`` draws each clip's cell count: denser clips hold more, more touching cells."""
    from scipy import ndimage

    cfg = get_config("test_tiny_256")

    def crowding(density) -> tuple[float, float]:
        tcfg = TrainConfig(clip_len=1, kinds=("nuclei",), radius=(18.0, 24.0), density=density,
                           max_objects=100)
        stream = clip_stream(cfg, tcfg, np.random.default_rng(0))
        counts, touching = [], []
        for _ in range(3):
            t = next(stream).targets[0].numpy() > 0.5  # (N, S, S)
            counts.append(len(t))
            grown = np.stack([ndimage.binary_dilation(m, iterations=2) for m in t])
            # objects whose 2-px dilation reaches another object
            touching.append(sum(bool((grown[i] & t[np.arange(len(t)) != i].any(0)).any())
                                for i in range(len(t))))
        return float(np.mean(counts)), float(np.mean(touching))

    (sparse_n, sparse_touch), (dense_n, dense_touch) = crowding((0.1, 0.1)), crowding((0.6, 0.6))
    assert dense_n > 3 * sparse_n, (sparse_n, dense_n)
    assert dense_touch > sparse_touch, (sparse_touch, dense_touch)


def test_clip_workers_render_clips_in_background_processes(tmp_path):
    from napari_sam2.train.clip_workers import ClipWorkers

    cfg = get_config("test_tiny_256")
    tcfg = TrainConfig(clip_len=2, max_objects=3, families=("nuclei", "bacteria"),
                       frame_size=64, seed=5)
    with ClipWorkers(cfg, tcfg, 2) as workers:
        clips = [next(workers) for _ in range(4)]
        procs = list(workers._procs)
    s = cfg.image_size
    for clip in clips:
        assert clip.images.shape == (2, 3, s, s) and clip.images.dtype == torch.float32
        assert clip.targets.shape[:2][0] == 2 and 1 <= clip.targets.shape[1] <= 3
        assert set(torch.unique(clip.targets).tolist()) <= {0.0, 1.0}
        assert clip.targets[0].flatten(1).sum(1).min() > 0
    assert not any(p.is_alive() for p in procs)  # closed with the context


def test_training_stops_at_the_deadline_and_resumes(tmp_path):
    import time

    torch.set_num_threads(1)
    tcfg = TrainConfig(steps=50, clip_len=1, max_objects=2, correction_rounds=0,
                       warmup_steps=1, kinds=("nuclei",), radius=(22.0, 30.0), frame_size=96,
                       save_every=100)
    train("test_tiny_256", tcfg, tmp_path, log=None, stop_at=time.time())
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()]
    assert steps == [1]  # one step, then saved and stopped
    assert (tmp_path / "last.pt").exists()
    tcfg.steps = 3
    train("test_tiny_256", tcfg, tmp_path, log=None, clip_workers=1)
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()]
    assert steps == [1, 2, 3]
