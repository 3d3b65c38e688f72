"""Prompts as records: clicks (:class:`PointPrompt`) and boxes (:class:`BoxPrompt`) in image
pixels, and their conversion from the in-memory forms scripts use (dicts, tuples, arrays).

Prompt CSV files (napari Points/Shapes CSV or plain columns) are read and written by
:mod:`napari_sam2.io.prompt_csv`, which builds these same records. Coordinates are (y, x) in
pixels of the original frame (napari's order); frames count from 0.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BOX_ALIASES",
    "BOX_COLUMNS",
    "POINT_ALIASES",
    "POINT_COLUMNS",
    "BoxPrompt",
    "PointPrompt",
    "to_box_prompts",
    "to_point_prompts",
    "is_number",
    "parse_flag",
    "parse_int",
    "parse_number",
]

_TRUE = {"1", "1.0", "true", "t", "yes", "y", "+", "positive", "pos"}
_FALSE = {"0", "0.0", "false", "f", "no", "n", "-", "negative", "neg"}

#: Accepted header / key names -> canonical column.
POINT_ALIASES = {
    "frame": "frame",
    "t": "frame",
    "time": "frame",
    "y": "y",
    "x": "x",
    "obj_id": "obj_id",
    "object_id": "obj_id",
    "positive": "positive",
    "z": "z",
}
BOX_ALIASES = {
    "frame": "frame",
    "t": "frame",
    "time": "frame",
    "y0": "y0",
    "x0": "x0",
    "y1": "y1",
    "x1": "x1",
    "obj_id": "obj_id",
    "object_id": "obj_id",
    "z": "z",
}
POINT_COLUMNS = ("frame", "y", "x", "obj_id", "positive")
BOX_COLUMNS = ("frame", "y0", "x0", "y1", "x1", "obj_id")


@dataclass(frozen=True)
class PointPrompt:
    """One click.

    Attributes:
        frame: frame index t (0-based).
        y: row in image pixels.
        x: column in image pixels.
        obj_id: object id (>= 1, the label value in the output).
        positive: True for a click on the object, False for a background click.
        source: where the click came from (e.g. ``"prompts.csv, line 4"``), for messages.
        z: slice index of 3-D data, or None (2-D movies; for a z-stack the frame is the slice).
    """

    frame: int
    y: float
    x: float
    obj_id: int
    positive: bool = True
    source: str | None = None
    z: int | None = None


@dataclass(frozen=True)
class BoxPrompt:
    """One box (y0, x0) - (y1, x1) in image pixels around an object on a frame.

    Attributes:
        frame: frame index t (0-based).
        y0: top row. x0: left column. y1: bottom row. x1: right column.
        obj_id: object id (>= 1).
        source: where the box came from, for messages.
        z: slice index of 3-D data, or None.
    """

    frame: int
    y0: float
    x0: float
    y1: float
    x1: float
    obj_id: int
    source: str | None = None
    z: int | None = None


# --------------------------------------------------------------------------- value parsing


def parse_number(text: str, what: str) -> float:
    """``text`` as a finite float; ValueError naming ``what`` otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} is {text!r}; it must be a finite number")
    return value


def parse_int(text: str, what: str, minimum: int) -> int:
    """``text`` as a whole number >= ``minimum``; ValueError naming ``what`` otherwise."""
    value = parse_number(text, what)
    if value != int(value):
        raise ValueError(f"{what} {text!r} is not a whole number")
    if value < minimum:
        hint = " (0 is the background label)" if what == "obj_id" else ""
        raise ValueError(f"{what} {text!r} must be >= {minimum}{hint}")
    return int(value)


def parse_flag(text: str) -> bool:
    """1/0, True/False, yes/no, +/- (any case) as a bool; ValueError otherwise."""
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError(f"positive {text!r} must be 1/0 or True/False")


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- in-memory forms


def _from_mapping(item: Mapping[str, Any], aliases: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in item.items():
        canon = aliases.get(str(key).lower())
        if canon is not None:
            out[canon] = value
    return out


def _refuse_path(value: Any, loader: str) -> None:
    if isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"{value!s} is a file path: read prompt CSV files with "
            f"napari_sam2.io.prompt_csv.{loader}"
        )


