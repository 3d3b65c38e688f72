"""The prompt vocabulary, in image pixels (napari order: y, x; frames count from 0).

Two forms of the same prompts live here:

* records a user writes: clicks (:class:`PointPrompt`) and boxes (:class:`BoxPrompt`), and
  their conversion from the in-memory forms scripts use (dicts, tuples, arrays) and from text
  cells (:func:`parse_number`, :func:`parse_flag`...). Prompt CSV files (napari Points/Shapes
  CSV or plain columns) are read and written by :mod:`napari_sam2.io.prompt_csv`, which builds
  these same records;
* what the engine keeps per object and frame: :class:`FramePrompts`, checked on creation by
  :func:`validate_points`, :func:`validate_box`, :func:`validate_mask`, :func:`inside_region`
  and :func:`check_obj_id`.

numpy only (no torch), so that reading prompt files stays light.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BOX_ALIASES",
    "BOX_COLUMNS",
    "POINT_ALIASES",
    "POINT_COLUMNS",
    "BoxPrompt",
    "FramePrompts",
    "PointPrompt",
    "check_obj_id",
    "inside_region",
    "is_number",
    "parse_flag",
    "parse_int",
    "parse_number",
    "to_box_prompts",
    "to_point_prompts",
    "validate_box",
    "validate_mask",
    "validate_points",
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


# --------------------------------------------------------------------------- engine prompts


def check_obj_id(obj_id) -> int:
    """Object ids are integers >= 1 (they become label values)."""
    if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)):
        raise ValueError(f"object id must be an integer >= 1, got {obj_id!r}")
    if obj_id < 1:
        raise ValueError(f"object id must be >= 1 (0 is background in labels), got {obj_id}")
    if obj_id > np.iinfo(np.uint32).max:
        raise ValueError(f"object id {obj_id} does not fit a uint32 label image")
    return int(obj_id)


def validate_points(points, labels, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Check clicks: (N, 2) (y, x) inside a frame of ``shape`` (H, W), labels 1/0 (or bool).

    Returns:
        (points (N, 2) float64, labels (N,) int32).
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 1 and pts.size == 2:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be an (N, 2) array of (y, x), got shape {pts.shape}")
    if len(pts) == 0:
        raise ValueError("no points given: add at least one click")
    if not np.isfinite(pts).all():
        raise ValueError("points contain NaN or infinity")
    lab = np.asarray(labels)
    lab = (
        np.atleast_1d(lab).astype(np.int64)
        if lab.dtype != bool
        else np.atleast_1d(lab).astype(np.int64)
    )
    if lab.shape != (len(pts),):
        raise ValueError(f"got {len(pts)} points but {lab.size} labels: give one label per point")
    if not np.isin(lab, (0, 1)).all():
        raise ValueError("point labels must be 1 (positive, object) or 0 (negative, background)")
    h, w = shape
    outside = (pts[:, 0] < 0) | (pts[:, 0] > h - 1) | (pts[:, 1] < 0) | (pts[:, 1] > w - 1)
    if outside.any():
        y, x = pts[outside][0]
        raise ValueError(
            f"point (y={y:g}, x={x:g}) is outside the image ({h} x {w} pixels); "
            "coordinates are (y, x) in image pixels"
        )
    return pts, lab.astype(np.int32)


def validate_box(box, shape: tuple[int, int]) -> np.ndarray:
    """Check a box (y0, x0, y1, x1) in pixels: non-empty and overlapping the frame.

    Returns:
        (4,) float64 box clipped to the frame.
    """
    b = np.asarray(box, dtype=np.float64).ravel()
    if b.shape != (4,) or not np.isfinite(b).all():
        raise ValueError(f"box must be 4 finite numbers (y0, x0, y1, x1), got {box!r}")
    y0, x0, y1, x1 = b
    if y1 <= y0 or x1 <= x0:
        raise ValueError(
            f"empty box (y0={y0:g}, x0={x0:g}, y1={y1:g}, x1={x1:g}): need y1 > y0 and x1 > x0"
        )
    h, w = shape
    if y1 < 0 or x1 < 0 or y0 > h - 1 or x0 > w - 1:
        raise ValueError(
            f"box (y0={y0:g}, x0={x0:g}, y1={y1:g}, x1={x1:g}) lies outside the image "
            f"({h} x {w} pixels)"
        )
    return np.array([max(y0, 0), max(x0, 0), min(y1, h - 1), min(x1, w - 1)], dtype=np.float64)


def validate_mask(mask, shape: tuple[int, int]) -> np.ndarray:
    """Check a mask prompt: 2-D, the frame's shape, not empty; returns it as bool (a bool
    array is returned as it is, not copied)."""
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise ValueError(f"mask has shape {m.shape}, but frames are {tuple(shape)} (H, W)")
    if m.dtype != bool:
        m = m.astype(bool)
    if not m.any():
        raise ValueError("mask prompt is empty: paint at least one pixel of the object")
    return m


def inside_region(
    region: tuple[int, int, int, int],
    *,
    points: np.ndarray | None = None,
    box: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    what: str = "",
) -> np.ndarray | None:
    """Check that a prompt lies inside the region the model sees (the ROI).

    Args:
        region: (y0, x0, y1, x1) in frame pixels, end exclusive.
        points: (N, 2) clicks (y, x): all must lie inside.
        box: (4,) (y0, x0, y1, x1): must overlap the region; it is clipped to it.
        mask: (H, W) bool: at least one pixel must lie inside.
        what: names the prompt's owner in the message ("of object 3").

    Returns:
        The box clipped to the region (None when no box is given).

    Raises:
        ValueError: the prompt lies outside; the message shows the region.
    """
    y0, x0, y1, x1 = region
    bad = None
    if points is not None:
        out = (points[:, 0] < y0) | (points[:, 0] > y1 - 1)
        out |= (points[:, 1] < x0) | (points[:, 1] > x1 - 1)
        if out.any():
            y, x = points[out][0]
            bad = f"point (y={y:g}, x={x:g}) is"
    if box is not None:
        if box[2] < y0 or box[3] < x0 or box[0] > y1 - 1 or box[1] > x1 - 1:
            bad = "box (y0={:g}, x0={:g}, y1={:g}, x1={:g}) is".format(*box)
        box = np.clip(box, [y0, x0, y0, x0], [y1 - 1, x1 - 1, y1 - 1, x1 - 1])
    if mask is not None and not mask[y0:y1, x0:x1].any():
        bad = f"mask prompt {what} lies wholly" if what else "mask prompt lies wholly"
    if bad is not None:
        raise ValueError(
            f"{bad} outside the region of interest (y0, x0, y1, x1) = {tuple(region)}: prompts "
            "must lie inside it (coordinates are full-frame (y, x) pixels)"
        )
    return box


@dataclass(init=False, eq=False)
class FramePrompts:
    """All prompts of one object on one frame.

    Attributes:
        points: (N, 2) clicks (y, x) in image pixels.
        labels: (N,) 1 = positive, 0 = negative.
        box: (4,) (y0, x0, y1, x1) or None.
        mask: (H, W) bool or None (a mask replaces points and box). Kept as its bounding
            rectangle, so that hundreds of cells seeded from a label image of a large frame
            cost their own areas; reading it builds the frame-size array.
    """

    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None

    def __init__(
        self,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> None:
        self.points = np.zeros((0, 2)) if points is None else points
        self.labels = np.zeros((0,), np.int32) if labels is None else labels
        self.box = box
        self._mask: tuple[tuple[int, ...], tuple[int, int, int, int], np.ndarray] | None = None
        if mask is not None:
            from ._sparse import crop_to_box  # here: _sparse imports torch

            self._mask = (np.shape(mask), *crop_to_box(mask))

    @property
    def mask_box(self) -> tuple[int, int, int, int] | None:
        """Bounding rectangle (y0, x0, y1, x1), end exclusive, of the mask prompt, or None."""
        return None if self._mask is None else self._mask[1]

    @property
    def mask(self) -> np.ndarray | None:
        if self._mask is None:
            return None
        shape, (y0, x0, y1, x1), crop = self._mask
        out = np.zeros(shape, bool)
        out[y0:y1, x0:x1] = crop
        return out

    def __repr__(self) -> str:
        what = f"mask {self._mask[0]}" if self._mask is not None else f"{len(self.points)} points"
        return f"FramePrompts({what}, box={self.box})"

    @property
    def num_points(self) -> int:
        """Points the decoder sees (a box counts as two corner points)."""
        return len(self.points) + (2 if self.box is not None else 0)
