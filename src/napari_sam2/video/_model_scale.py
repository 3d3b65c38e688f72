"""How large objects are at the model's input: the hint to zoom in when they are too small, and
the zoom window each object runs in (automatic zoom, :mod:`napari_sam2.video.windows`)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ._click_size import click_diameter
from ._objects import TrackedObject
from ._window_fit import KEEP, contradicts, refit_agrees, refit_window
from .prompts import FramePrompts
from .windows import Window, ZoomPlanner, prompt_extent

if TYPE_CHECKING:  # pragma: no cover
    from ..model.sam2 import SAM2Model
    from .frames import FrameSource

__all__ = ["MIN_OBJECT_PX", "ModelScale", "model_region"]

#: Smallest extent (pixels, at the model's input size) at which cells still segment well.
MIN_OBJECT_PX = 16


def model_region(frames: FrameSource) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) of the region the model sees: the frame source's ROI, else the whole
    frame (frame pixels, end exclusive)."""
    roi = frames.roi
    if roi is None:
        return (0, 0, frames.height, frames.width)
    return tuple(int(v) for v in roi)  # type: ignore[return-value]


class ModelScale:
    """Object sizes at the model's input, and the zoom windows objects run in.

    Args:
        frames: the session's frame source (its ROI is the region the model sees).
        image_size: the model's square input size in pixels.
        zoom: the automatic-zoom planner (mode, cell-diameter hint, window placement).
        model: the session's model (a click's size is asked of it, on its device).
    """

    def __init__(
        self, frames: FrameSource, image_size: int, zoom: ZoomPlanner, model: SAM2Model
    ) -> None:
        self.frames = frames
        #: the model a click's size is asked of (on its device)
        self.model = model
        self.image_size = int(image_size)
        self.zoom = zoom
        #: objects whose re-sized prompt window needs no agreement check (see accept_refit)
        self._unconfirmed: set[int] = set()

    def size_at_model(self, extent: tuple[float, float]) -> tuple[float, float]:
        """How large a (height, width) extent in frame pixels is at the model's input.

        The model sees the frame (or the :attr:`roi`) resized to its square input
        (``model.image_size``: 256 px for ``micro``, 1024 px for the official models). Cells
        narrower than ~16 px there are too small to segment and track well
        (:meth:`too_small_hint`).
        """
        rh, rw = self.frames.region_shape
        s = self.image_size
        return float(extent[0]) * s / rh, float(extent[1]) * s / rw

    def too_small_hint(
        self, mask: np.ndarray | None = None, box: Sequence[float] | None = None
    ) -> str | None:
        """A sentence telling the user to zoom in when an object is too small for the model.

        Args:
            mask: (H, W) bool mask of the object on a frame (its bounding box is measured).
            box: (y0, x0, y1, x1) box prompt in frame pixels (used instead of the mask).

        Returns:
            None when the object spans at least :data:`MIN_OBJECT_PX` pixels both ways at the
            model's input (in its zoom window when ``zoom="auto"`` gives it one), or nothing
            was segmented; else the hint.
        """
        if box is not None:
            y0, x0, y1, x1 = (float(v) for v in box)
            extent = (y1 - y0, x1 - x0)
        elif mask is not None and mask.any():
            ys = np.flatnonzero(mask.any(axis=1))
            xs = np.flatnonzero(mask.any(axis=0))
            extent = (ys[-1] - ys[0] + 1, xs[-1] - xs[0] + 1)
        else:
            return None
        h, w = self.size_at_model(extent)
        side = self.zoom.side_for(max(extent))  # automatic zoom: the object's window
        if side is not None:
            h, w = (float(e) * self.image_size / side for e in extent)
        if min(h, w) >= MIN_OBJECT_PX:
            return None
        where = "the region of interest" if self.frames.roi is not None else "the frame"
        return (
            f"this object spans only ~{h:.0f} x {w:.0f} px at the model's "
            f"{self.image_size}-px input ({where} is shrunk to it), too small to segment "
            f"and track well (>= {MIN_OBJECT_PX} px is needed, 30-60 px is best): zoom onto the "
            "cells and give the model that region only (napari: 'Region: use current view'; "
            "scripts: roi=(y0, x0, y1, x1); CLI: --roi or --tile)"
        )

    def prompt_window(
        self, obj: TrackedObject, frame: int, p: FramePrompts, is_init: bool
    ) -> Window | None:
        """The window an object's prompts on a frame run in (None: the whole frame / ROI).

        The object's window side is decided on its first prompt (and again on a box or mask
        prompt of an unsegmented frame): from the box or mask, else estimated around the
        clicks, the ``cell_diameter`` hint standing in for the blob scale (the model's
        confident size overrides a hint more than 2x off). The window stays where the object was
        segmented on that frame while the prompts fit inside it, else it is placed around them.
        """
        zoom = self.zoom
        zoom.region = model_region(self.frames)
        obj.size_checked = True
        if not obj.sized and not zoom.active:
            return None
        where = prompt_extent(p.points, p.labels, p.box, p.mask_box)
        if where is None:
            return obj.windows.get(frame)
        centre, extent = where
        sized_by_shape = p.box is not None or p.mask_box is not None
        resize = not obj.sized or (is_init and sized_by_shape and not obj.side_fixed)
        if zoom.active and resize:
            obj.size_checked = sized_by_shape  # a size from a click or hint is checked
            if sized_by_shape:
                diameter = max(extent[2] - extent[0], extent[3] - extent[1])
            else:  # the hint stands in for the blob scale; the model checks it
                diameter = self.click_diameter(frame, p)
            obj.side = None if diameter is None else zoom.side_for(diameter)
            obj.sized = True
        if obj.side is None:
            return None
        window = obj.windows.get(frame)
        if window is not None and window[2] - window[0] == obj.side and zoom.fits(window, extent):
            return window
        return zoom.place(centre, obj.side)

    def fix_side(self, obj: TrackedObject, side: int | None) -> None:
        """Give an object's window side (frame px; None: the whole frame) instead of sizing it
        from its prompts: its prompts then run in windows of this side placed around them."""
        if side is not None and side < 1:
            raise ValueError(f"window_side must be a positive number of pixels, got {side}")
        obj.side = None if side is None else int(side)
        obj.sized = obj.side_fixed = obj.size_checked = True

    def refit_prompt_window(
        self, obj: TrackedObject, frame: int, p: FramePrompts, window: Window | None, logits
    ) -> Window | None | object:
        """Check an object's window against its first mask there (``video/_window_fit.py``).

        Args:
            obj: the object, just prompted in ``window`` (by :meth:`prompt_window`).
            frame: the frame.
            p: its prompts on that frame.
            window: the window its mask was made in (None: the whole frame / ROI).
            logits: (1, 1, h, w) low-resolution logits of that mask.

        Returns:
            The window to decode the prompts in again (None: the whole frame), or
            :data:`~._window_fit.KEEP` when the mask fits its window, the size came from a
            box or mask, or the window was checked already (each size is checked once).
        """
        if obj.size_checked:
            return KEEP
        obj.size_checked = True
        pos = p.points[np.asarray(p.labels) > 0]
        new = refit_window(self.zoom, window, logits, pos)
        hint = self.zoom.cell_diameter
        if len(pos) and hint is not None and contradicts(hint, window, logits, self.zoom):
            # the hint does not fit this object: size it from the image alone
            side = self.zoom.side_for(self.click_diameter(frame, p, use_hint=False) or 0.0)
            current = None if window is None else window[2] - window[0]
            if side != current:
                new = None if side is None else self.zoom.place(tuple(pos.mean(axis=0)), side)
                self._unconfirmed.add(obj.obj_id)
        if new is not KEEP:
            obj.side = None if new is None else new[2] - new[0]
        return new

    def accept_refit(
        self, obj: TrackedObject, first: tuple[Window | None, object], second: tuple
    ) -> bool:
        """Whether the mask in the re-sized window (``second``: window, logits) confirms the
        first (``first``); if not, the object's side is the first window's again."""
        if obj.obj_id in self._unconfirmed:  # sized again from the image: nothing to confirm
            self._unconfirmed.discard(obj.obj_id)
            return True
        if refit_agrees(self.zoom, first, second):  # type: ignore[arg-type]
            return True
        wa = first[0]
        obj.side = None if wa is None else wa[2] - wa[0]
        return False

    def click_diameter(
        self, frame: int, p: FramePrompts, use_hint: bool = True
    ) -> float | None:
        """Diameter (frame px) of the object under its positive clicks, asked of the model at
        several zoom levels, else the ``cell_diameter`` hint, else the blob scale
        (``video/_click_size.py``); without positive clicks the hint (or None)."""
        pos = p.points[np.asarray(p.labels) > 0]
        if not len(pos):
            return self.zoom.cell_diameter
        return click_diameter(
            self.model,
            functools.partial(self.frames.window_inputs, frame),
            functools.partial(self.frames.model_frame, frame),
            tuple(pos.mean(axis=0)),
            self.zoom.region,
            (self.zoom.lo, self.zoom.hi),
            self.model.device,
            hint=self.zoom.cell_diameter if use_hint else None,
        )

    def track_window(self, obj: TrackedObject, t: int, before: int) -> Window | None:
        """The window an object is tracked in on frame t: its window on the frame before,
        moved to follow the mask there (none: the nearest frame it was segmented on)."""
        if obj.side is None:
            return None
        prev = obj.windows.get(before)
        src = before
        if prev is None:
            src = min(obj.windows, key=lambda f: (abs(f - t), f))
            prev = obj.windows[src]
        entry = obj.bank.get(src)
        self.zoom.region = model_region(self.frames)
        return self.zoom.follow(prev, None if entry is None else entry.mask_logits)