def _item_values(
    item: Any, aliases: Mapping[str, str], columns: Sequence[str], required: Sequence[str],
    counts: tuple[int, ...],
) -> dict[str, Any]:
    """Column -> value of one prompt given as a dict (keys in ``aliases``) or a sequence
    (``columns`` in order, ``counts`` values). A ``z`` key makes ``frame`` optional (0)."""
    if isinstance(item, Mapping):
        d = _from_mapping(item, aliases)
        if "z" in d:
            d.setdefault("frame", 0)
        missing = [c for c in required if c not in d]
        if missing:
            raise ValueError(f"missing key(s) {', '.join(missing)}")
        return d
    values = list(item)
    if len(values) not in counts:
        optional = "".join(f"[, {c}]" for c in columns[len(required):])
        raise ValueError(
            f"expected ({', '.join(required)}{optional}), got {len(values)} values"
        )
    return dict(zip(columns, values))


def _z(d: Mapping[str, Any]) -> int | None:
    return parse_int(str(d["z"]), "z", 0) if d.get("z") is not None else None


def _point(d: Mapping[str, Any], where: str) -> PointPrompt:
    pos = d.get("positive", True)
    return PointPrompt(
        parse_int(str(d["frame"]), "frame", 0),
        parse_number(str(d["y"]), "y"),
        parse_number(str(d["x"]), "x"),
        parse_int(str(d["obj_id"]), "obj_id", 1),
        parse_flag(pos) if isinstance(pos, str) else bool(pos),
        where,
        _z(d),
    )


def _box(d: Mapping[str, Any], where: str) -> BoxPrompt:
    y0, x0, y1, x1 = (parse_number(str(d[c]), c) for c in ("y0", "x0", "y1", "x1"))
    if y1 <= y0 or x1 <= x0:
        raise ValueError("empty box: need y1 > y0 and x1 > x0")
    obj_id = parse_int(str(d["obj_id"]), "obj_id", 1)
    return BoxPrompt(parse_int(str(d["frame"]), "frame", 0), y0, x0, y1, x1, obj_id, where, _z(d))


def to_point_prompts(prompts: Any) -> list[PointPrompt]:
    """Normalise clicks given in any accepted form to a list of :class:`PointPrompt`.

    Accepted forms:
      * a sequence of :class:`PointPrompt`;
      * a sequence of dicts with keys ``frame`` (or ``t``), ``y``, ``x``, ``obj_id`` and
        optionally ``positive`` (default True) and ``z`` (the slice of 3-D data; ``frame``
        may then be left out: 0);
      * a sequence of tuples / an (N, 4) or (N, 5) array: ``(frame, y, x, obj_id[, positive])``;
      * None or an empty sequence: no clicks.

    Raises:
        ValueError: an item cannot be understood (the message names its position).
    """
    if prompts is None:
        return []
    _refuse_path(prompts, "as_point_prompts")
    required = POINT_COLUMNS[:4]
    return [
        item if isinstance(item, PointPrompt) else _convert(
            item, f"prompt {k}", _point, POINT_ALIASES, POINT_COLUMNS, required, (4, 5)
        )
        for k, item in enumerate(prompts)
    ]


def to_box_prompts(boxes: Any) -> list[BoxPrompt]:
    """Normalise boxes to a list of :class:`BoxPrompt`.

    Accepted forms: :class:`BoxPrompt` items; dicts with
    keys ``frame``, ``y0``, ``x0``, ``y1``, ``x1``, ``obj_id`` (and ``z`` for 3-D data, ``frame``
    then optional); tuples / an (N, 6) array
    ``(frame, y0, x0, y1, x1, obj_id)``; None: no boxes.

    Raises:
        ValueError: an item cannot be understood (the message names its position).
    """
    if boxes is None:
        return []
    _refuse_path(boxes, "as_box_prompts")
    return [
        item if isinstance(item, BoxPrompt) else _convert(
            item, f"box {k}", _box, BOX_ALIASES, BOX_COLUMNS, BOX_COLUMNS, (6,)
        )
        for k, item in enumerate(boxes)
    ]


def _convert(item: Any, where: str, build, aliases, columns, required, counts):
    """One prompt from a dict or a sequence; ValueError prefixed with ``where``."""
    try:
        return build(_item_values(item, aliases, columns, required, counts), where)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None
