"""Run a frame's independent model work (object chunks, the next frame's encoding) in threads.

On a CPU, PyTorch parallelises each operation over its intra-op threads. That pays for big
models, but a small model's operations (the bundled micro model: 256-px input, 16 x 16 tokens)
are too short to split well. Measured on 2 cores, 10 objects at 512 x 512 (one frame's memory
attention + decoder + memory encoder): 168 ms on 1 intra-op thread, 134 ms on 2, 106 ms as two
chunks of 5 objects side by side on one thread each; the micro image encoder took 33 ms on 1
thread and 45 ms on 2. Whole frames (``benchmarks/bench_many_cells.py --objects 10 --size 512``,
2 threads): 0.178 s with 1 worker, 0.164 s with 2 (the next frame's encoding overlapped).
PyTorch releases the GIL inside its kernels, so plain Python threads suffice.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import torch

__all__ = ["Failed", "WorkerPool", "auto_workers", "captured"]

#: Models up to this input size run their tasks side by side on a CPU by default; bigger ones
#: (Meta's, 1024 px) keep PyTorch's intra-op threading, which scales well on their big
#: operations (and one object's work could not be balanced against an encoding anyway).
SMALL_MODEL_IMAGE_SIZE = 512
_MAX_AUTO_WORKERS = 8


def auto_workers(device: torch.device, image_size: int) -> int:
    """Default number of workers: CPU threads for a small model on a CPU, else 1."""
    if device.type != "cpu" or image_size > SMALL_MODEL_IMAGE_SIZE:
        return 1
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1, _MAX_AUTO_WORKERS))


@contextlib.contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    """Each task on one thread (no oversubscription); the caller's setting is restored."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class WorkerPool:
    """A lazily started thread pool of ``size`` workers (``size`` 1: run in the caller).

    Args:
        size: number of tasks run at once (>= 1).
    """

    def __init__(self, size: int) -> None:
        if int(size) < 1:
            raise ValueError(f"workers must be >= 1, got {size}")
        self.size = int(size)
        self._executor: ThreadPoolExecutor | None = None

    def run(self, tasks: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run ``tasks`` (no-argument callables) and return their results in order.

        With one worker or one task they run in the calling thread, unchanged. Otherwise
        they run side by side with one intra-op thread each; every task finishes before
        this returns, and the first exception raised by a task is re-raised.
        """
        if self.size == 1 or len(tasks) <= 1:
            return [task() for task in tasks]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.size, thread_name_prefix="napari-sam2")
            weakref.finalize(self, self._executor.shutdown, wait=False)
        with _one_intra_op_thread():
            futures = [self._executor.submit(task) for task in tasks]
            wait(futures)
        return [f.result() for f in futures]


class Failed:
    """What a :func:`captured` task returns instead of raising.

    Attributes:
        error: the exception the task raised.
    """

    def __init__(self, error: Exception) -> None:
        self.error = error


def captured(task: Callable[[], Any]) -> Callable[[], Any]:
    """``task`` made to return :class:`Failed` instead of raising an ``Exception``.

    For work done ahead of time (the next frame's encoding): its failure must not discard
    the results of the tasks run beside it; the caller drops it and the error is raised
    again, in order, when that work is needed.
    """

    def run() -> Any:
        try:
            return task()
        except Exception as err:  # noqa: BLE001 - handed back to the caller
            return Failed(err)

    return run
