"""Window size checked against the model's own mask (automatic zoom, :mod:`.windows`).

An object's window side comes from an estimate (the click size of :mod:`._click_size`, or a
``cell_diameter`` hint) that can be wrong by a factor of 2-3. The first mask the model draws in
the window measures the object better, so it is checked:

* the mask **touches the window's border** (more than :data:`EDGE_SHARE` of the border is
  covered; sides on the frame's own edge do not count): the object is larger than the
  window; the window grows to put the mask at the target size, at least :data:`GROW` times;
* the mask's size (the diameter of the disc of its area) is more than :data:`TOLERANCE`
  times the target (the geometric middle of the model's ``object_size_range``, as a fraction
  of the window's side) or **smaller than the range's low end**: the window is re-sized to put
  the object at the target size;
* a mask on the **whole frame** (no window) smaller than the low end gets a window;
* a mask's size is the diameter of the disc of its area, or its extent along the frame's edge
  where the frame cuts it and that is larger (:func:`mask_size`: the cut does not shorten a
  cell along the edge);
* a mask more than 2x off a ``cell_diameter`` hint it was sized by (a hint that does not fit
  this object, e.g. a whole-frame blob or a leak for a hint 3x too large) has the object sized
  again from the image alone (:meth:`~._model_scale.ModelScale.refit_prompt_window`); that
  window is taken without the agreement check below.

A window that would reach the comfortable size at the whole-frame input becomes no window at
all: the object then runs exactly as with ``zoom="off"``. On the prompted frame the object is
decoded again (once) in the re-sized window before its memory is written, and the re-sized
window is kept only when the two masks agree (:func:`refit_agrees`: IoU in frame pixels
>= :data:`AGREE`). A small model draws a blob near the size it was trained on when it does
not see the object's edge; such a blob, or a leak into a neighbour, grows with its window,
so it is not taken for the object's size.

On tracked frames a window keeps its side (it follows the object's centre, see
:class:`~.windows.ZoomPlanner`). Re-sizing it from the tracked masks was measured and lost
accuracy both ways: growing followed leaks (micro: 30-px nuclei on 2048-px validation frames,
windows grown 4x with the masks in them, J 0.47 -> 0.21), and shrinking below the range's low
end followed a transient under-segmentation (CTC HeLa, 12 nuclei, 10 frames: two windows
171 -> 78 px, J 0.683 -> 0.659).

Masks narrower than :data:`MIN_EXTENT` frame pixels are not trusted to measure anything (the
model missed the object) and leave the window as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ._click_size import DISAGREE, zoom_agreement
from .windows import Window, ZoomPlanner, logits_extent

__all__ = [
    "AGREE",
    "EDGE_SHARE",
    "GROW",
    "KEEP",
    "MIN_EXTENT",
    "TOLERANCE",
    "fitted_side",
    "edge_extent",
    "mask_diameter",
    "mask_size",
    "contradicts",
    "refit_agrees",
    "refit_window",
    "touches_border",
]

#: a mask touches its window's border when it covers more than this share of it
EDGE_SHARE = 0.03
#: a window whose mask touches its border grows at least this many times
GROW = 2.0
#: masks narrower than this (frame pixels) do not re-size windows
MIN_EXTENT = 6.0
#: on the prompted frame a mask more than this factor above the target size (as a fraction
#: of its window) re-sizes the window; below, only a mask under the range's low end does
#: (micro under-segments dim or cut nuclei in windows: shrinking on a mask 0.7x the target lost
#: 0.14 J on a 25-px nucleus of the demo movie)
TOLERANCE = math.sqrt(2.0)
#: a re-sized window is kept when its mask and the first one overlap at least this much
#: (IoU in frame pixels); else the first window and mask stay
AGREE = 0.5


class _Keep:
    """The sentinel "leave the window as it is" (distinct from None: no window)."""

    def __repr__(self) -> str:
        return "KEEP"


#: returned by :func:`fitted_side` when the window's side stays
KEEP = _Keep()


def mask_diameter(logits: torch.Tensor, rect: Sequence[int]) -> float:
    """Diameter (frame px) of the disc with a mask's area: (1, 1, h, w) or (h, w) logits over
    the (y0, x0, y1, x1) frame rectangle ``rect`` (0 for an empty mask). Stray fragments far
    from the object change it little, unlike the bounding box."""
    pos = logits.reshape(logits.shape[-2:]) > 0
    h, w = pos.shape
    px = (rect[2] - rect[0]) * (rect[3] - rect[1]) / (h * w)
    return 2.0 * math.sqrt(float(pos.sum()) * px / math.pi)


def edge_extent(logits: torch.Tensor, rect: Sequence[int], region: Sequence[int]) -> float:
    """Longest extent (frame px) of a mask along a side of the ``region`` (y0, x0, y1, x1) that
    its rectangle ``rect`` lies on: a cell cut by the frame's edge keeps its width along the
    edge there (0 when the mask reaches no such side).

    Args:
        logits: (1, 1, h, w) or (h, w) low-resolution logits over ``rect``.
        rect: (y0, x0, y1, x1) frame rectangle the logits cover.
        region: (y0, x0, y1, x1) frame rectangle the model would otherwise see.
    """
    pos = (logits.reshape(logits.shape[-2:]) > 0).cpu().numpy()
    h, w = pos.shape
    sy, sx = (rect[2] - rect[0]) / h, (rect[3] - rect[1]) / w
    lines = (
        (rect[0] <= region[0], pos[0], sx),
        (rect[2] >= region[2], pos[-1], sx),
        (rect[1] <= region[1], pos[:, 0], sy),
        (rect[3] >= region[3], pos[:, -1], sy),
    )
    out = 0.0
    for on_edge, line, step in lines:
        idx = np.flatnonzero(line)
        if on_edge and idx.size:
            out = max(out, float(idx[-1] - idx[0] + 1) * step)
    return out


def mask_size(logits: torch.Tensor, rect: Sequence[int], region: Sequence[int]) -> float:
    """An object's size (frame px) from its mask over ``rect``: the diameter of the disc of its
    area (:func:`mask_diameter`), or its extent along the region's edge where it is cut there
    and that is larger (:func:`edge_extent`)."""
    return max(mask_diameter(logits, rect), edge_extent(logits, rect, region))


def touches_border(
    logits: torch.Tensor,
    share: float = EDGE_SHARE,
    sides: tuple[bool, bool, bool, bool] = (True, True, True, True),
) -> bool:
    """Whether a (…, h, w) low-resolution mask covers more than ``share`` of its border.

    Args:
        logits: the mask logits (positive inside).
        share: fraction of the counted border.
        sides: which sides count, (top, bottom, left, right): a window side on the frame's
            own edge says nothing about the object's size (cells are cut there).
    """
    pos = logits.reshape(logits.shape[-2:]) > 0
    h, w = pos.shape
    top, bottom, left, right = sides
    lines = [pos[0]] * top + [pos[-1]] * bottom + [pos[:, 0]] * left + [pos[:, -1]] * right
    if not lines:
        return False
    covered = sum(int(v.sum()) for v in lines)
    return covered > share * sum(len(v) for v in lines)


def fitted_side(
    zoom: ZoomPlanner,
    window: Window | None,
    logits: torch.Tensor | None,
) -> int | None | _Keep:
    """The window side an object's mask asks for.

    Args:
        zoom: the planner (size range, target, region the model otherwise sees).
        window: the (y0, x0, y1, x1) window the mask was made in, None for the whole region.
        logits: (1, 1, h, w) low-resolution mask logits covering ``window`` (or the region).

    Returns:
        The new side in frame pixels, None for no window (the object is comfortable at the
        whole-region input), or :data:`KEEP`.
    """
    if not zoom.active or logits is None:
        return KEEP
    rect = zoom.region if window is None else window
    extent = mask_size(logits, rect, zoom.region)
    if extent < MIN_EXTENT:
        return KEEP
    if window is None:
        side = zoom.side_for(extent)
        return KEEP if side is None else side
    side = window[2] - window[0]
    frac = extent / side
    ry0, rx0, ry1, rx1 = zoom.region
    inner = (window[0] > ry0, window[2] < ry1, window[1] > rx0, window[3] < rx1)
    if touches_border(logits, sides=inner):
        grown = zoom.side_for(extent)
        if grown is None:
            return None
        new = max(grown, int(round(GROW * side)))
        return _cap(zoom, new)
    if zoom.lo <= frac <= zoom.target * TOLERANCE:
        return KEEP
    new = zoom.side_for(extent)
    return KEEP if new == side else new


def contradicts(
    diameter: float, window: Window | None, logits: torch.Tensor, zoom: ZoomPlanner
) -> bool:
    """Whether a mask's size (frame px, over ``window`` or the whole region) differs from a
    ``diameter`` it was sized for by more than :data:`~._click_size.DISAGREE` times."""
    d = mask_diameter(logits, zoom.region if window is None else window)
    return d > 0 and not 1 / DISAGREE <= d / diameter <= DISAGREE


def _cap(zoom: ZoomPlanner, side: int) -> int | None:
    """``side`` limited to the region; None when it would cover the region's longer side."""
    y0, x0, y1, x1 = zoom.region
    longest, shortest = max(y1 - y0, x1 - x0), min(y1 - y0, x1 - x0)
    if side >= longest:
        return None
    return min(side, shortest)


