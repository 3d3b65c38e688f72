"""``segment_many``: segment many movies on Dask distributed, one movie per task.

::

    import napari_sam2 as ns

    results = ns.segment_many("manifest.csv", out_dir="results", model="micro")
    failed = [r for r in results if r.status == "failed"]

The driver (this module) reads the jobs, skips the movies finished by an earlier run, submits
one :func:`~napari_sam2.batch.task.run_job` task per remaining movie, shows the progress, and
keeps ``DIR/summary.csv`` up to date after every movie. Ctrl-C sets the batch's stop event: the
running movies stop after their current frame and write nothing, the waiting ones do not start,
the finished ones stay.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cluster import (
    cpu_cores,
    default_size,
    gpu_count,
    local_client,
    remote_client,
    require_distributed,
)
from .manifest import Job, as_jobs
from .outputs import MovieResult, finished_result, sweep_staging, write_summary
from .task import RunOptions, run_job

__all__ = ["BatchInterrupted", "segment_many"]

#: seconds the driver waits, after Ctrl-C, for the running movies to stop after their frame
STOP_GRACE_S = 60.0

#: ``progress`` argument: None (silent), ``"tqdm"`` (a bar and info lines on stderr) or
#: ``callback(done, total, result)`` after every movie
Progress = Callable[[int, int, MovieResult], None] | str | None


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the batch; ``results`` holds every movie's result (the finished ones are
    kept on disk, the others are ``"cancelled"``)."""

    def __init__(self, results: list[MovieResult]) -> None:
        super().__init__("the batch was interrupted")
        self.results = results


class _Reporter:
    """Progress on stderr (a tqdm bar over movies and one line per failure), or a callback."""

    def __init__(self, progress: Progress, total: int) -> None:
        if progress not in (None, "tqdm") and not callable(progress):
            raise TypeError(
                f"progress must be None, 'tqdm' or a callable (done, total, result); got "
                f"{progress!r}"
            )
        self._progress = progress
        self.total = total
        self.done = 0
        self._bar = None

    def start(self) -> None:
        """Show the bar (after the info lines about the cluster)."""
        if self._progress == "tqdm":
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total, desc="movies", unit="movie", file=sys.stderr, dynamic_ncols=True
            )

    def info(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        elif self._progress == "tqdm":
            print(text, file=sys.stderr, flush=True)

    def update(self, result: MovieResult) -> None:
        self.done += 1
        if self._bar is not None:
            if result.status == "failed":
                self._bar.write(f"failed: {result.movie}: {result.error}", file=sys.stderr)
            self._bar.update(1)
        elif callable(self._progress):
            self._progress(self.done, self.total, result)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _check_options(options: dict[str, Any]) -> None:
    if options["device"] not in ("auto", "cpu", "cuda", "mps"):
        raise ValueError(f"device must be auto, cpu, cuda or mps, got {options['device']!r}")
    if options["precision"] not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16, got {options['precision']!r}")
    model = options["model"]
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            "model must be a model name or a checkpoint path (each worker loads it once), "
            f"not {type(model).__name__}"
        )


def _future_result(future: Any, job: Job) -> MovieResult:
    """The task's MovieResult, or a failed one saying why the task itself did not finish."""
    from distributed.scheduler import KilledWorker

    status = future.status
    if status == "finished":
        return future.result()
    if status == "cancelled":
        return MovieResult(job.movie, job.name, "cancelled", error="cancelled before it ran")
    err = future.exception()
    if isinstance(err, KilledWorker):
        text = (
            "the workers running this movie died every time (out of memory? give the workers "
            "more memory, or use fewer per machine)"
        )
    else:
        text = f"{type(err).__name__}: {err}"
    return MovieResult(job.movie, job.name, "failed", error=text)


