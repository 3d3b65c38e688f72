"""Object chunks and the next frame's encoding run side by side in worker threads (CPU)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from napari_sam2 import VideoSession
from napari_sam2.model.sam2 import SAM2Model
from napari_sam2.video._parallel import WorkerPool, auto_workers

POINTS = {1: (16, 18), 2: (32, 44), 3: (8, 56), 4: (40, 10)}


def _track(model, movie, workers: int, **kw):
    session = VideoSession(model, movie, axes="TYX", workers=workers)
    for obj, pt in POINTS.items():
        session.add_points(0, obj, [pt], [1])
    results = list(session.propagate(**kw))
    return session, results


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_workers_give_the_sequential_result(model, movie, workers):
    seq, seq_res = _track(model, movie, 1)
    par, par_res = _track(model, movie, workers)
    assert par.workers == workers
    assert len(np.unique(seq.labels())) > 3  # several objects really tracked
    # smaller batches round differently: a pixel whose logits tie may flip, nothing more
    assert np.mean(par.labels() != seq.labels()) < 1e-3
    for a, b in zip(seq_res, par_res, strict=True):
        assert a.frame == b.frame and a.obj_ids == b.obj_ids
        inter = (a.masks & b.masks).sum((1, 2))
        union = (a.masks | b.masks).sum((1, 2))
        assert np.all(inter >= 0.99 * union)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    for i in POINTS:  # the memories filed in the banks agree too
        for t, entry in seq._objects[i].bank.tracked.items():
            other = par._objects[i].bank.tracked[t]
            torch.testing.assert_close(other.mask_logits, entry.mask_logits, atol=1e-3, rtol=0)
            torch.testing.assert_close(other.obj_ptr, entry.obj_ptr, atol=1e-4, rtol=1e-4)


def test_micro_protocol_with_workers_equals_sequential(movie):
    """The micro model's mask prior (adjacent frame's mask per object) survives the split."""
    cfg = dataclasses.replace(model_config(), track_mask_prior=True, prompt_map_sigma=6.0)
    torch.manual_seed(0)
    micro_like = SAM2Model(cfg).eval()
    micro_like.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.data.fill_(6.0)
    seq, _ = _track(micro_like, movie, 1)
    par, _ = _track(micro_like, movie, 2)
    assert len(np.unique(seq.labels())) > 3
    assert np.mean(par.labels() != seq.labels()) < 1e-3


def model_config():
    from napari_sam2.model.config import get_config

    return get_config("test_tiny_256")


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_next_frame_is_encoded_ahead_but_never_past_the_stop(model, movie, direction):
    start, stop = (1, 4) if direction == "forward" else (6, 3)
    session = VideoSession(model, movie, axes="TYX", workers=2)
    session.add_points(start, 1, [(16, 18)], [1])
    session.add_points(start, 2, [(32, 44)], [1])
    visited = [r.frame for r in session.propagate(start=start, direction=direction, stop=stop)]
    assert len(visited) == 4
    # each visited frame encoded exactly once (the prompted one while prompting), none beyond
    assert session.stats["image_encodings"] == 4
    assert set(session.runner.cached_frames) == set(visited)


def test_intra_op_threads_are_restored(model, movie):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _track(model, movie, 2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_failing_task_raises_after_all_tasks_finished_and_the_pool_stays_usable():
    pool = WorkerPool(2)
    done = []

    def ok(k):
        done.append(k)
        return k

    def bad():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        pool.run([lambda: ok(1), bad, lambda: ok(2)])
    assert sorted(done) == [1, 2]
    assert pool.run([lambda: ok(3), lambda: ok(4)]) == [3, 4]


def test_pool_runs_in_the_caller_with_one_worker():
    import threading

    here = threading.get_ident()
    assert WorkerPool(1).run([threading.get_ident, threading.get_ident]) == [here, here]
    assert WorkerPool(4).run([threading.get_ident]) == [here]


def test_auto_workers_and_validation(model, movie):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert auto_workers(cuda, 256) == 1
    assert auto_workers(cpu, 1024) == 1  # Meta's models keep PyTorch's own threading
    assert 1 <= auto_workers(cpu, 256) <= max(1, torch.get_num_threads())
    assert VideoSession(model, movie, axes="TYX").workers == auto_workers(cpu, 256)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        VideoSession(model, movie, axes="TYX", workers=0)


def test_parallel_chunks_share_the_memory_budget(model, movie, monkeypatch):
    """Chunks running side by side split the automatic chunk size between them."""
    session = VideoSession(model, movie, axes="TYX", workers=2)
    monkeypatch.setattr(session.runner, "auto_chunk", lambda: 6)
    items = list(range(20))
    assert [len(c) for c in session.runner.chunks(items, parts=2)] == [3] * 6 + [2]
    assert [len(c) for c in session.runner.chunks(items[:4], parts=2)] == [2, 2]
    assert [len(c) for c in session.runner.chunks(items, parts=1)] == [6, 6, 6, 2]
    session.object_chunk_size = 5  # the user's explicit size holds per chunk
    assert [len(c) for c in session.runner.chunks(items, parts=2)] == [5, 5, 5, 5]
