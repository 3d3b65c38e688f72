"""Prompt files: clicks and boxes for the command line and scripts, as CSV (read into the
records of :mod:`napari_sam2.video.prompts`).

Two click formats are read (the format is recognised from the header):

* **napari Points CSV**, as written by napari's "Save Selected Layer(s)" for a Points layer::

      index,axis-0,axis-1,axis-2,obj_id,positive
      0.0,0.0,105.0,88.0,1.0,1.0
      1.0,0.0,40.5,200.0,2.0,1.0

  ``axis-0`` is the frame t, ``axis-1`` is y and ``axis-2`` is x (image pixels). A 2-D layer
  (``axis-0`` = y, ``axis-1`` = x) puts every click on frame 0. A 4-D layer (3-D + time)
  writes ``axis-0..axis-3``: t, z, y, x (the click's ``z`` is set). A 3-D layer of a z-stack
  writes ``axis-0..axis-2`` with the slice in ``axis-0`` (read as the frame, which is the
  slice when the movie's axes are ``"ZYX"``). The layer's properties
  (features) ``obj_id`` (object id, >= 1) and ``positive`` (1/0, True/False) become columns;
  without ``obj_id`` every point is its own object (ids 1, 2, ... in file order), without
  ``positive`` every click is positive. The ``index`` column and other properties are ignored.

* **plain CSV**: ``frame,y,x,obj_id,positive`` (``positive`` optional, default 1). With a header
  row the columns may come in any order (``t`` is accepted for ``frame``, ``object_id`` for
  ``obj_id``) and extra columns are ignored; without a header they are taken in that order.
  An optional ``z`` column gives the slice of 3-D data (``frame`` may then be left out: 0).

Boxes, two formats (recognised from the header):

* plain ``frame,y0,x0,y1,x1,obj_id`` (header optional, same rules), corners in image pixels;
* **napari Shapes CSV**, as written by "Save Selected Layer(s)" for a Shapes layer of
  rectangles (4 rows per rectangle, one per corner)::

      index,shape-type,vertex-index,axis-0,axis-1,axis-2
      0,rectangle,0,0.0,10.0,20.0
      0,rectangle,1,0.0,10.0,40.0
      0,rectangle,2,0.0,30.0,40.0
      0,rectangle,3,0.0,30.0,20.0

  ``index`` numbers the shapes, ``axis-0`` is the frame (a 2-D layer, ``axis-0`` = y and
  ``axis-1`` = x, puts every box on frame 0). The box is the bounding box of the 4 corners (a
  rotated rectangle becomes its axis-aligned bounding box). Only rectangles are accepted. napari
  writes no properties in this file; an ``obj_id`` column added by hand gives the object ids,
  otherwise the shapes become objects ``first_id``, ``first_id + 1``, ... in ``index`` order.

Blank lines and lines starting with ``#`` are skipped. A malformed row raises
:class:`PromptFileError` naming the file and its line number. Coordinates are (y, x) in pixels
of the original frame (napari's order), frames count from 0.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..video.prompts import (
    BOX_ALIASES,
    BOX_COLUMNS,
    POINT_ALIASES,
    POINT_COLUMNS,
    BoxPrompt,
    PointPrompt,
    is_number,
    parse_flag,
    parse_int,
    parse_number,
    to_box_prompts,
    to_point_prompts,
)

__all__ = [
    "PromptFileError",
    "as_box_prompts",
    "as_point_prompts",
    "read_box_prompts",
    "read_point_prompts",
    "write_box_prompts",
    "write_point_prompts",
]

class PromptFileError(ValueError):
    """A prompt file (or one of its rows) cannot be used.

    Attributes:
        path: the file, or None for prompts given in memory.
        line: 1-based line number of the offending row, or None.
    """

    def __init__(
        self, message: str, path: str | os.PathLike | None = None, line: int | None = None
    ) -> None:
        where = ""
        if path is not None:
            where = f"{Path(path).name}, line {line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = None if path is None else Path(path)
        self.line = line


# --------------------------------------------------------------------------- reading


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped cells) of the non-blank, non-comment rows of a CSV file."""
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise PromptFileError("no such file", path) from None
    except OSError as err:
        raise PromptFileError(f"cannot open ({err.strerror or err})", path) from None
    with fh:
        reader = csv.reader(fh)
        try:
            for row in reader:
                cells = [c.strip() for c in row]
                if not any(cells) or cells[0].startswith("#"):
                    continue
                yield reader.line_num, cells
        except csv.Error as err:
            raise PromptFileError(f"not a valid CSV row ({err})", path, reader.line_num) from None
        except UnicodeDecodeError:
            raise PromptFileError("not a text (CSV) file", path) from None