def _open_client(
    client: Any,
    n_workers: int | None,
    threads_per_worker: int | None,
    torch_threads: int | None,
    device: str,
    dashboard_address: str,
    reporter: _Reporter,
) -> tuple[Any, Any, int | None]:
    """(client, what to close at the end or None, torch threads per movie): a given client,
    a connection to a scheduler address, or a new local cluster sized to the machine."""
    if client is not None and not isinstance(client, str):
        return client, None, torch_threads
    if isinstance(client, str):
        remote = remote_client(client)
        return remote, remote, torch_threads
    if device == "cuda" and not gpu_count(device):
        raise RuntimeError(
            "device 'cuda' but this machine has no CUDA GPU that torch can use; use device "
            "'cpu' or 'auto', or join a cluster with GPU workers by its scheduler address"
        )
    k = threads_per_worker or 1
    n, auto_threads = default_size(device, k)
    if n_workers is not None:
        if n_workers < 1:
            raise ValueError(f"n_workers must be at least 1, got {n_workers}")
        n, auto_threads = n_workers, max(1, cpu_cores() // n_workers // k)
    reporter.info(f"starting a local Dask cluster of {n} worker process(es)")
    local, cluster = local_client(n, k, dashboard_address)
    return local, cluster, auto_threads if torch_threads is None else torch_threads


def _collect_stopped(client: Any, futures: dict[Any, Job], results: dict[str, MovieResult]):
    """After the stop event is set: wait up to :data:`STOP_GRACE_S` for the running movies to
    stop (a second Ctrl-C stops waiting), cancel the rest, and record every movie's result.
    Returns True when no task is running any more."""
    from distributed import wait

    try:
        wait(list(futures), timeout=STOP_GRACE_S)
    except (KeyboardInterrupt, TimeoutError):
        pass
    stopped = all(f.done() for f in futures)
    client.cancel([f for f in futures if not f.done()])
    for fut, job in futures.items():
        if job.name not in results:
            finished = fut.done() and fut.status == "finished"
            results[job.name] = (
                _future_result(fut, job) if finished
                else MovieResult(job.movie, job.name, "cancelled", error="interrupted")
            )
    return stopped


def segment_many(
    jobs: Any,
    *,
    out_dir: str | os.PathLike,
    client: Any = None,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    model: str | os.PathLike | None = None,
    device: str = "auto",
    settings=None,
    precision: str = "fp32",
    ctc: bool = False,
    csv: bool = False,
    force: bool = False,
    torch_threads: int | None = None,
    progress: Progress = "tqdm",
    dashboard_address: str = ":8787",
) -> list[MovieResult]:
    """Segment many movies on Dask distributed: one task per movie, the model loaded once per
    worker, each movie's outputs written atomically to ``out_dir/<name>/``.

    Every movie gets the labels of :func:`napari_sam2.segment_movie` called on it alone with
    the same arguments. Outputs per movie: ``labels.tif`` ((T, Y, X) uint16/uint32, the movie's
    pixel size), ``ctc/`` and ``cells.csv`` on request, ``result.json``; ``out_dir/summary.csv``
    lists movie, status, frames, objects, seconds and error, rewritten after every movie.

    Args:
        jobs: a manifest CSV path (see :mod:`napari_sam2.batch.manifest`), a
            :class:`~napari_sam2.batch.manifest.Job`, a dict of Job fields, or a list of them.
        out_dir: the output folder (created; on a cluster, a folder every worker can write).
        client: a ``distributed.Client``, a scheduler address (``"tcp://host:8786"``), or None:
            a local cluster of worker processes sized to this machine, closed at the end.
        n_workers: worker processes of the local cluster (default: one per GPU, else one per
            core as memory allows; see :func:`~napari_sam2.batch.cluster.default_size`).
        threads_per_worker: movies each local worker runs at once (default 1).
        model: a model name (``"micro"``, ``"sam2.1_hiera_tiny"``...) or checkpoint path;
            None: the first cached official SAM 2.1 model on this machine, else micro.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` (one GPU per local worker) or ``"mps"``.
        settings: :class:`~napari_sam2.video.memory_bank.MemorySettings` (None: defaults).
        precision: ``"fp32"`` or ``"bf16"``.
        ctc: also write each movie's Cell Tracking Challenge folder ``ctc/``.
        csv: also write each movie's per-object, per-frame measurements ``cells.csv``.
        force: redo movies finished by an earlier run (default: skip them).
        torch_threads: torch threads per movie (default for a local cluster: the cores divided
            among the movies running at once; for a given cluster: the workers' own setting).
        progress: None, ``"tqdm"`` (a bar, the dashboard address and failures on stderr) or
            ``callback(done, total, result)`` after every movie.
        dashboard_address: where the local cluster serves its dashboard (``":0"``: any port).

    Returns:
        One :class:`~napari_sam2.batch.outputs.MovieResult` per job, in the jobs' order.

    Raises:
        ManifestError: a bad manifest or job list (nothing is run).
        BatchInterrupted: Ctrl-C (a ``KeyboardInterrupt``); its ``results`` say what finished.
        ImportError: Dask distributed is not installed.
    """
    require_distributed()
    job_list = as_jobs(jobs)
    if client is not None and (n_workers is not None or threads_per_worker is not None):
        raise ValueError(
            "n_workers and threads_per_worker size the local cluster; a given client or "
            "scheduler brings its own workers"
        )
    if model is None:
        from ..weights.load import _default_name

        model = _default_name()
    options = {"device": device, "precision": precision, "model": model}
    _check_options(options)
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    names = [j.name for j in job_list]
    sweep_staging(out, names)  # left by an earlier run that was killed

    results: dict[str, MovieResult] = {}
    todo: list[Job] = []
    for job in job_list:
        earlier = None if force else finished_result(out, job.name, job.movie, ctc=ctc, csv=csv)
        if earlier is not None:
            results[job.name] = earlier
        else:
            todo.append(job)

    def ordered() -> list[MovieResult]:
        return [results[n] for n in names if n in results]

    reporter = _Reporter(progress, len(todo))
    if len(results):
        reporter.info(f"skipping {len(results)} movie(s) finished earlier (force redoes them)")
    if not todo:
        reporter.close()
        write_summary(out, ordered())
        return ordered()

    client, own, torch_threads = _open_client(
        client, n_workers, threads_per_worker, torch_threads, device, dashboard_address, reporter
    )
    from distributed import Event, as_completed

    futures: dict[Any, Job] = {}
    interrupted = all_stopped = False
    try:
        token = uuid.uuid4().hex[:10]
        stop = Event(f"napari-sam2-stop-{token}", client=client)
        opts = RunOptions(
            out_dir=str(out), model=str(model), device=device, settings=settings,
            precision=precision, ctc=ctc, csv=csv, torch_threads=torch_threads,
            stop_event=stop.name,
        )
        n_now = len(client.scheduler_info().get("workers", {}))
        link = getattr(client, "dashboard_link", None)
        reporter.info(
            f"{len(todo)} movie(s) on {n_now} worker(s), model {model}"
            + (f"; dashboard: {link}" if link else "")
        )
        reporter.start()
        for job in todo:
            key = f"segment-{job.name}-{token}"
            futures[client.submit(run_job, job, opts, key=key, pure=False)] = job
        try:
            for fut in as_completed(futures):
                job = futures[fut]
                results[job.name] = _future_result(fut, job)
                reporter.update(results[job.name])
                write_summary(out, ordered())
            all_stopped = True
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            reporter.info(
                "stopping: the running movies stop after their current frame and write "
                "nothing; finished movies are kept (Ctrl-C again to stop at once)"
            )
            all_stopped = _collect_stopped(client, futures, results)
    finally:
        reporter.close()
        if own is not None:
            with _quiet_shutdown():
                client.close()
                if own is not client:
                    own.close()
        if (own is not None and own is not client) or all_stopped:
            # no worker writes these movies any more: delete what a dead worker left
            sweep_staging(out, [j.name for j in todo])
        write_summary(out, ordered())
    if interrupted:
        raise BatchInterrupted(ordered())
    return ordered()


class _quiet_shutdown:
    """Silence the cluster's log lines while it shuts down (workers report the closing)."""

    def __enter__(self) -> None:
        import logging

        self._loggers = [logging.getLogger(n) for n in ("distributed", "tornado")]
        self._levels = [lg.level for lg in self._loggers]
        for lg in self._loggers:
            lg.setLevel(logging.CRITICAL)

    def __exit__(self, *exc: object) -> None:
        for lg, level in zip(self._loggers, self._levels):
            lg.setLevel(level)
