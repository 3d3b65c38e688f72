"""What a Dask worker runs for one movie of a batch: :func:`run_job`.

Each worker process keeps the models it loaded (:func:`worker_model`, keyed by model name or
path and device), so a worker loads its model once however many movies it segments. A movie is
segmented by :func:`napari_sam2.pipeline.segment_movie` (the same call as a movie-by-movie
script, hence the same labels), and its outputs are written by the package's exporters into a
staging folder that becomes ``DIR/<name>`` in one rename (:mod:`.outputs`). Nothing here imports
napari or Qt; ``distributed`` is imported only to read the batch's stop event.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .manifest import Job
from .outputs import (
    CELLS_FILE,
    CTC_FOLDER,
    LABELS_FILE,
    MovieResult,
    staging_folder,
    sweep_staging,
    write_result_json,
)

__all__ = ["RunOptions", "run_job", "worker_model"]

# (model, device) -> SAM2Model, per worker process; a batch normally uses one model
_MODELS: OrderedDict[tuple[str, str], Any] = OrderedDict()
_MODELS_KEPT = 2
_MODELS_LOCK = threading.Lock()
# how often (seconds) a running movie asks the scheduler whether the batch was stopped
_STOP_POLL_S = 0.5
# glibc mallopt parameters, and the values a worker sets when the nanny shrank the trim threshold
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_TRIM_BYTES, _MMAP_BYTES = 128 * 2**20, 32 * 2**20


@dataclass(frozen=True)
class RunOptions:
    """Options shared by every movie of a batch (sent to the workers with each task).

    Attributes:
        out_dir: the batch's output folder (absolute; on a cluster, a shared file system).
        model: model name (``"micro"``, ``"sam2.1_hiera_tiny"``, a test config) or checkpoint
            path, loaded by each worker.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``; with ``"cuda"`` (or ``"auto"``
            with CUDA) and several GPUs, worker ``k`` of a local cluster uses GPU
            ``k mod #GPUs``.
        settings: :class:`~napari_sam2.video.memory_bank.MemorySettings` or None (defaults).
        precision: ``"fp32"`` or ``"bf16"``.
        ctc: also write a Cell Tracking Challenge folder ``ctc/``.
        csv: also write per-object measurements ``cells.csv``.
        torch_threads: torch threads per task (None: leave the worker's setting).
        stop_event: name of the ``distributed.Event`` that stops the batch (None: none).
    """

    out_dir: str
    model: str
    device: str = "auto"
    settings: Any = None
    precision: str = "fp32"
    ctc: bool = False
    csv: bool = False
    torch_threads: int | None = None
    stop_event: str | None = None


class Cancelled(Exception):
    """The batch was stopped before this movie finished."""


class _StopFlag:
    """``is_set()`` of the batch's ``distributed.Event``, asked at most every
    ``_STOP_POLL_S`` seconds (``segment_movie`` checks its ``cancel`` after every frame)."""

    def __init__(self, name: str | None) -> None:
        self._event = None
        if name is not None:
            from distributed import Event

            self._event = Event(name)
        self._set = False
        self._last = 0.0

    def is_set(self) -> bool:
        if self._set or self._event is None:
            return self._set
        now = time.monotonic()
        if now - self._last >= _STOP_POLL_S:
            self._last = now
            self._set = bool(self._event.is_set())
        return self._set


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return ""


def _device(device: str) -> str:
    """``"cuda"`` (or ``"auto"`` on a machine with CUDA) -> ``"cuda:k"`` for worker ``k`` of a
    local cluster when several GPUs are visible (one worker per GPU); anything else unchanged."""
    if device not in ("cuda", "auto"):
        return device
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    name = _worker_name()
    if count > 1 and name.isdigit():
        return f"cuda:{int(name) % count}"
    return device


def _keep_freed_memory() -> bool:
    """Undo the 64 kB ``MALLOC_TRIM_THRESHOLD_`` that Dask's nanny gives its workers.

    With it glibc hands freed memory back to the OS at once, so the tensors of every frame are
    page-faulted in again: a movie took 1.3-2.5x longer in a worker than in a plain process on a
    2-core Xeon. glibc's own limits are restored instead (freed memory up to 128 MiB kept,
    blocks from 32 MiB mapped separately). Returns True when they were set.
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(
            libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES)
            and libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_BYTES)
        )
    except (OSError, AttributeError):  # not glibc (musl): nothing to undo
        return False


def worker_model(model: str, device: str = "auto"):
    """The model of this worker process, loaded on first use and kept (at most two kept).

    Random-weight test configs (``"test_tiny_256"``) are built after ``torch.manual_seed(0)``,
    so every worker holds the same weights (those of ``napari-sam2 segment --model ...``).

    Returns:
        (SAM2Model, seconds spent loading it now; 0.0 when it was cached).
    """
    from ..weights.load import load_model

    key = (str(model), _device(device))
    with _MODELS_LOCK:
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key], 0.0
        import torch

        if not _MODELS:
            _keep_freed_memory()
        t0 = time.perf_counter()
        torch.manual_seed(0)
        net = load_model(key[0], device=key[1], progress=None)
        _MODELS[key] = net
        while len(_MODELS) > _MODELS_KEPT:
            _MODELS.popitem(last=False)
        return net, time.perf_counter() - t0