def refit_window(
    zoom: ZoomPlanner,
    window: Window | None,
    logits: torch.Tensor,
    points: Sequence[Sequence[float]],
) -> Window | None | _Keep:
    """Where a prompted object's window goes after its first mask (see :func:`fitted_side`).

    Args:
        zoom: the planner.
        window: the window the mask was made in (None: the whole region).
        logits: (1, 1, h, w) low-resolution logits covering it.
        points: (N, 2) the object's clicks (y, x) on that frame in frame pixels; the new window
            is centred on the mask, or on the clicks when they would fall outside it.

    Returns:
        The new window, None (the whole region) or :data:`KEEP`.
    """
    side = fitted_side(zoom, window, logits)
    if side is KEEP or side is None:
        return side
    rect = zoom.region if window is None else window
    centre, _ = logits_extent(logits, rect)  # type: ignore[misc]
    new = zoom.place(centre, side)  # type: ignore[arg-type]
    inside = all(
        new[0] <= y < new[2] and new[1] <= x < new[3] for y, x in points
    )
    if not inside and len(points):
        cy = sum(float(p[0]) for p in points) / len(points) + 0.5
        cx = sum(float(p[1]) for p in points) / len(points) + 0.5
        new = zoom.place((cy, cx), side)  # type: ignore[arg-type]
    return KEEP if new == window else new


def refit_agrees(
    zoom: ZoomPlanner,
    first: tuple[Window | None, torch.Tensor],
    second: tuple[Window | None, torch.Tensor],
) -> bool:
    """Whether the mask decoded in a re-sized window confirms the first one.

    A mask that follows the object's own boundary is found again at the other zoom level
    (IoU in frame pixels >= :data:`AGREE`); a mask the model draws at the size it was trained
    on, whatever the object (a leak into the background or a neighbour), grows or shrinks with
    its window and does not. Then the first window is kept.

    Args:
        zoom: the planner (its region stands for a None window).
        first: (window, (1, 1, h, w) logits) of the first decoding.
        second: the same for the re-sized window.
    """
    (wa, a), (wb, b) = first, second
    wa = zoom.region if wa is None else wa
    wb = zoom.region if wb is None else wb
    if (wa[2] - wa[0]) * (wa[3] - wa[1]) > (wb[2] - wb[0]) * (wb[3] - wb[1]):
        (wa, a), (wb, b) = (wb, b), (wa, a)
    a = a.reshape(1, *a.shape[-2:]).float().cpu()
    b = b.reshape(1, *b.shape[-2:]).float().cpu()
    return float(zoom_agreement(a, wa, b, wb)[0, 0]) >= AGREE
