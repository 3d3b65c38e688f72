"""Automatic zoom in the widget: the "Cell size (auto / px)" setting and, on request, the
objects' zoom windows on the current frame as a locked Shapes layer ("SAM 2 windows").

:class:`ZoomControl` is owned by the controller (``controller.zoom``); :class:`ZoomRow` is the
row of the dock widget that edits it. Everything the row does is one call from Python:
``controller.zoom.set_cell_diameter(24)`` (or ``"auto"``),
``controller.zoom.set_show_windows(True)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._state import TrackingState
from .layers import add_outline_layer

__all__ = ["WINDOWS_LAYER_NAME", "ZoomControl", "ZoomRow", "parse_cell_size"]

WINDOWS_LAYER_NAME = "SAM 2 windows"
WINDOWS_COLOR = "cyan"

ZOOM_HELP = (
    "Cells too small for the model on the whole frame are segmented in a zoomed window of the "
    "frame that follows them. Their size comes from a box, or is estimated around the first "
    "click; type the typical cell diameter in pixels to set it instead (e.g. when cells touch "
    "in clusters), 'auto', or 'off' (no windows: the model sees the whole frame or region). "
    "Applies to objects prompted from now on. 'show windows' draws the windows of the current "
    "frame."
)


def parse_cell_size(value: Any) -> float | None:
    """ "auto", "" or None -> None; a positive number (or its text) -> float pixels.

    Raises:
        ValueError: anything else, with the accepted forms.
    """
    from napari_sam2.video.windows import check_cell_diameter

    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    try:
        return check_cell_diameter(float(value))
    except (TypeError, ValueError):
        raise ValueError(
            f"cell size {value!r}: type 'auto' or the typical cell diameter in pixels, e.g. 24"
        ) from None


class ZoomControl:
    """The cell-size hint and the windows layer of one controller.

    Args:
        state: the controller's shared :class:`~napari_sam2._napari._state.TrackingState`
            (the windows layer is redrawn whenever the labels are).
    """

    def __init__(self, state: TrackingState) -> None:
        self._state = state
        state.events.labels_refreshed.connect(self.refresh)
        self.cell_diameter: float | None = None
        self.mode = "auto"  # "off": no windows (type "off" in the row)
        self.show_windows = False
        self.layer = None

    def set_cell_diameter(self, value: Any) -> float | None:
        """Set the typical cell diameter (px, or "auto"/None) for objects prompted from now
        on; "off" turns the zoom windows off for them."""
        off = isinstance(value, str) and value.strip().lower() == "off"
        self.cell_diameter = None if off else parse_cell_size(value)
        self.mode = "off" if off else "auto"
        session = self._state.session
        if session is not None:
            session.cell_diameter = self.cell_diameter
            session.zoom = self.mode
        return self.cell_diameter

    def set_show_windows(self, show: bool) -> None:
        """Show (or remove) the "SAM 2 windows" layer."""
        self.show_windows = bool(show)
        self.refresh()

    def windows(self, frame: int | None = None) -> list[tuple[int, tuple[int, int, int, int]]]:
        """(object id, (y0, x0, y1, x1)) of the objects segmented in a window on a frame
        (default: the current one)."""
        st = self._state
        if st.session is None or st.info is None:
            return []
        t = st.current_frame() if frame is None else int(frame)
        out = []
        for obj in st.session.obj_ids:
            w = st.session.window(obj, t)
            if w is not None:
                out.append((obj, w))
        return out

    def refresh(self) -> None:
        """Redraw the windows of the current frame (main thread)."""
        st = self._state
        layers = st.viewer.layers
        if not self.show_windows or st.info is None:
            if self.layer is not None and self.layer in layers:
                layers.remove(self.layer)
            self.layer = None
            return
        rects = []
        for _, (y0, x0, y1, x1) in self.windows():  # on the pixel edges
            a, b, c, d = y0 - 0.5, x0 - 0.5, y1 - 0.5, x1 - 0.5
            rects.append(np.array([[a, b], [a, d], [c, d], [c, b]]))
        if self.layer is None or self.layer not in layers:
            self.layer = add_outline_layer(
                st.viewer, st.info, WINDOWS_LAYER_NAME, WINDOWS_COLOR, 400, 0.7
            )
        layer = self.layer
        layer.selected_data = set()
        layer.data = rects
        if rects:
            layer.shape_type = ["rectangle"] * len(rects)
            layer.edge_color = [WINDOWS_COLOR] * len(rects)
            layer.face_color = [[0, 0, 0, 0]] * len(rects)
        layer.mode = "pan_zoom"
        layer.editable = False


class ZoomRow:
    """The "Cell size (auto / px)" row: a text field and a "show windows" check box.

    Args:
        control: the controller's :class:`ZoomControl`.
        form: the QFormLayout to add the row to.
        safe: the widget's ``_safe(func, *args)`` (errors become notifications).
    """

    def __init__(self, control: ZoomControl, form, safe) -> None:
        from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QLineEdit

        self.control = control
        self.edit = QLineEdit("auto")
        self.edit.setToolTip(ZOOM_HELP)
        self.edit.editingFinished.connect(lambda: safe(self.apply, self.edit.text()))
        self.windows_box = QCheckBox("show windows")
        self.windows_box.setToolTip("Draw the zoom windows of the current frame")
        self.windows_box.toggled.connect(lambda on: safe(control.set_show_windows, on))
        row = QHBoxLayout()
        row.addWidget(self.edit, 1)
        row.addWidget(self.windows_box)
        label = QLabel("Cell size (auto / px)")
        label.setToolTip(ZOOM_HELP)
        form.addRow(label, row)

    def apply(self, text: str) -> None:
        """Set the cell size from the field's text (and show it normalised)."""
        try:
            value = self.control.set_cell_diameter(text)
        finally:
            d = self.control.cell_diameter
            text = "auto" if d is None else f"{d:g}"
            self.edit.setText("off" if self.control.mode == "off" else text)
        return value