def _header_map(
    cells: list[str], aliases: Mapping[str, str], path: Path, line: int
) -> dict[str, int]:
    """Column name -> index for a header row (unknown names ignored, duplicates refused)."""
    index: dict[str, int] = {}
    for i, name in enumerate(cells):
        key = aliases.get(name.strip().lower())
        if key is None:
            continue
        if key in index:
            raise PromptFileError(f"column {key!r} appears twice in the header", path, line)
        index[key] = i
    return index


def _cell(cells: list[str], index: Mapping[str, int], key: str) -> str:
    i = index[key]
    if i >= len(cells) or cells[i] == "":
        raise ValueError(f"missing value for {key!r}")
    return cells[i]


def _first_row(path: Path, what: str) -> tuple[Iterator[tuple[int, list[str]]], int, list[str]]:
    """(the remaining rows, line number, cells) of the first row of a prompt CSV file."""
    rows = _rows(path)
    first = next(rows, None)
    if first is None:
        raise PromptFileError(f"the file holds no {what}", path)
    return rows, first[0], first[1]


def _frame_yx(cells: list[str], cols: list[int]) -> tuple[int, float, float]:
    """(frame, y, x) of a napari CSV row whose axis columns ``cols`` are (t, y, x) or (y, x)
    (a 2-D layer: frame 0)."""
    t = len(cols) - 2  # index of the y column
    frame = parse_int(cells[cols[0]], "frame (axis-0)", 0) if t else 0
    y = parse_number(cells[cols[t]], f"y (axis-{t})")
    x = parse_number(cells[cols[t + 1]], f"x (axis-{t + 1})")
    return frame, y, x


def read_point_prompts(path: str | os.PathLike) -> list[PointPrompt]:
    """Read clicks from a napari Points CSV or a plain ``frame,y,x,obj_id,positive`` CSV.

    Args:
        path: the CSV file (see the module docstring for the formats).

    Returns:
        The clicks in file order.

    Raises:
        PromptFileError: missing file, bad header, malformed row (the message names the line),
            or no clicks at all.
    """
    path = Path(path)
    rows, line, cells = _first_row(path, "prompts")
    lowered = [c.lower() for c in cells]
    if "shape-type" in lowered:
        raise PromptFileError(
            "this is a napari Shapes CSV (boxes), not clicks: read it as boxes (--boxes)",
            path,
            line,
        )
    if any(c.startswith("axis-") for c in lowered):
        out = _read_napari_points(path, line, cells, rows)
    elif all(is_number(c) for c in cells if c):
        index = {k: i for i, k in enumerate(POINT_COLUMNS)}
        out = list(_plain_points(path, index, _chain([(line, cells)], rows), positional=True))
    else:
        index = _header_map(cells, POINT_ALIASES, path, line)
        missing = [k for k in ("frame", "y", "x", "obj_id") if k not in index]
        if missing == ["frame"] and "z" in index:
            missing = []
        if missing:
            raise PromptFileError(
                f"header lacks column(s) {', '.join(missing)}; expected frame,y,x,obj_id,positive "
                "or a napari Points CSV (index,axis-0,axis-1,axis-2,...)",
                path,
                line,
            )
        out = list(_plain_points(path, index, rows, positional=False))
    if not out:
        raise PromptFileError("the file holds no prompts (only a header)", path)
    return out


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest


