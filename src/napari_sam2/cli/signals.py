"""Stop long work cleanly on SIGINT, SIGTERM and SIGHUP, keeping what is finished.

Ctrl-C sends SIGINT; schedulers (SLURM, PBS, Kubernetes, ``timeout``) send SIGTERM at a time
limit, and closing a terminal or an SSH session sends SIGHUP. Python's default handlers end the
process at once on the last two, so a long propagation would lose every finished frame.
:class:`StopOnSignals` turns the first of these signals into a :class:`threading.Event` that
the work polls after each step (a frame, a movie of a batch); a second signal raises
``KeyboardInterrupt`` at once. The command line and the batch runner share it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["STOP_SIGNALS", "StopOnSignals", "signal_name"]

#: The signals that ask a process to stop (SIGHUP does not exist on Windows).
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def signal_name(signum: int) -> str:
    """'SIGTERM' for 15, etc."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopOnSignals:
    """Context manager: the first stop signal sets :attr:`event`; a second one raises
    ``KeyboardInterrupt``. The previous handlers are restored on exit.

    Handlers can only be installed from the main thread; elsewhere the context manager
    installs nothing and :attr:`event` is set only by the caller (e.g. a GUI's cancel button).

    Args:
        on_first: called with the signal's name (e.g. "SIGTERM") when the first signal
            arrives, to tell the user what happens next.
        signals: the signals to handle (default :data:`STOP_SIGNALS`).
        event: an existing event to set (default: a new one).

    Attributes:
        event: set by the first signal; the work stops after its current step.
        signum: the first signal received, or None.
    """

    def __init__(
        self,
        on_first: Callable[[str], None] | None = None,
        signals: tuple[int, ...] = STOP_SIGNALS,
        event: threading.Event | None = None,
    ) -> None:
        self.event = event if event is not None else threading.Event()
        self.signum: int | None = None
        self._on_first = on_first
        self._signals = tuple(signals)
        self._old: dict[int, Any] = {}

    @property
    def exit_code(self) -> int:
        """The shell's exit status for a process ended by the signal: 128 + its number
        (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP); 130 when none was received."""
        return 128 + (self.signum if self.signum is not None else int(signal.SIGINT))

    def _handler(self, signum: int, frame: Any) -> None:  # noqa: ARG002 - handler signature
        if self.event.is_set():
            raise KeyboardInterrupt
        self.signum = signum
        self.event.set()
        if self._on_first is not None:
            self._on_first(signal_name(signum))

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self._signals:
                try:
                    self._old[sig] = signal.signal(sig, self._handler)
                except (OSError, ValueError):  # not supported here
                    continue
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._old.clear()
