"""A serial job queue on napari's thread workers.

The :class:`~napari_sam2.video.session.VideoSession` is not thread-safe, so everything that
touches it (prompt inference, propagation, model loading, exports reading the label volume)
runs as a :class:`Job`, one at a time, in a napari ``thread_worker``. Results, progress and
errors come back on the main thread through the worker's signals; the UI never waits.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psygnal import Signal

__all__ = ["Job", "JobError", "JobQueue"]

_log = logging.getLogger("napari_sam2")

#: Jobs without a known length get a napari busy indicator once they run this long (ms).
PBAR_DELAY_MS = 300
#: Progress bars are repainted at most this often (s): every repaint of the main window costs
#: a full canvas composite, which is slow with software OpenGL (remote desktops, Xvfb).
PBAR_INTERVAL_S = 0.25


class JobError(Exception):
    """Carries a job's RuntimeError out of a generator worker.

    superqt's GeneratorWorker takes any RuntimeError from the generator for "the worker was
    deleted" and then never reports it nor finishes, which would stall the queue (torch reports
    out-of-memory and CUDA errors as RuntimeError), so generator jobs re-raise it wrapped.
    """


def _guarded(fn: Callable[[], Any]) -> Callable[[], Any]:
    if not inspect.isgeneratorfunction(fn):
        return fn

    def gen():
        try:
            return (yield from fn())
        except RuntimeError as exc:
            raise JobError(str(exc)) from exc

    return gen


@dataclass(eq=False)
class Job:
    """One unit of work for the worker thread.

    Attributes:
        name: what it does, in words ("segmenting object 3 on frame 12"); used in progress
            bars and error messages.
        fn: run in the worker thread. A generator function streams values to ``on_yield``.
        kind: "prompt", "propagate", "model", "export" or "other" (cancel drops queued
            propagations, downloads and model loads; prompts and exports stay queued).
        on_start: called on the main thread when the job starts.
        on_result: called on the main thread with ``fn``'s return value.
        on_yield: called on the main thread with each yielded value.
        on_error: called on the main thread with the exception (after the notification).
        total: progress-bar length (yields), None for a busy indicator, 0 for no napari bar.
        cancel: set by :meth:`JobQueue.cancel`; long jobs check it between steps.
    """

    name: str
    fn: Callable[[], Any]
    kind: str = "other"
    on_start: Callable[[], None] | None = None
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


@functools.lru_cache(maxsize=1)
def software_opengl() -> bool:
    """Whether napari's canvas is drawn by a software OpenGL renderer (llvmpipe, swrast...:
    remote desktops, virtual machines, Xvfb). Unknown -> False."""
    try:
        from vispy.gloo import gl
        from vispy.gloo.context import get_current_canvas

        canvas = get_current_canvas()
        if canvas is None:
            return False
        canvas.set_current()
        renderer = str(gl.glGetParameter(gl.GL_RENDERER)).lower()
    except Exception:  # noqa: BLE001 - no GL context: assume hardware
        return False
    return any(k in renderer for k in ("llvmpipe", "softpipe", "swrast", "software", "gdi"))


class JobQueue:
    """Runs :class:`Job` s one after another in napari thread workers.

    Progress of jobs with a known length goes to napari's activity panel and to the
    ``progress`` signal, at most every :data:`PBAR_INTERVAL_S`. napari's panel also animates an
    "in progress" icon for as long as a bar exists; with software OpenGL every frame of that
    animation re-composites the whole window, which made propagation about 4x slower in our
    measurements (Xvfb + llvmpipe), so by default (``napari_progress=None``) napari's bars are
    left out when the canvas is software-rendered and only the widget shows progress.

    Signals:
        busy_changed(bool): work started / all work finished.
        job_started(Job), job_finished(Job): around each job (main thread).
        progress(Job, int, int): steps done, total (throttled).
    """

    busy_changed = Signal(bool)
    job_started = Signal(object)
    job_finished = Signal(object)
    progress = Signal(object, int, int)

    def __init__(self, notify_errors: bool = True, napari_progress: bool | None = None) -> None:
        self._queue: deque[Job] = deque()
        self._worker = None
        self.current: Job | None = None
        self._pbar = None
        self._pbar_pending = 0  # yields not yet shown in the progress bar
        self._pbar_shown_at = 0.0
        self._steps = 0
        self.napari_progress = napari_progress
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
        worker = create_worker(_guarded(job.fn), _start_thread=False, _ignore_errors=True)
        if isinstance(worker, GeneratorWorker):
            worker.yielded.connect(lambda value, j=job: self._on_yield(j, value))
        worker.returned.connect(lambda value, j=job: self._on_returned(j, value))
        worker.errored.connect(lambda exc, j=job: self._on_errored(j, exc))
        worker.finished.connect(lambda j=job: self._on_finished(j))
        self._worker = worker
        self._pbar = None
        self._pbar_pending = 0
        self._steps = 0
        self._pbar_shown_at = time.perf_counter()
        if job.total:
            self._pbar = self._make_pbar(job)
            self.progress.emit(job, 0, job.total)
        elif job.total is None:
            # a busy indicator only for work that takes a while (most clicks are quicker)
            from qtpy.QtCore import QTimer

            QTimer.singleShot(PBAR_DELAY_MS, lambda j=job: self._late_pbar(j))
        if job.on_start is not None:
            job.on_start()
        self.job_started.emit(job)
        worker.start()

    def _use_napari_progress(self) -> bool:
        if self.napari_progress is None:
            return not software_opengl()
        return self.napari_progress

    def _make_pbar(self, job: Job):
        if not self._use_napari_progress():
            return None
        from napari.utils import progress

        return progress(total=job.total or 0, desc=f"SAM 2: {job.name}")

    def _late_pbar(self, job: Job) -> None:
        if self.current is job and self._pbar is None and not self._closed:
            self._pbar = self._make_pbar(job)

    def _on_yield(self, job: Job, value: Any) -> None:
        if job.total:
            # repaint progress bars a few times per second, not on every step
            self._steps += 1
            self._pbar_pending += 1
            now = time.perf_counter()
            if now - self._pbar_shown_at >= PBAR_INTERVAL_S:
                if self._pbar is not None:
                    self._pbar.update(self._pbar_pending)
                self._pbar_pending = 0
                self._pbar_shown_at = now
                self.progress.emit(job, self._steps, job.total)
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
        if isinstance(exc, JobError) and exc.__cause__ is not None:
            exc = exc.__cause__
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
        if job.total:
            self.progress.emit(job, self._steps, job.total)
        self._worker = None
        self.current = None
        self.job_finished.emit(job)
        if self._queue and not self._closed:
            self._start_next()
        elif not self._queue:
            self.busy_changed.emit(False)