def open_movie(path: str) -> Any:
    """A lazily read movie: a TIFF path (read by ``FrameSource`` frame by frame), a
    memory-mapped ``.npy`` or a ``zarr`` array (an OME-Zarr group gives its level ``0``)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"movie not found: {path}")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        import numpy as np

        return np.load(p, mmap_mode="r")
    if suffix == ".zarr":
        try:
            import zarr
        except ImportError:
            raise ImportError(
                f"{p.name}: reading zarr movies needs zarr (pip install zarr)"
            ) from None
        node = zarr.open(str(p), mode="r")
        if hasattr(node, "shape"):
            return node
        if "0" in node:
            return node["0"]
        raise ValueError(f"{p.name} is a zarr group without an array '0'; give the array's path")
    if p.is_dir():
        raise ValueError(f"{path} is a folder; give a TIFF, .npy or .zarr movie")
    return str(p)


def _write_outputs(stage: Path, job: Job, movie: Any, labels, lineage, net, opts: RunOptions):
    """labels.tif (with the movie's pixel size), and on request ctc/ and cells.csv."""
    from ..io.tiff import read_pixel_size, save_labels_tiff

    pixel_size = None
    if isinstance(movie, str):
        try:
            pixel_size = read_pixel_size(movie)
        except Exception:  # noqa: BLE001 - odd tags: no pixel size
            pixel_size = None
    save_labels_tiff(stage / LABELS_FILE, labels, pixel_size=pixel_size)
    if opts.ctc:
        from ..io.ctc import save_ctc

        save_ctc(stage / CTC_FOLDER, labels, lineage=lineage)
    if opts.csv:
        from ..io.measurements import RawFrames, measure, save_measurements_csv
        from ..video.frames import frame_source_for

        with frame_source_for(movie, net.config, axes=job.axes, channel=job.channel) as src:
            table = measure(labels, RawFrames(src))  # stored frames, as `segment --csv`
        save_measurements_csv(stage / CELLS_FILE, table)


def _one_line(err: BaseException) -> str:
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return text or type(err).__name__


def run_job(job: Job, opts: RunOptions) -> MovieResult:
    """Segment one movie and write its outputs atomically under ``opts.out_dir/job.name``.

    A failure (missing or corrupt movie, bad prompts, an empty result) is returned as a
    ``"failed"`` result and writes nothing; a stopped batch gives ``"cancelled"`` and writes
    nothing. Only a dying process leaves a staging folder behind, which the next attempt of the
    movie deletes first.

    Returns:
        The :class:`~napari_sam2.batch.outputs.MovieResult` (``seconds`` excludes model loading).
    """
    import numpy as np

    from ..pipeline import segment_movie

    result = MovieResult(movie=job.movie, name=job.name, status="failed", worker=_worker_name())
    stop = _StopFlag(opts.stop_event)
    sweep_staging(opts.out_dir, [job.name])  # left by an earlier attempt whose worker died
    try:
        if stop.is_set():
            raise Cancelled
        net, result.model_seconds = worker_model(opts.model, opts.device)
        if opts.torch_threads:
            import torch

            torch.set_num_threads(int(opts.torch_threads))
        t0 = time.perf_counter()
        with staging_folder(opts.out_dir, job.name) as stage:
            movie = open_movie(job.movie)
            labels, lineage = segment_movie(
                movie,
                job.prompts,
                model=net,
                settings=opts.settings,
                direction=job.direction,
                axes=job.axes,
                channel=job.channel,
                boxes=job.boxes,
                precision=opts.precision,
                cancel=stop,
                seed_labels=job.seed_labels,
                seed_frame=job.seed_frame,
                find_cells=job.find_cells,
                divisions=True if job.divisions else None,
                return_lineage=True,
            )
            if stop.is_set():
                raise Cancelled
            result.frames = int(labels.shape[0])
            result.objects = int(np.count_nonzero(np.unique(labels)))
            if not result.objects:
                raise ValueError(
                    f"the result is empty: no object was found on any of the {result.frames} "
                    "frames (check that the prompts are (y, x) on the right frames)"
                )
            _write_outputs(stage, job, movie, labels, lineage, net, opts)
            result.seconds = time.perf_counter() - t0
            write_result_json(
                stage,
                {
                    "movie": job.movie,
                    "frames": result.frames,
                    "objects": result.objects,
                    "seconds": round(result.seconds, 3),
                    "model": net.config.name,
                    "device": str(net.device),
                    "divisions": {str(k): v for k, v in sorted(lineage.items())},
                    "worker": result.worker,
                    "pid": os.getpid(),
                },
            )
        result.status = "done"
    except Cancelled:
        result.status = "cancelled"
        result.error = "the batch was stopped before this movie finished"
    except Exception as err:  # noqa: BLE001 - reported in the summary; the batch goes on
        result.error = _one_line(err)
    return result
