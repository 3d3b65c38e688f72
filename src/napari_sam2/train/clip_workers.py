"""Training clips rendered by background processes, for a GPU that trains faster than one CPU
core renders synthetic movies.

On a CPU the model's forward and backward pass dominate a training step, and
:func:`~napari_sam2.train.clips.clip_stream` runs in the training process. On a GPU a step of
the micro model takes a fraction of the time one synthetic 8-frame movie takes to render, so
:class:`ClipWorkers` renders clips in ``workers`` processes (each with its own random stream,
one torch thread) and hands them to the training loop through a bounded queue.

The order in which the workers' clips arrive depends on timing, so a run with workers is not
bit-reproducible (a run without them is); each worker's stream is seeded from the run's seed,
the step the run (re)started at and the worker's index, so a resumed run draws new movies.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
from collections.abc import Iterator

import numpy as np
import torch

from ..model.config import SAM2Config
from .clips import Clip
from .train_config import TrainConfig

__all__ = ["ClipWorkers"]

#: seconds to wait for one clip before checking that the workers are still alive
_POLL_S = 5.0


def _render(cfg: SAM2Config, tcfg: TrainConfig, entropy: list[int], out: mp.Queue,
            stop: mp.Event) -> None:
    """Worker body: put (images (K, 3, S, S) float32, targets (K, N, S, S) uint8) tuples on
    ``out`` until ``stop`` is set."""
    from .clips import clip_stream

    torch.set_num_threads(1)
    for clip in clip_stream(cfg, tcfg, np.random.default_rng(entropy)):
        item = (clip.images.numpy(), clip.targets.to(torch.uint8).numpy())
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                break
            except queue_mod.Full:
                continue
        if stop.is_set():
            return


class ClipWorkers(Iterator[Clip]):
    """Endless :class:`~napari_sam2.train.clips.Clip` s from ``workers`` processes.

    Args:
        cfg: model config (input size, pixel statistics).
        tcfg: what the clips look like (as for :func:`~napari_sam2.train.clips.clip_stream`).
        workers: number of rendering processes (>= 1).
        start_step: the step the run starts or resumes at (part of each worker's seed).
        depth: clips kept ready per worker.

    Use as a context manager, or call :meth:`close`, so the processes end with the run.
    """

    def __init__(self, cfg: SAM2Config, tcfg: TrainConfig, workers: int, *,
                 start_step: int = 0, depth: int = 2) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        ctx = mp.get_context("spawn")  # no fork of a process that holds torch threads
        self._queue = ctx.Queue(maxsize=max(1, depth * workers))
        self._stop = ctx.Event()
        self._procs = [
            ctx.Process(target=_render, daemon=True, name=f"clip-worker-{i}",
                        args=(cfg, tcfg, [tcfg.seed, start_step, i], self._queue, self._stop))
            for i in range(workers)
        ]
        for p in self._procs:
            p.start()

    def __next__(self) -> Clip:
        while True:
            try:
                images, targets = self._queue.get(timeout=_POLL_S)
            except queue_mod.Empty:
                dead = [p for p in self._procs if not p.is_alive()]
                if dead:
                    codes = ", ".join(f"{p.name} exit code {p.exitcode}" for p in dead)
                    self.close()
                    raise RuntimeError(f"a clip worker died ({codes}); run without "
                                       "clip workers to see its error") from None
                continue
            return Clip(torch.from_numpy(images), torch.from_numpy(targets).float())

    def close(self) -> None:
        """Stop and join the workers (idempotent)."""
        self._stop.set()
        while True:  # empty the queue so no worker blocks in put()
            try:
                self._queue.get_nowait()
            except (queue_mod.Empty, OSError, ValueError):
                break
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        self._procs = []

    def __enter__(self) -> ClipWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