def _plain_points(
    path: Path, index: dict[str, int], rows: Iterable[tuple[int, list[str]]], positional: bool
) -> Iterator[PointPrompt]:
    for line, cells in rows:
        if positional and len(cells) not in (4, 5):
            raise PromptFileError(
                f"expected 4 or 5 values (frame,y,x,obj_id[,positive]), got {len(cells)}",
                path,
                line,
            )
        try:
            frame = parse_int(_cell(cells, index, "frame"), "frame", 0) if "frame" in index else 0
            y = parse_number(_cell(cells, index, "y"), "y")
            x = parse_number(_cell(cells, index, "x"), "x")
            obj = parse_int(_cell(cells, index, "obj_id"), "obj_id", 1)
            has_pos = "positive" in index and index["positive"] < len(cells)
            pos_text = cells[index["positive"]] if has_pos else ""
            pos = parse_flag(pos_text) if pos_text else True
            z = parse_int(_cell(cells, index, "z"), "z", 0) if "z" in index else None
        except ValueError as err:
            raise PromptFileError(str(err), path, line) from None
        yield PointPrompt(frame, y, x, obj, pos, f"{path.name}, line {line}", z)


def _read_napari_points(
    path: Path, line: int, header: list[str], rows: Iterator[tuple[int, list[str]]]
) -> list[PointPrompt]:
    lowered = [c.lower() for c in header]
    axes = sorted(
        (int(c[5:]), i) for i, c in enumerate(lowered) if c.startswith("axis-") and c[5:].isdigit()
    )
    if [a for a, _ in axes] != list(range(len(axes))) or len(axes) not in (2, 3, 4):
        raise PromptFileError(
            f"a napari Points CSV needs columns axis-0..axis-2 (t, y, x), axis-0, axis-1 "
            f"(y, x) or axis-0..axis-3 (t, z, y, x); found "
            f"{', '.join(header[i] for _, i in axes) or 'none'}",
            path,
            line,
        )
    cols = [i for _, i in axes]
    obj_col = next((i for i, c in enumerate(lowered) if c in ("obj_id", "object_id")), None)
    pos_col = next((i for i, c in enumerate(lowered) if c == "positive"), None)
    out: list[PointPrompt] = []
    for line_no, cells in rows:
        if len(cells) < len(header):
            raise PromptFileError(
                f"expected {len(header)} values like the header, got {len(cells)}", path, line_no
            )
        z = None
        try:
            if len(cols) == 4:
                frame = parse_int(cells[cols[0]], "frame (axis-0)", 0)
                z = parse_int(cells[cols[1]], "z (axis-1)", 0)
                y = parse_number(cells[cols[2]], "y (axis-2)")
                x = parse_number(cells[cols[3]], "x (axis-3)")
            else:
                frame, y, x = _frame_yx(cells, cols)
            obj = len(out) + 1 if obj_col is None else parse_int(cells[obj_col], "obj_id", 1)
            pos = True if pos_col is None or cells[pos_col] == "" else parse_flag(cells[pos_col])
        except ValueError as err:
            raise PromptFileError(str(err), path, line_no) from None
        out.append(PointPrompt(frame, y, x, obj, pos, f"{path.name}, line {line_no}", z))
    return out


