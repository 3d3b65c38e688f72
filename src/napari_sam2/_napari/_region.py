"""The region of interest of the tracking controller (``controller.region``).

The model sees every frame resized to its square input (256 px for the bundled ``micro``
model, 1024 px for the official ones), so small cells on large frames become too small to
segment (a cell should span at least ~20 px at the model's input size). A region of interest
``(y0, x0, y1, x1)`` (image pixels, end exclusive) is cropped before that resizing (see
:attr:`VideoSession.roi <napari_sam2.video.session.VideoSession.roi>`). Prompts stay in
full-frame pixels and must lie inside the region; labels stay full-frame and are 0 outside it.

The region is drawn as a rectangle (edge only, not editable) in a Shapes layer named
:data:`ROI_LAYER_NAME`, removed when the full frame is used again.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._sessions import SessionKeeper
from ._state import TrackingState
from .layers import add_outline_layer

__all__ = ["ROI_LAYER_NAME", "RegionControl", "describe_roi"]

#: Name of the Shapes layer that shows the region of interest.
ROI_LAYER_NAME = "SAM 2 region"
#: Edge colour (RGBA) of the region rectangle.
ROI_COLOR = [1.0, 0.85, 0.0, 1.0]


def describe_roi(roi: Sequence[int] | None) -> str:
    """``"full frame"`` or ``"y 100:356, x 200:456 (256 x 256 px)"``."""
    if roi is None:
        return "full frame"
    y0, x0, y1, x1 = (int(v) for v in roi)
    return f"y {y0}:{y1}, x {x0}:{x1} ({y1 - y0} x {x1 - x0} px)"


class RegionControl:
    """The region of interest the model sees, and the Shapes layer that shows it.

    Args:
        state: the controller's shared :class:`~napari_sam2._napari._state.TrackingState`.
        sessions: rebuilds the session (prompts re-run) on a new region.

    Attributes:
        layer: the "SAM 2 region" Shapes layer (None for the full frame).
    """

    def __init__(self, state: TrackingState, sessions: SessionKeeper) -> None:
        self._state = state
        self._sessions = sessions
        self._roi: tuple[int, int, int, int] | None = None
        self.layer: Any = None

    @property
    def roi(self) -> tuple[int, int, int, int] | None:
        """The region of interest ``(y0, x0, y1, x1)`` in image pixels (end exclusive) that
        the model sees, or None for the full frame. Change it with :meth:`set`."""
        return self._roi

    def _validated_roi(self, roi: Sequence[float] | None) -> tuple[int, int, int, int] | None:
        """``roi`` as ints inside the frame; None for None or the full frame.

        Raises:
            ValueError: not 4 numbers, or empty / outside the frame.
        """
        if roi is None:
            return None
        info = self._state.need_image()
        h, w = info.frame_shape
        try:
            vals = [int(round(float(v))) for v in roi]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"region must be (y0, x0, y1, x1) pixels, got {roi!r}") from exc
        if len(vals) != 4:
            raise ValueError(f"region must be (y0, x0, y1, x1) pixels, got {roi!r}")
        y0, x0, y1, x1 = vals
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise ValueError(
                f"region {tuple(vals)} does not fit the image: need 0 <= y0 < y1 <= {h} and "
                f"0 <= x0 < x1 <= {w}"
            )
        if (y0, x0, y1, x1) == (0, 0, h, w):
            return None
        return (y0, x0, y1, x1)

    def set(self, roi: Sequence[float] | None = None, *, wait: bool = False) -> Any:
        """Let the model see only ``roi`` = (y0, x0, y1, x1) of every frame (image pixels, end
        exclusive), or the full frame with None.

        Cropping before the model's resize keeps small cells large enough: a cell should span
        at least ~20 px at the model's input size (256 px for ``micro``, 1024 px for the
        official models). The rectangle is shown in the "SAM 2 region" Shapes layer.

        With objects already prompted, the session is rebuilt with the new region and every
        prompt is re-run on it (the prompted frames are encoded again; re-propagate to update
        the other frames). This is refused (ValueError, nothing changes) when a click, box or
        painted mask prompt lies wholly outside the new region: remove those objects first or
        choose a larger region.

        Args:
            roi: (y0, x0, y1, x1) in image pixels (must fit inside the image); None or the
                whole frame: no region.
            wait: block until the session has been rebuilt (and raise its error, if any).

        Returns:
            The job rebuilding the session (None when the region does not change, and with
            ``wait=True``).

        Raises:
            RuntimeError: no image layer chosen.
            ValueError: ``roi`` is malformed or does not fit the image.
        """
        self._state.need_image()
        new = self._validated_roi(roi)
        previous = self._roi
        if new == previous:
            return None
        st = self._state
        self._roi = new
        self._sync_layer()
        st.events.roi_changed.emit()
        st.report()

        def work():
            old = st.session
            if old is not None and old.obj_ids:
                bad = _prompts_outside(old, new, st.info.frame_shape)
                if bad:
                    raise ValueError(
                        f"the region {describe_roi(new)} leaves out the prompts of "
                        f"{', '.join(bad)}: remove those objects (or their prompts) first, or "
                        "choose a larger region"
                    )
            self._sessions.replay()

        def failed(_exc) -> None:
            s = st.session
            self._roi = s.roi if s is not None else previous
            self._sync_layer()
            st.events.roi_changed.emit()
            st.report()

        job = st.submit_edit(f"using the region {describe_roi(new)}", work, on_error=failed)
        return st.finish(job, wait)

    def from_view(self) -> tuple[int, int, int, int]:
        """The part of the image visible on the viewer's canvas, as (y0, x0, y1, x1) image
        pixels (end exclusive; partly visible pixels included), clipped to the image.

        Uses the camera (center, zoom: screen pixels per world unit) and the canvas size, and
        maps the visible rectangle through the image layer's transform (scale, translate...).

        Raises:
            RuntimeError: no image layer chosen.
            ValueError: the viewer is in 3-D, does not display the image's y and x axes, or the
                image is not in view.
        """
        info = self._state.need_image()
        viewer = self._state.viewer
        layer = info.layer
        if viewer.dims.ndisplay != 2:
            raise ValueError("switch the viewer to 2-D to use the current view as the region")
        ndim = viewer.dims.ndim
        displayed = [int(d) for d in viewer.dims.displayed][-2:]
        offset = ndim - layer.ndim  # world dim d is layer dim d - offset
        yi, xi = info.spatial_axes
        if sorted(d - offset for d in displayed) != sorted((yi, xi)):
            raise ValueError(
                "the viewer does not show the image's y and x axes: reset the axis order "
                "(Transpose / Roll dims) to use the current view as the region"
            )
        canvas_h, canvas_w = self._canvas_size()
        zoom = float(viewer.camera.zoom)
        if not (zoom > 0 and canvas_h > 0 and canvas_w > 0):
            raise ValueError("the canvas has no visible area")
        center = np.asarray(viewer.camera.center, dtype=float)[-2:]  # world, displayed order
        half = np.array([canvas_h, canvas_w], dtype=float) / zoom / 2.0
        point = np.asarray(viewer.dims.point, dtype=float)
        ys, xs = [], []
        for sy in (-1.0, 1.0):
            for sx in (-1.0, 1.0):
                p = point.copy()
                p[displayed[0]] = center[0] + sy * half[0]
                p[displayed[1]] = center[1] + sx * half[1]
                data = np.asarray(layer.world_to_data(p), dtype=float)
                ys.append(data[yi])
                xs.append(data[xi])
        h, w = info.frame_shape
        # pixel i covers [i - 0.5, i + 0.5]: keep every pixel that is at least partly visible
        y0 = max(0, math.floor(min(ys) - 0.5) + 1)
        x0 = max(0, math.floor(min(xs) - 0.5) + 1)
        y1 = min(h, math.ceil(max(ys) + 0.5))
        x1 = min(w, math.ceil(max(xs) + 0.5))
        if y1 <= y0 or x1 <= x0:
            raise ValueError("the image is not in view: pan or zoom onto it first")
        return (int(y0), int(x0), int(y1), int(x1))

    def use_view(self, *, wait: bool = False) -> Any:
        """``set(from_view())``: track only what the canvas shows now (zoom onto the cells
        first). See :meth:`set`."""
        return self.set(self.from_view(), wait=wait)

    def _canvas_size(self) -> tuple[float, float]:
        """(height, width) of the canvas (one view box in grid mode), in screen pixels.

        From napari's canvas model (``viewer.canvas``, kept equal to the vispy canvas on every
        resize); older napari: the Qt canvas.
        """
        viewer = self._state.viewer
        size = None
        with contextlib.suppress(Exception):
            size = np.asarray(viewer.canvas.viewbox_size(viewer.layers), dtype=float)
        if size is None or size.shape != (2,) or not (size > 0).all():
            with contextlib.suppress(Exception):
                size = np.asarray(viewer.window._qt_viewer.canvas.size, dtype=float)  # (h, w)
        if size is None or size.shape != (2,) or not (size > 0).all():
            raise ValueError("cannot read the size of the viewer's canvas")
        return float(size[0]), float(size[1])

    # ------------------------------------------------------------------ checks
    def check_point(self, y: float, x: float) -> None:
        """Raise ValueError naming the region when the click (y, x) lies outside it."""
        roi = self._roi
        if roi is None:
            return
        y0, x0, y1, x1 = roi
        if not (y0 <= y <= y1 - 1 and x0 <= x <= x1 - 1):
            raise ValueError(
                f"point (y={y:.1f}, x={x:.1f}) is outside the region of interest (y0, x0, y1, "
                f"x1) = {roi}: click inside the yellow '{ROI_LAYER_NAME}' rectangle, or use "
                "'Full frame'"
            )

    def check_box(self, box: Sequence[float]) -> None:
        """Raise ValueError naming the region when the box (y0, x0, y1, x1) misses it."""
        roi = self._roi
        if roi is None:
            return
        y0, x0, y1, x1 = roi
        by0, bx0, by1, bx1 = (float(v) for v in box)
        if by1 < y0 or bx1 < x0 or by0 > y1 - 1 or bx0 > x1 - 1:
            raise ValueError(
                f"box ({by0:.0f}, {bx0:.0f}, {by1:.0f}, {bx1:.0f}) is outside the region of "
                f"interest (y0, x0, y1, x1) = {roi}: draw it inside the '{ROI_LAYER_NAME}' "
                "rectangle, or use 'Full frame'"
            )

    # ------------------------------------------------------------------ the region layer
    def _rectangle(self) -> np.ndarray:
        """(4, 2) corners (y, x) of the region in the image layer's 2-D data coordinates,
        on the pixel edges."""
        y0, x0, y1, x1 = self._roi
        a, b, c, d = y0 - 0.5, x0 - 0.5, y1 - 0.5, x1 - 0.5
        return np.array([[a, b], [a, d], [c, d], [c, b]], dtype=float)

    def _sync_layer(self) -> None:
        """Show the current region in the "SAM 2 region" layer (removed for the full frame)."""
        st = self._state
        layers = st.viewer.layers
        layer = self.layer
        if self._roi is None or st.info is None:
            self.layer = None
            if layer is not None and layer in layers:
                with st.suppressed():
                    layers.remove(layer)
            return
        if layer is None or layer not in layers:
            if ROI_LAYER_NAME in layers:
                with st.suppressed():
                    layers.remove(ROI_LAYER_NAME)
            layer = add_outline_layer(st.viewer, st.info, ROI_LAYER_NAME, ROI_COLOR, 250, 0.9)
            layer.events.editable.connect(self._keep_layer_locked)
            layer.events.data.connect(self._on_layer_data)
            self.layer = layer
        with st.suppressed():
            layer.selected_data = set()
            layer.data = [self._rectangle()]
            layer.shape_type = ["rectangle"]
            layer.edge_color = [ROI_COLOR]
            layer.face_color = [[0, 0, 0, 0]]
            layer.mode = "pan_zoom"
            layer.editable = False

    def _keep_layer_locked(self, event: Any = None) -> None:
        layer = self.layer
        if layer is not None and layer.editable:
            layer.editable = False  # napari re-enables it when switching 2-D / 3-D

    def _on_layer_data(self, event: Any = None) -> None:
        """Redraw the rectangle if its data changed anyway (e.g. from the console)."""
        if self._state.suppressing or self.layer is None or self._roi is None:
            return
        data = self.layer.data
        if len(data) != 1 or not np.allclose(np.asarray(data[0]), self._rectangle()):
            self._sync_layer()

    def forget(self) -> None:
        """No region (a new image layer was chosen or the image was removed)."""
        if self._roi is None and self.layer is None:
            return
        self._roi = None
        self._sync_layer()
        self._state.events.roi_changed.emit()

    def on_layer_removed(self, layer: Any) -> bool:
        """The user deleted ``layer``: whether it was the region layer (the region still
        applies; "Full frame" clears it)."""
        if self.layer is not None and layer == self.layer:
            self.layer = None
            return True
        return False


def _prompts_outside(session, roi, frame_shape) -> list[str]:
    """Names ("object N (frame t)") of the prompts the session would refuse in ``roi``."""
    y0, x0, y1, x1 = roi if roi is not None else (0, 0, *frame_shape)
    bad = []
    for obj in session.obj_ids:
        for t, p in sorted(session.prompts(obj).items()):
            if p.mask is not None:
                out = not np.asarray(p.mask)[y0:y1, x0:x1].any()
            else:
                pts = np.asarray(p.points, dtype=float).reshape(-1, 2)
                out = bool(
                    (
                        (pts[:, 0] < y0)
                        | (pts[:, 0] > y1 - 1)
                        | (pts[:, 1] < x0)
                        | (pts[:, 1] > x1 - 1)
                    ).any()
                )
                if p.box is not None:
                    by0, bx0, by1, bx1 = (float(v) for v in p.box)
                    out = out or by1 < y0 or bx1 < x0 or by0 > y1 - 1 or bx0 > x1 - 1
            if out:
                bad.append(f"object {obj} (frame {t})")
    return bad
