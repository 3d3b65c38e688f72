"""Argument checks of :meth:`~napari_sam2.video.session.VideoSession.propagate`, done when it is
called (not at the first frame), and the frame ranges it visits.

Every mistake is a ``ValueError`` whose message shows plain numbers (``5``, not
``np.int64(5)``), and a guard that refuses a session driven from two threads at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["DIRECTIONS", "ThreadGuard", "check_frame_index", "plan_passes"]

DIRECTIONS = ("forward", "backward", "both")


def _plain(value: Any) -> str:
    """``value`` for a message: numpy scalars as plain numbers, anything else as repr."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def check_frame_index(value: Any, num_frames: int, name: str = "frame") -> int:
    """``value`` as a frame index in ``[0, num_frames)``.

    Raises:
        ValueError: not a whole number (bool, float, string...) or out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole frame number, got {_plain(value)}")
    t = int(value)
    if not 0 <= t < num_frames:
        raise ValueError(f"{name} {t} is out of range: the movie has frames 0..{num_frames - 1}")
    return t


def plan_passes(start: Any, direction: Any, stop: Any, num_frames: int) -> list[tuple[range, bool]]:
    """The frames :meth:`VideoSession.propagate` visits, as (frames in order, reverse) passes.

    Args:
        start: the first frame.
        direction: "forward", "backward" or "both".
        stop: last frame to visit (inclusive) or None (the movie's end in that direction); for
            "both" a (first, last) pair with first <= start <= last.
        num_frames: frames T of the movie.

    Raises:
        ValueError: an unknown direction, a frame that is not a whole number or out of range,
            a stop on the wrong side of start, or a "both" stop that is not a pair.
    """
    if not isinstance(direction, str) or direction not in DIRECTIONS:
        raise ValueError(
            f"direction must be 'forward', 'backward' or 'both', got {_plain(direction)}"
        )
    start = check_frame_index(start, num_frames, "start")
    last = num_frames - 1
    if direction == "both":
        if stop is None:
            lo, hi = 0, last
        else:
            if isinstance(stop, (str, bytes)) or not isinstance(stop, (Sequence, np.ndarray)):
                raise ValueError(
                    "with direction 'both', stop must be a (first, last) pair of frames, e.g. "
                    f"(0, {last}); got {_plain(stop)}"
                )
            if len(stop) != 2:
                raise ValueError(
                    f"with direction 'both', stop must be a (first, last) pair of frames; got "
                    f"{len(stop)} values"
                )
            lo = check_frame_index(stop[0], num_frames, "stop (first)")
            hi = check_frame_index(stop[1], num_frames, "stop (last)")
            if not lo <= start <= hi:
                raise ValueError(
                    f"stop (first={lo}, last={hi}) must enclose start {start}: "
                    "first <= start <= last"
                )
        return [(range(start, hi + 1), False), (range(start - 1, lo - 1, -1), True)]
    if direction == "forward":
        hi = last if stop is None else check_frame_index(stop, num_frames, "stop")
        if hi < start:
            raise ValueError(
                f"stop {hi} is before start {start}: forward propagation needs stop >= start "
                "(use direction='backward' to go back in time)"
            )
        return [(range(start, hi + 1), False)]
    lo = 0 if stop is None else check_frame_index(stop, num_frames, "stop")
    if lo > start:
        raise ValueError(
            f"stop {lo} is after start {start}: backward propagation needs stop <= start "
            "(use direction='forward' to go forward in time)"
        )
    return [(range(start, lo - 1, -1), True)]


class ThreadGuard:
    """Refuses a second thread while one thread uses an object (re-entrant for that thread).

    A :class:`~napari_sam2.video.session.VideoSession` is not thread-safe: its memory banks
    and caches change at every frame. The guard is held for a whole propagation (from its
    first frame until the generator finishes or is closed) and for each prompt, so another
    thread gets a clear error instead of corrupted state.

    Args:
        what: the object's name for the message.
    """

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._owner_name = ""
        self._depth = 0

    @contextlib.contextmanager
    def use(self) -> Iterator[None]:
        """Hold the object for the calling thread.

        Raises:
            RuntimeError: another thread holds it.
        """
        me = threading.current_thread()
        with self._lock:
            if self._owner is not None and self._owner != me.ident:
                raise RuntimeError(
                    f"{self._what} is not thread-safe: thread {self._owner_name!r} is using it "
                    f"(a propagation or a prompt in progress) and thread {me.name!r} tried "
                    "too. Use a session from one thread at a time (finish or close() the other "
                    "propagation first), or give each thread its own session (sessions may "
                    "share one model)."
                )
            self._owner, self._owner_name = me.ident, me.name
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
