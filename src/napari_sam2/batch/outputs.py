"""The output folder of a batch: one finished folder per movie, written atomically, and the
summary table.

Layout of ``DIR``::

    DIR/summary.csv             movie, status, frames, objects, seconds, error (one row a movie)
    DIR/<name>/labels.tif       (T, Y, X) labels of the movie
    DIR/<name>/ctc/             Cell Tracking Challenge result folder (on request)
    DIR/<name>/cells.csv        per-object, per-frame measurements (on request)
    DIR/<name>/result.json      frames, objects, seconds, model, device of the finished run

A movie's files are written into a hidden staging folder ``DIR/.<name>.partial-<token>`` and
moved to ``DIR/<name>`` with one rename once all of them are complete, so ``DIR/<name>`` exists
only for a finished movie: a worker that dies or is cancelled mid-movie leaves at most a
staging folder, which the next attempt (or the end of the batch) deletes.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..io.tiff import atomic_open

__all__ = [
    "SUMMARY_COLUMNS",
    "MovieResult",
    "finished_result",
    "staging_folder",
    "sweep_staging",
    "write_summary",
]

LABELS_FILE = "labels.tif"
CTC_FOLDER = "ctc"
CELLS_FILE = "cells.csv"
RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.csv"
SUMMARY_COLUMNS = ("movie", "status", "frames", "objects", "seconds", "error")
_STAGING = ".partial-"
_OLD = ".replaced-"


@dataclass
class MovieResult:
    """What happened to one movie of a batch.

    Attributes:
        movie: the movie's path.
        name: its output folder's name (under the batch's output folder).
        status: ``"done"`` (segmented now), ``"skipped"`` (finished by an earlier run),
            ``"failed"`` (see ``error``; nothing written) or ``"cancelled"`` (stopped before it
            finished; nothing written).
        frames: frames in the movie (None when unknown).
        objects: objects in the labels (None when unknown).
        seconds: wall time of the movie on its worker, model loading excluded (None when
            unknown).
        error: one line saying what went wrong ("" when nothing did).
        worker: the worker that ran it ("" when none did).
        model_seconds: time its worker spent loading the model for it (0.0 when the worker
            had it loaded already; None when unknown). Not in the summary.
    """

    movie: str
    name: str
    status: str
    frames: int | None = None
    objects: int | None = None
    seconds: float | None = None
    error: str = ""
    worker: str = ""
    model_seconds: float | None = None


def movie_folder(out_dir: str | os.PathLike, name: str) -> Path:
    """``DIR/<name>``: where a finished movie's files are."""
    return Path(out_dir) / name


def finished_result(
    out_dir: str | os.PathLike, name: str, movie: str, *, ctc: bool, csv: bool
) -> MovieResult | None:
    """The result of an earlier run of this movie when its folder holds every requested output
    (labels, and CTC folder / measurements when asked), else None."""
    folder = movie_folder(out_dir, name)
    needed = [folder / LABELS_FILE, folder / RESULT_FILE]
    if ctc:
        needed.append(folder / CTC_FOLDER / "res_track.txt")
    if csv:
        needed.append(folder / CELLS_FILE)
    if not all(p.exists() for p in needed):
        return None
    try:
        info = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return MovieResult(
        movie=movie,
        name=name,
        status="skipped",
        frames=info.get("frames"),
        objects=info.get("objects"),
        seconds=info.get("seconds"),
    )


def write_result_json(folder: Path, info: dict[str, Any]) -> None:
    """``result.json`` in a staging folder (frames, objects, seconds, model, device...)."""
    with atomic_open(folder / RESULT_FILE, "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def sweep_staging(out_dir: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete the staging (and replaced) folders of ``names`` left by a dead or cancelled
    worker. Only call it when no worker is writing these movies. Returns what was deleted."""
    root = Path(out_dir)
    if not root.is_dir():
        return []
    prefixes = tuple(f".{n}{mark}" for n in names for mark in (_STAGING, _OLD))
    gone = []
    for entry in root.iterdir():
        if entry.name.startswith(prefixes) and entry.is_dir():
            _remove(entry)
            gone.append(entry)
    return gone


@contextlib.contextmanager
def staging_folder(out_dir: str | os.PathLike, name: str) -> Iterator[Path]:
    """A fresh hidden folder to write a movie's outputs into, moved to ``DIR/<name>`` when the
    ``with`` block ends without an exception (an earlier ``DIR/<name>`` is replaced), deleted
    when it raises (KeyboardInterrupt and cancellation included).

    Yields:
        The staging folder (on the same file system as ``DIR/<name>``, so the move is a rename).
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    stage = root / f".{name}{_STAGING}{token}"
    stage.mkdir()
    try:
        yield stage
        final = movie_folder(root, name)
        old = root / f".{name}{_OLD}{token}"
        if final.exists():
            os.replace(final, old)  # a folder cannot be renamed onto a non-empty folder
        os.replace(stage, final)
        _remove(old)
    except BaseException:
        _remove(stage)
        raise


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return value


def write_summary(out_dir: str | os.PathLike, results: Iterable[MovieResult]) -> Path:
    """Write ``DIR/summary.csv`` atomically: one row per movie (:data:`SUMMARY_COLUMNS`),
    seconds with two decimals, unknown values empty."""
    path = Path(out_dir) / SUMMARY_FILE
    with atomic_open(path, "w", newline="", encoding="utf-8", durable=False) as fh:
        writer = csv.writer(fh)
        writer.writerow(SUMMARY_COLUMNS)
        for r in results:
            row = asdict(r)
            writer.writerow([_cell(row[c]) for c in SUMMARY_COLUMNS])
    return path
