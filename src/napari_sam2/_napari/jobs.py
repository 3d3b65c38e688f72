"""A serial job queue on napari's thread workers.

The :class:`~napari_sam2.video.session.VideoSession` is not thread-safe, so everything that
touches it (prompt inference, propagation, model loading, exports reading the label volume)
runs as a :class:`Job`, one at a time, in a napari ``thread_worker``. Results, progress and
errors come back on the main thread through the worker's signals; the UI never waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psygnal import Signal

__all__ = ["Job", "JobQueue"]

_log = logging.getLogger("napari_sam2")


@dataclass(eq=False)
class Job:
    """One unit of work for the worker thread.

    Attributes:
        name: what it does, in words ("segmenting object 3 on frame 12"); used in progress
            bars and error messages.
        fn: run in the worker thread. A generator function streams values to ``on_yield``.
        kind: "prompt", "propagate", "model", "export" or "other" (cancel drops queued
            propagations, downloads and model loads; prompts and exports stay queued).
        on_result: called on the main thread with ``fn``'s return value.
        on_yield: called on the main thread with each yielded value.
        on_error: called on the main thread with the exception (after the notification).
        total: progress-bar length (yields), None for a busy indicator, 0 for no napari bar.
        cancel: set by :meth:`JobQueue.cancel`; long jobs check it between steps.
    """

    name: str
    fn: Callable[[], Any]
    kind: str = "other"
    on_result: Callable[[Any], None] | None = None
    on_yield: Callable[[Any], None] | None = None
    on_error: Callable[[BaseException], None] | None = None
    total: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    done: bool = False
    submitted: float = field(default_factory=time.perf_counter)
    started: float | None = None
    finished: float | None = None


class JobQueue:
    """Runs :class:`Job` s one after another in napari thread workers.

    Signals:
        busy_changed(bool): work started / all work finished.
        job_started(Job), job_finished(Job): around each job (main thread).
    """

    busy_changed = Signal(bool)
    job_started = Signal(object)
    job_finished = Signal(object)

    def __init__(self, notify_errors: bool = True) -> None:
        self._queue: deque[Job] = deque()
        self._worker = None
        self.current: Job | None = None
        self._pbar = None
        self.notify_errors = notify_errors
        self.last_error: BaseException | None = None
        self._closed = False

    # ------------------------------------------------------------------ state
    @property
    def busy(self) -> bool:
        """True while a job runs or waits."""
        return self.current is not None or bool(self._queue)

    @property
    def pending(self) -> list[Job]:
        return list(self._queue)

    # ------------------------------------------------------------------ control
    def submit(self, job: Job) -> Job:
        """Queue a job; it starts as soon as the worker is free."""
        if self._closed:
            raise RuntimeError("the SAM 2 widget was closed")
        was_busy = self.busy
        self._queue.append(job)
        if not was_busy:
            self.busy_changed.emit(True)
        self._start_next()
        return job

    def cancel(self, kinds: tuple[str, ...] = ("propagate", "model", "other")) -> bool:
        """Ask the running job to stop (if of one of ``kinds``) and drop queued jobs of those
        kinds. Returns whether anything was cancelled. Finished frames are kept."""
        hit = False
        for job in list(self._queue):
            if job.kind in kinds:
                self._queue.remove(job)
                job.cancel.set()
                job.done = True
                hit = True
        if self.current is not None and self.current.kind in kinds:
            self.current.cancel.set()
            hit = True
        if not self.busy:
            self.busy_changed.emit(False)
        return hit

    def clear(self) -> None:
        """Drop all queued jobs and cancel the running one."""
        self._queue.clear()
        if self.current is not None:
            self.current.cancel.set()

    def wait(self, timeout: float | None = None, job: Job | None = None) -> None:
        """Process Qt events until the queue is idle (or ``job`` is done).

        Safe to call from scripts and the napari console (the main thread keeps handling
        events, so progress and label updates still show).

        Raises:
            TimeoutError: not done within ``timeout`` seconds.
        """
        from qtpy.QtCore import QCoreApplication, QEventLoop

        deadline = None if timeout is None else time.monotonic() + timeout
        app = QCoreApplication.instance()

        def pending() -> bool:
            return (not job.done) if job is not None else self.busy

        while pending():
            if app is not None:
                QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.002)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"SAM 2 work still running after {timeout} s")

    def close(self) -> None:
        self._closed = True
        self.clear()

    # ------------------------------------------------------------------ internals
    def _start_next(self) -> None:
        if self.current is not None:
            return
        if not self._queue:
            return
        from napari.qt.threading import GeneratorWorker, create_worker

        job = self._queue.popleft()
        self.current = job
        job.started = time.perf_counter()
        worker = create_worker(job.fn, _start_thread=False)
        if isinstance(worker, GeneratorWorker):
            worker.yielded.connect(lambda value, j=job: self._on_yield(j, value))
        worker.returned.connect(lambda value, j=job: self._on_returned(j, value))
        worker.errored.connect(lambda exc, j=job: self._on_errored(j, exc))
        worker.finished.connect(lambda j=job: self._on_finished(j))
        self._worker = worker
        self._pbar = self._make_pbar(job)
        self.job_started.emit(job)
        worker.start()

    def _make_pbar(self, job: Job):
        if job.total == 0:
            return None
        from napari.utils import progress

        return progress(total=job.total or 0, desc=f"SAM 2: {job.name}")

    def _on_yield(self, job: Job, value: Any) -> None:
        if self._pbar is not None and job.total:
            self._pbar.update(1)
        if job.on_yield is not None and not self._closed:
            try:
                job.on_yield(value)
            except Exception as exc:  # noqa: BLE001 - a display error must not stop the job
                _log.exception("napari-sam2: error while showing progress")
                self.last_error = exc

    def _on_returned(self, job: Job, value: Any) -> None:
        job.result = value
        if job.on_result is not None and not self._closed:
            try:
                job.on_result(value)
            except Exception as exc:  # noqa: BLE001
                self._on_errored(job, exc)

    def _on_errored(self, job: Job, exc: BaseException) -> None:
        job.error = exc
        self.last_error = exc
        _log.error("napari-sam2: %s failed", job.name, exc_info=exc)
        if self.notify_errors and not self._closed:
            from napari.utils.notifications import show_error, show_info

            if job.cancel.is_set():
                show_info(f"SAM 2: {job.name}: cancelled")
            else:
                show_error(f"SAM 2: {job.name} failed: {exc}")
        if job.on_error is not None and not self._closed:
            job.on_error(exc)

    def _on_finished(self, job: Job) -> None:
        job.done = True
        job.finished = time.perf_counter()
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self._worker = None
        self.current = None
        self.job_finished.emit(job)
        if self._queue and not self._closed:
            self._start_next()
        elif not self._queue:
            self.busy_changed.emit(False)
