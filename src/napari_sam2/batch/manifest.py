"""Batch manifests: one CSV row per movie (or per glob of movies) -> :class:`Job` objects.

A manifest is a CSV file with a header row. ``movie`` is the only required column; the others
are optional and may be left empty on any row::

    movie,prompts,seed_labels,seed_frame,find_cells,axes,channel
    plate1/A01.tif,plate1/A01_clicks.csv,,,,,
    plate1/A02.tif,,plate1/A02_frame0.tif,0,,,
    plate2/*.tif,,,,0,TCYX,1
    plate3/*.tif,plate3/{stem}_clicks.csv,,,,,

* Relative paths are relative to the manifest's folder.
* A ``movie`` with ``*``, ``?`` or ``[`` is a glob (``**`` descends into folders): every file it
  matches becomes a job with the row's options; ``{stem}`` in ``prompts``, ``boxes`` or
  ``seed_labels`` is replaced by each movie's file name without its extension.
* Columns: ``movie`` (TIFF, ``.npy`` or ``.zarr``), ``prompts`` (clicks CSV), ``boxes`` (boxes
  CSV), ``seed_labels`` (label TIFF or ``.npy``), ``seed_frame`` (default 0), ``find_cells``
  (a frame), ``axes`` (e.g. ``TCYX``), ``channel`` (``1``, or ``0;1;2`` for R, G, B),
  ``direction`` (``forward``, ``backward``, ``both``), ``divisions`` (``yes``/``no``) and
  ``name`` (the output folder, default: the movie's stem).

The files themselves are read by the workers: a missing or broken prompt file fails only its
movie. Structural mistakes (no ``movie`` column, an unknown column, a bad number, a glob that
matches nothing, two movies with the same output name) raise :class:`ManifestError` at once.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "Job", "ManifestError", "as_jobs", "read_manifest"]

#: The manifest's columns, in the order they are documented.
COLUMNS = (
    "movie",
    "prompts",
    "boxes",
    "seed_labels",
    "seed_frame",
    "find_cells",
    "axes",
    "channel",
    "direction",
    "divisions",
    "name",
)
_PATH_COLUMNS = ("prompts", "boxes", "seed_labels")
_GLOB_CHARS = "*?["
_DIRECTIONS = ("forward", "backward", "both")
_YES = {"1", "yes", "y", "true", "on"}
_NO = {"", "0", "no", "n", "false", "off"}


class ManifestError(ValueError):
    """A manifest (or a job list) that cannot be run; the message names the row and the fix."""


@dataclass(frozen=True)
class Job:
    """One movie of a batch and how its objects are given.

    Attributes:
        movie: path of the movie (TIFF, ``.npy`` or ``.zarr``), absolute or relative to the
            current folder.
        prompts: clicks CSV (napari Points CSV or ``frame,y,x,obj_id,positive``), or None.
        boxes: boxes CSV (napari Shapes CSV or ``frame,y0,x0,y1,x1,obj_id``), or None.
        seed_labels: label TIFF / ``.npy`` seeding ``seed_frame``, or None.
        seed_frame: the frame the seed labels belong to.
        find_cells: a frame on which cells are found automatically, or None.
        axes: axes of the movie (``"TYX"``, ``"TCYX"``...), None to infer them.
        channel: the channel the model sees, up to 3 as R, G, B, or None.
        direction: ``"forward"``, ``"backward"`` or ``"both"``.
        divisions: track cell divisions (daughters get new ids).
        name: the output folder's name under the batch's output folder (default: the movie's
            file name without extension).
    """

    movie: str
    prompts: str | None = None
    boxes: str | None = None
    seed_labels: str | None = None
    seed_frame: int = 0
    find_cells: int | None = None
    axes: str | None = None
    channel: int | tuple[int, ...] | None = None
    direction: str = "both"
    divisions: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", movie_stem(self.movie))
        if self.direction not in _DIRECTIONS:
            raise ManifestError(
                f"{self.movie}: direction {self.direction!r} is not one of {', '.join(_DIRECTIONS)}"
            )
        if not (self.prompts or self.boxes or self.seed_labels or self.find_cells is not None):
            raise ManifestError(
                f"{self.movie}: no prompts: give prompts, boxes, seed_labels or find_cells"
            )
        bad = set(self.name) & set('/\\:*?"<>|') or self.name in (".", "..")
        if bad or self.name.startswith("."):
            raise ManifestError(
                f"{self.movie}: {self.name!r} cannot be an output folder name; give a plain "
                "name (letters, digits, '-', '_') in the name column"
            )


def movie_stem(path: str | os.PathLike) -> str:
    """The movie's file name without its extension(s): ``a/b/A01.ome.tif`` -> ``A01``."""
    name = Path(str(path).rstrip("/\\")).name
    for ext in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem


def _optional_int(text: str, column: str, where: str, minimum: int = 0) -> int | None:
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ManifestError(f"{where}: {column} {text!r} is not a whole number") from None
    if value < minimum:
        raise ManifestError(f"{where}: {column} must be >= {minimum}, got {value}")
    return value


def _channel(text: str, where: str) -> int | tuple[int, ...] | None:
    """``"1"`` -> 1, ``"0;1;2"`` (or ``0 1 2``, ``0,1,2``, ``0+1+2``) -> (0, 1, 2)."""
    if not text:
        return None
    parts = text.replace(";", " ").replace(",", " ").replace("+", " ").split()
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if not 1 <= len(values) <= 3 or min(values) < 0:
        raise ManifestError(
            f"{where}: channel {text!r}: give one channel index like 1, or up to three as R, G, "
            "B like 0;1;2"
        )
    return values[0] if len(values) == 1 else values


