"""How large objects are at the model's input, and the hint to zoom in when they are too small
(part of :class:`~napari_sam2.video.session.VideoSession`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["MIN_OBJECT_PX", "ModelScaleMixin"]

#: Smallest extent (pixels, at the model's input size) at which cells still segment well.
MIN_OBJECT_PX = 16


class ModelScaleMixin:
    """Model-scale part of :class:`~napari_sam2.video.session.VideoSession` (uses its
    ``frames``, ``model`` and ``roi``)."""

    def size_at_model(self, extent: tuple[float, float]) -> tuple[float, float]:
        """How large a (height, width) extent in frame pixels is at the model's input.

        The model sees the frame (or the :attr:`roi`) resized to its square input
        (``model.image_size``: 256 px for ``micro``, 1024 px for the official models). Cells
        narrower than ~16 px there are too small to segment and track well
        (:meth:`too_small_hint`).
        """
        rh, rw = self.frames.region_shape
        s = self.model.image_size
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
        side = self._zoom.side_for(max(extent))  # automatic zoom: the object's window
        if side is not None:
            h, w = (float(e) * self.model.image_size / side for e in extent)
        if min(h, w) >= MIN_OBJECT_PX:
            return None
        where = "the region of interest" if self.roi is not None else "the frame"
        return (
            f"this object spans only ~{h:.0f} x {w:.0f} px at the model's "
            f"{self.model.image_size}-px input ({where} is shrunk to it), too small to segment "
            f"and track well (>= {MIN_OBJECT_PX} px is needed, 30-60 px is best): zoom onto the "
            "cells and give the model that region only (napari: 'Region: use current view'; "
            "scripts: roi=(y0, x0, y1, x1); CLI: --roi or --tile)"
        )