def read_box_prompts(path: str | os.PathLike, *, first_id: int = 1) -> list[BoxPrompt]:
    """Read boxes from a ``frame,y0,x0,y1,x1,obj_id`` CSV (header optional) or a napari Shapes
    CSV of rectangles (see the module docstring).

    Args:
        path: the CSV file.
        first_id: object id of the first rectangle of a Shapes CSV without an ``obj_id``
            column (the next rectangles get the next ids); unused otherwise.

    Returns:
        The boxes, in file order.

    Raises:
        PromptFileError: missing file, bad header, malformed row (with its line number), a
            shape that is not a rectangle, an empty box (y1 <= y0 or x1 <= x0), or no boxes.
    """
    path = Path(path)
    rows, line, cells = _first_row(path, "boxes")
    if "shape-type" in (c.lower() for c in cells):
        return _read_napari_shapes(path, line, cells, rows, parse_int(str(first_id), "id", 1))
    if all(is_number(c) for c in cells if c):
        index = {k: i for i, k in enumerate(BOX_COLUMNS)}
        body: Iterable = _chain([(line, cells)], rows)
        positional = True
    else:
        index = _header_map(cells, BOX_ALIASES, path, line)
        missing = [k for k in BOX_COLUMNS if k not in index]
        if missing:
            raise PromptFileError(
                f"header lacks column(s) {', '.join(missing)}; expected frame,y0,x0,y1,x1,obj_id",
                path,
                line,
            )
        body, positional = rows, False
    out: list[BoxPrompt] = []
    for line_no, row in body:
        if positional and len(row) != 6:
            raise PromptFileError(
                f"expected 6 values (frame,y0,x0,y1,x1,obj_id), got {len(row)}", path, line_no
            )
        try:
            frame = parse_int(_cell(row, index, "frame"), "frame", 0)
            y0, x0, y1, x1 = (
                parse_number(_cell(row, index, k), k) for k in ("y0", "x0", "y1", "x1")
            )
            obj = parse_int(_cell(row, index, "obj_id"), "obj_id", 1)
            z = parse_int(_cell(row, index, "z"), "z", 0) if "z" in index else None
            if y1 <= y0 or x1 <= x0:
                raise ValueError(
                    f"empty box (y0={y0:g}, x0={x0:g}, y1={y1:g}, x1={x1:g}): need y1 > y0 and "
                    "x1 > x0"
                )
        except ValueError as err:
            raise PromptFileError(str(err), path, line_no) from None
        out.append(BoxPrompt(frame, y0, x0, y1, x1, obj, f"{path.name}, line {line_no}", z))
    if not out:
        raise PromptFileError("the file holds no boxes (only a header)", path)
    return out


def _read_napari_shapes(
    path: Path, line: int, header: list[str], rows: Iterator[tuple[int, list[str]]], first_id: int
) -> list[BoxPrompt]:
    """Rectangles of a napari Shapes CSV as boxes (one shape = 4 rows, one per corner)."""
    lowered = [c.lower() for c in header]
    axes = sorted(
        (int(c[5:]), i) for i, c in enumerate(lowered) if c.startswith("axis-") and c[5:].isdigit()
    )
    if [a for a, _ in axes] != list(range(len(axes))) or len(axes) not in (2, 3):
        raise PromptFileError(
            "a napari Shapes CSV needs columns axis-0..axis-2 (t, y, x) or axis-0, axis-1 "
            f"(y, x); found {', '.join(header[i] for _, i in axes) or 'none'}",
            path,
            line,
        )
    if "index" not in lowered:
        raise PromptFileError("a napari Shapes CSV needs an 'index' column", path, line)
    idx_col, type_col = lowered.index("index"), lowered.index("shape-type")
    obj_col = next((i for i, c in enumerate(lowered) if c in ("obj_id", "object_id")), None)
    cols = [i for _, i in axes]
    # shape index -> [first line, frames, ys, xs, obj ids]
    shapes: dict[int, tuple[int, set[int], list[float], list[float], set[int]]] = {}
    for line_no, cells in rows:
        if len(cells) < len(header):
            raise PromptFileError(
                f"expected {len(header)} values like the header, got {len(cells)}", path, line_no
            )
        try:
            index = parse_int(cells[idx_col], "index", 0)
            kind = cells[type_col].lower()
            if kind != "rectangle":
                raise ValueError(
                    f"shape {index} has shape-type {kind!r}; only rectangles can be boxes"
                )
            frame, y, x = _frame_yx(cells, cols)
            obj = None if obj_col is None else parse_int(cells[obj_col], "obj_id", 1)
        except ValueError as err:
            raise PromptFileError(str(err), path, line_no) from None
        _, frames, ys, xs, objs = shapes.setdefault(index, (line_no, set(), [], [], set()))
        frames.add(frame)
        ys.append(y)
        xs.append(x)
        objs.add(obj)  # type: ignore[arg-type]
    out: list[BoxPrompt] = []
    for k, (index, (first, frames, ys, xs, objs)) in enumerate(sorted(shapes.items())):
        problem = None
        if len(ys) != 4:
            problem = f"rectangle {index} has {len(ys)} corner rows; expected 4"
        elif len(frames) > 1:
            problem = f"the corners of rectangle {index} lie on frames {sorted(frames)}"
        elif len(objs) > 1:
            problem = f"the corners of rectangle {index} have different obj_id values"
        elif max(ys) <= min(ys) or max(xs) <= min(xs):
            problem = f"rectangle {index} is empty (zero height or width)"
        if problem:
            raise PromptFileError(problem, path, first)
        obj = objs.pop()
        obj = first_id + k if obj is None else obj
        box = (min(ys), min(xs), max(ys), max(xs))
        out.append(BoxPrompt(frames.pop(), *box, obj, f"{path.name}, line {first}"))
    if not out:
        raise PromptFileError("the file holds no boxes (only a header)", path)
    return out