def _flag(text: str, column: str, where: str) -> bool:
    low = text.lower()
    if low in _YES:
        return True
    if low in _NO:
        return False
    raise ManifestError(f"{where}: {column} {text!r}: write yes or no")


def _resolve(path: str, base: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else base / p)


def _expand(movie: str) -> list[str]:
    """The files a movie entry names: itself, or the sorted matches of a glob."""
    if not any(c in movie for c in _GLOB_CHARS):
        return [movie]
    return sorted(glob.glob(movie, recursive=True))


def _row_jobs(row: Mapping[str, str], base: Path, where: str) -> list[Job]:
    movie = row["movie"]
    if not movie:
        raise ManifestError(f"{where}: the movie cell is empty")
    pattern = _resolve(movie, base)
    movies = _expand(pattern)
    if not movies:
        raise ManifestError(f"{where}: {movie!r} matches no file (relative to {base})")
    is_glob = movies != [pattern]
    if is_glob and row.get("name"):
        raise ManifestError(f"{where}: a glob row cannot have a name (every movie needs its own)")
    options: dict[str, Any] = {
        "seed_frame": _optional_int(row.get("seed_frame", ""), "seed_frame", where) or 0,
        "find_cells": _optional_int(row.get("find_cells", ""), "find_cells", where),
        "axes": row.get("axes") or None,
        "channel": _channel(row.get("channel", ""), where),
        "direction": (row.get("direction") or "both").lower(),
        "divisions": _flag(row.get("divisions", ""), "divisions", where),
        "name": row.get("name", ""),
    }
    jobs = []
    for m in movies:
        paths = {}
        for col in _PATH_COLUMNS:
            text = row.get(col, "")
            paths[col] = _resolve(text.replace("{stem}", movie_stem(m)), base) if text else None
        try:
            jobs.append(Job(movie=m, **paths, **options))
        except ManifestError as err:
            raise ManifestError(f"{where}: {err}") from None
    return jobs


def read_manifest(path: str | os.PathLike) -> list[Job]:
    """Read a batch manifest CSV (see the module docstring for its columns).

    Args:
        path: the manifest file; relative paths inside it are relative to its folder.

    Returns:
        One :class:`Job` per movie, in the manifest's order (globs sorted by file name).

    Raises:
        ManifestError: a missing file, no header or no ``movie`` column, an unknown column, a
            bad value, a glob matching nothing, two movies with one output name; the message
            names the line.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    base = path.resolve().parent
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ManifestError(f"{path.name} is empty; its first line must name the columns")
        header = [h.strip().lower().replace("-", "_").replace(" ", "_") for h in header]
        if "movie" not in header:
            raise ManifestError(
                f"{path.name}: the header has no 'movie' column; the first line must name the "
                f"columns, e.g. movie,prompts (known: {', '.join(COLUMNS)})"
            )
        unknown = [h for h in header if h not in COLUMNS]
        if unknown:
            raise ManifestError(
                f"{path.name}: unknown column(s) {', '.join(map(repr, unknown))}; the columns "
                f"are {', '.join(COLUMNS)}"
            )
        jobs: list[Job] = []
        for line, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                continue
            if len(cells) > len(header):
                raise ManifestError(
                    f"{path.name}, line {line}: {len(cells)} cells but {len(header)} columns "
                    "(quote a cell that holds a comma)"
                )
            row = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
            jobs += _row_jobs(row, base, f"{path.name}, line {line}")
    if not jobs:
        raise ManifestError(f"{path.name} lists no movie")
    check_unique_names(jobs)
    return jobs


def check_unique_names(jobs: Iterable[Job]) -> None:
    """ManifestError when two jobs would write to the same output folder."""
    seen: dict[str, str] = {}
    for job in jobs:
        other = seen.get(job.name)
        seen[job.name] = job.movie
        if other is not None:
            what = f"{job.movie} is listed twice: both" if other == job.movie else (
                f"{other} and {job.movie} would both"
            )
            raise ManifestError(
                f"{what} write to the output folder {job.name!r}; give one of them another name "
                "(the name column)"
            )


def as_jobs(jobs: Any) -> list[Job]:
    """Jobs from a manifest path, a :class:`Job`, a dict of Job fields, or a list of these.

    Dicts take the manifest's column names (``{"movie": "a.tif", "prompts": "a.csv"}``); their
    paths are used as given (relative to the current folder).

    Raises:
        ManifestError: an unknown field, a job without prompts, duplicate output names.
        TypeError: anything else.
    """
    if isinstance(jobs, (str, os.PathLike)):
        return read_manifest(jobs)
    if isinstance(jobs, (Job, Mapping)):
        jobs = [jobs]
    known = {f.name for f in fields(Job)}
    out: list[Job] = []
    for item in jobs:
        if isinstance(item, Job):
            out.append(item)
        elif isinstance(item, Mapping):
            unknown = sorted(set(item) - known)
            if unknown:
                raise ManifestError(
                    f"unknown job field(s) {', '.join(unknown)}; the fields are "
                    f"{', '.join(COLUMNS)}"
                )
            data = {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in item.items()}
            out.append(Job(**data))
        else:
            raise TypeError(
                f"a job must be a Job, a dict of its fields or a manifest path, not "
                f"{type(item).__name__}"
            )
    out = [replace(j, movie=str(j.movie)) for j in out]
    check_unique_names(out)
    return out
