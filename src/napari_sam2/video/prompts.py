"""Prompts in image pixel coordinates (napari order: y, x), validated on creation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._sparse import crop_to_box

__all__ = [
    "FramePrompts",
    "check_obj_id",
    "inside_region",
    "validate_box",
    "validate_mask",
    "validate_points",
]


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
