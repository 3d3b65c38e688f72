"""The "Region" row of the dock widget (:class:`~napari_sam2._napari.widget.SAM2Widget`):
track only the part of the frame the canvas shows, or the full frame. A thin view over the
controller's :class:`~napari_sam2._napari._region.RegionControl`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from ._region import ROI_LAYER_NAME, describe_roi

__all__ = ["RegionRow"]

ROI_HELP = (
    "The model sees every frame shrunk to its square input: 256 px for the bundled 'micro' "
    "model, 1024 px for the official SAM 2 models. Small cells on large frames then become "
    "too small to segment: a cell should span at least ~20 px at the model's input size. "
    "Zoom the viewer onto the cells to track and press 'Region: use current view': only that "
    f"region is given to the model (shown as the '{ROI_LAYER_NAME}' rectangle). Clicks must "
    "lie inside it, and labels stay empty outside it. Changing the region re-runs the prompts "
    "given so far (their frames are encoded again); re-propagate afterwards. 'Full frame' "
    "goes back to the whole image."
)


class RegionRow:
    """The "Region" row: what the model sees, "Region: use current view" and "Full frame".

    Args:
        controller: the :class:`~napari_sam2._napari.controller.TrackingController` (its
            ``region``, ``info`` and ``model`` are shown).
        form: the form to add the row to.
        safe: ``safe(func, *args)`` runs an action, turning errors into notifications.
    """

    def __init__(self, controller: Any, form: QFormLayout, safe: Callable[..., Any]) -> None:
        self.controller = c = controller
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setToolTip(ROI_HELP)
        self.view_button = QPushButton("Region: use current view")
        self.view_button.setToolTip(ROI_HELP)
        self.view_button.clicked.connect(lambda: safe(c.region.use_view))
        self.full_button = QPushButton("Full frame")
        self.full_button.setToolTip("Give the model the whole frame again (no region)")
        self.full_button.clicked.connect(lambda: safe(c.region.set, None))
        col = QVBoxLayout()
        col.addWidget(self.label)
        row = QHBoxLayout()
        row.addWidget(self.view_button, 1)
        row.addWidget(self.full_button)
        col.addLayout(row)
        lab = QLabel("Region")
        lab.setToolTip(ROI_HELP)
        form.addRow(lab, col)
        for signal in (c.events.roi_changed, c.events.image_changed, c.events.model_changed):
            signal.connect(self.refresh)
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """Show the region (or the full frame) and how much the model shrinks it."""
        c = self.controller
        has_image = c.info is not None
        roi = c.region.roi
        self.view_button.setEnabled(has_image)
        self.full_button.setEnabled(has_image and roi is not None)
        if not has_image:
            self.label.setText("full frame (no image chosen)")
            return
        text = describe_roi(roi)
        if roi is None:
            h, w = c.info.frame_shape
            text += f" ({h} x {w} px)"
            side = max(h, w)
        else:
            side = max(roi[2] - roi[0], roi[3] - roi[1])
        model = c.model.loaded
        if model is not None:
            size = int(model.image_size)
            factor = side / size
            text += (
                f", shrunk {factor:.1f}x to the model's {size} px"
                if factor > 1.05
                else f", at the model's {size} px"
            )
        self.label.setText(text)
