"""Processed frames kept for reuse, and the next frame prepared in the background, for
:class:`~napari_sam2.video.frames.FrameSource`.

:class:`FrameCache` keeps the last few model inputs (bounded) and runs one worker thread that
prepares a frame ahead of time (reading and normalising frame ``t + 1`` overlaps with the model
working on frame ``t``). Entries are keyed by frame and *generation*: when what a frame means
changes (a new region of interest, a redefined plane), :meth:`FrameCache.invalidate` starts a
new generation and results still being computed for the old one are dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor

import torch

__all__ = ["FrameCache"]


class FrameCache:
    """A bounded cache of prepared frames with one background worker.

    Args:
        compute: prepares frame ``t`` (called in the caller's thread or the worker's).
        size: how many prepared frames are kept (at least 1).
    """

    def __init__(self, compute: Callable[[int], torch.Tensor], size: int) -> None:
        self._compute = compute
        self._size = max(1, int(size))
        self._lock = threading.Lock()  # guards the entries, the generation and the worker
        self._entries: OrderedDict[tuple[int, int], Future | torch.Tensor] = OrderedDict()
        self._generation = 0
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self._closed = False

    def __len__(self) -> int:
        """Frames kept, ready or being prepared."""
        with self._lock:
            return len(self._entries)

    def __contains__(self, t: object) -> bool:
        """Whether frame ``t`` of the current generation is kept (ready or being prepared)."""
        with self._lock:
            return (t, self._generation) in self._entries

    def get(self, t: int) -> torch.Tensor:
        """Frame ``t`` prepared: from the cache, from a running prefetch, or computed now.

        Returns:
            The cached tensor itself (callers that hand it out should clone it).

        Raises:
            Whatever ``compute`` raised (a failed prefetch is forgotten, so the next call tries
            again).
        """
        with self._lock:
            key = (t, self._generation)
            entry = self._entries.get(key)
            if isinstance(entry, Future) and entry.cancelled():
                del self._entries[key]
                entry = None
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is None:
            result = self._compute(t)
            with self._lock:
                self._store(key, result)
            return result
        if not isinstance(entry, Future):
            return entry
        try:
            return entry.result()
        except CancelledError:  # cancelled by a newer prefetch request meanwhile
            result = self._compute(t)
            with self._lock:
                self._store(key, result)
            return result
        except Exception:
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            raise

    def _store(self, key: tuple[int, int], value: Future | torch.Tensor) -> None:
        """Keep ``value`` (unless its generation is over); evict and cancel the oldest.

        The caller holds the lock.
        """
        if key[1] != self._generation:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            _, old = self._entries.popitem(last=False)
            if isinstance(old, Future):
                old.cancel()

    def prefetch(self, t: int) -> None:
        """Start preparing frame ``t`` in the worker thread (no-op if cached or pending).

        At most one prefetch waits in the queue: a new request cancels an older one that has
        not started yet.
        """
        with self._lock:
            if self._closed:
                return
            key = (t, self._generation)
            if key in self._entries:
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frames")
            if self._pending is not None and self._pending.cancel():
                for k, v in list(self._entries.items()):
                    if v is self._pending:
                        del self._entries[k]
            fut = self._executor.submit(self._compute, t)
            self._pending = fut
            self._store(key, fut)

    def invalidate(self) -> None:
        """Forget every prepared frame and start a new generation."""
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def close(self) -> None:
        """Stop the worker (waiting for a running preparation) and drop everything."""
        with self._lock:
            self._closed = True
            ex, self._executor = self._executor, None
            self._entries.clear()
        if ex is not None:
            ex.shutdown(wait=True, cancel_futures=True)
