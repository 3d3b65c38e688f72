"""The frame cache behind ``FrameSource``: bounded, one preparation per frame, generations."""

from __future__ import annotations

import threading

import pytest
import torch

from napari_sam2.video._frame_cache import FrameCache


class _Counting:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, t: int) -> torch.Tensor:
        self.calls.append(t)
        return torch.full((1,), float(t))


def test_each_frame_is_prepared_once_and_the_cache_is_bounded():
    compute = _Counting()
    cache = FrameCache(compute, size=2)
    for t in (0, 0, 1, 0, 2, 2):
        assert cache.get(t).item() == t
    assert compute.calls == [0, 1, 2]
    assert len(cache) == 2 and 2 in cache and 0 in cache and 1 not in cache  # 1: least recent
    cache.get(1)
    assert compute.calls == [0, 1, 2, 1]


def test_prefetch_runs_in_the_worker_and_get_waits_for_it():
    started, release = threading.Event(), threading.Event()
    threads: list[str] = []

    def compute(t: int) -> torch.Tensor:
        threads.append(threading.current_thread().name)
        started.set()
        release.wait(5)
        return torch.full((1,), float(t))

    cache = FrameCache(compute, size=2)
    cache.prefetch(3)
    assert started.wait(5) and 3 in cache
    cache.prefetch(3)  # already pending: not queued again
    release.set()
    assert cache.get(3).item() == 3
    assert threads == ["frames_0"]
    cache.close()
    cache.prefetch(4)  # closed: ignored
    assert 4 not in cache and len(cache) == 0


def test_invalidate_drops_results_of_the_old_generation():
    cache: FrameCache

    def compute(t: int) -> torch.Tensor:
        if t == 5:
            cache.invalidate()  # e.g. the region of interest changed while frame 5 was prepared
        return torch.zeros(1)

    cache = FrameCache(compute, size=4)
    cache.get(1)
    cache.get(5)
    assert len(cache) == 0  # frame 1 was forgotten, frame 5's result belonged to the old one


def test_a_failed_prefetch_is_forgotten_and_the_next_get_tries_again():
    fail = [True]

    def compute(t: int) -> torch.Tensor:
        if fail[0]:
            raise OSError("disk hiccup")
        return torch.ones(1)

    cache = FrameCache(compute, size=2)
    cache.prefetch(2)
    with pytest.raises(OSError, match="hiccup"):
        cache.get(2)
    assert 2 not in cache
    fail[0] = False
    assert cache.get(2).item() == 1
    cache.close()