# --------------------------------------------------------------------------- any form


def as_point_prompts(prompts: Any) -> list[PointPrompt]:
    """Clicks from a prompt CSV path (:func:`read_point_prompts`) or any in-memory form that
    :func:`~napari_sam2.video.prompts.to_point_prompts` takes (None: no clicks)."""
    if isinstance(prompts, (str, os.PathLike)):
        return read_point_prompts(prompts)
    return to_point_prompts(prompts)


def as_box_prompts(boxes: Any) -> list[BoxPrompt]:
    """Boxes from a box CSV path (:func:`read_box_prompts`) or any in-memory form that
    :func:`~napari_sam2.video.prompts.to_box_prompts` takes (None: no boxes)."""
    if isinstance(boxes, (str, os.PathLike)):
        return read_box_prompts(boxes)
    return to_box_prompts(boxes)


# --------------------------------------------------------------------------- writing


def _fmt(value: float) -> str:
    return f"{value:.6g}" if value != int(value) else str(int(value))


def write_point_prompts(
    path: str | os.PathLike, prompts: Sequence[PointPrompt] | Any, *, style: str = "plain"
) -> Path:
    """Write clicks as CSV (atomically), readable by :func:`read_point_prompts`.

    Args:
        path: output ``.csv``.
        prompts: anything :func:`as_point_prompts` accepts.
        style: ``"plain"`` (``frame,y,x,obj_id,positive``) or ``"napari"`` (the Points-layer
            CSV that napari opens as a Points layer with ``obj_id``/``positive`` properties).

    Returns:
        The output path.
    """
    from .tiff import atomic_open

    items = to_point_prompts(prompts)
    if style not in ("plain", "napari"):
        raise ValueError(f"style must be 'plain' or 'napari', got {style!r}")
    path = Path(path)
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        with_z = any(p.z is not None for p in items)
        if style == "plain":
            writer.writerow([*POINT_COLUMNS, "z"] if with_z else POINT_COLUMNS)
            for p in items:
                row = [p.frame, _fmt(p.y), _fmt(p.x), p.obj_id, int(p.positive)]
                writer.writerow([*row, 0 if p.z is None else p.z] if with_z else row)
        else:
            n_axes = 4 if with_z else 3  # a 4-D (t, z, y, x) layer for 3-D + time clicks
            writer.writerow(["index", *(f"axis-{k}" for k in range(n_axes)), "obj_id", "positive"])
            for i, p in enumerate(items):
                where = [p.frame, 0 if p.z is None else p.z] if with_z else [p.frame]
                writer.writerow([i, *where, _fmt(p.y), _fmt(p.x), p.obj_id, p.positive])
    return path


def write_box_prompts(path: str | os.PathLike, boxes: Sequence[BoxPrompt] | Any) -> Path:
    """Write boxes as a ``frame,y0,x0,y1,x1,obj_id`` CSV (atomically)."""
    from .tiff import atomic_open

    items = to_box_prompts(boxes)
    path = Path(path)
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(BOX_COLUMNS)
        for b in items:
            writer.writerow([b.frame, *(_fmt(v) for v in (b.y0, b.x0, b.y1, b.x1)), b.obj_id])
    return path
