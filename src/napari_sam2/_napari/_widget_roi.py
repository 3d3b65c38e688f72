"""The "Region" row of the dock widget (:class:`~napari_sam2._napari.widget.SAM2Widget`):
track only the part of the frame the canvas shows, or the full frame. A thin view over the
controller's :class:`~napari_sam2._napari._roi.RoiMixin` methods."""

from __future__ import annotations

from collections.abc import Sequence

from qtpy.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from ._roi import ROI_LAYER_NAME, describe_roi

__all__ = ["RoiSection"]

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


class RoiSection:
    """The region-of-interest row and scripting methods of the widget (uses its
    ``controller`` and ``_safe``)."""

    def _roi_row(self, form: QFormLayout) -> None:
        """Add the "Region" row (label + two buttons) to ``form``."""
        c = self.controller
        self.roi_label = QLabel()
        self.roi_label.setWordWrap(True)
        self.roi_label.setToolTip(ROI_HELP)
        self.roi_view_button = QPushButton("Region: use current view")
        self.roi_view_button.setToolTip(ROI_HELP)
        self.roi_view_button.clicked.connect(lambda: self._safe(c.use_view_as_roi))
        self.roi_full_button = QPushButton("Full frame")
        self.roi_full_button.setToolTip("Give the model the whole frame again (no region)")
        self.roi_full_button.clicked.connect(lambda: self._safe(c.set_roi, None))
        col = QVBoxLayout()
        col.addWidget(self.roi_label)
        row = QHBoxLayout()
        row.addWidget(self.roi_view_button, 1)
        row.addWidget(self.roi_full_button)
        col.addLayout(row)
        lab = QLabel("Region")
        lab.setToolTip(ROI_HELP)
        form.addRow(lab, col)
        c.roi_changed.connect(self._refresh_roi)
        c.image_changed.connect(self._refresh_roi)
        c.model_changed.connect(self._refresh_roi)
        self._refresh_roi()

    def _refresh_roi(self, *_) -> None:
        c = self.controller
        has_image = c.info is not None
        self.roi_view_button.setEnabled(has_image)
        self.roi_full_button.setEnabled(has_image and c.roi is not None)
        if not has_image:
            self.roi_label.setText("full frame (no image chosen)")
            return
        roi = c.roi
        text = describe_roi(roi)
        if roi is None:
            h, w = c.info.frame_shape
            text += f" ({h} x {w} px)"
            side = max(h, w)
        else:
            side = max(roi[2] - roi[0], roi[3] - roi[1])
        if c.model is not None:
            size = int(c.model.image_size)
            factor = side / size
            text += (
                f", shrunk {factor:.1f}x to the model's {size} px"
                if factor > 1.05
                else f", at the model's {size} px"
            )
        self.roi_label.setText(text)

    # ------------------------------------------------------------------ scripting API
    def set_roi(self, roi: Sequence[float] | None = None, *, wait: bool = False):
        """Region of interest (y0, x0, y1, x1) in image pixels, or None for the full frame
        (see the controller's ``set_roi``)."""
        return self.controller.set_roi(roi, wait=wait)

    def use_view_as_roi(self, *, wait: bool = False):
        """Use what the canvas shows now as the region of interest."""
        return self.controller.use_view_as_roi(wait=wait)
