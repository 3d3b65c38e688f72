"""Dock widget "SAM 2 3-D": z-stacks and 3-D cells through time, following divisions (a view
over :class:`~napari_sam2._napari._volume.VolumeController`)."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ._forms import divisions_check
from ._model import model_choices
from ._volume import MODES, VolumeController, guess_axes

_AXES_CHOICES = ("ZYX", "TZYX", "ZTYX")


class VolumeWidget(QWidget):
    """Click a cell on one slice; propagate through z, through time, or both.

    Args:
        napari_viewer: the viewer (injected by napari).
    """

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.controller = VolumeController(napari_viewer)
        form = QFormLayout()
        self.model_combo = QComboBox()
        for m in model_choices():
            self.model_combo.addItem(m["label"], m["name"])
        load = QPushButton("Load")
        load.clicked.connect(self._load_model)
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(load)
        form.addRow("Model", row)
        self.layer_combo = QComboBox()
        self.layer_combo.currentTextChanged.connect(self._guess)
        form.addRow("Image (3-D / 4-D)", self.layer_combo)
        self.axes_combo = QComboBox()
        self.axes_combo.setEditable(True)
        self.axes_combo.addItems(_AXES_CHOICES)
        self.axes_combo.setToolTip(
            "Which axis is time (T) and which is z (Z), one letter per dimension, e.g. TZYX. "
            "Filled from the layer's axis labels when it has them."
        )
        self.axes_note = QLabel("")
        form.addRow("Axes", self.axes_combo)
        form.addRow("", self.axes_note)
        use = QPushButton("Use this layer")
        use.clicked.connect(self._use_layer)
        form.addRow(use)
        self.object_label = QLabel("object 1")
        new = QPushButton("New object")
        new.clicked.connect(self._new_object)
        row = QHBoxLayout()
        row.addWidget(self.object_label, 1)
        row.addWidget(new)
        form.addRow("Clicks go to", row)
        self.objects_list = QListWidget()
        self.objects_list.setMaximumHeight(100)
        self.objects_list.setToolTip(
            "The objects (cells): those clicked and the daughters found while following "
            "divisions. Select one to send the next clicks to it"
        )
        self.objects_list.currentItemChanged.connect(self._on_object_selected)
        form.addRow("Objects", self.objects_list)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(MODES)
        self.mode_combo.setCurrentText("both")
        run = QPushButton("Propagate")
        run.clicked.connect(self._run)
        row = QHBoxLayout()
        row.addWidget(self.mode_combo, 1)
        row.addWidget(run)
        form.addRow("Propagate", row)
        self.divisions_check = divisions_check(
            " ('both' on 3-D + time; on by default there, not offered for z-stacks)"
        )
        self.divisions_check.setEnabled(False)  # until a 3-D + time layer is used
        self.divisions_check.toggled.connect(self._on_divisions_toggled)
        form.addRow(self.divisions_check)
        export = QPushButton("Save labels (hyperstack TIFF)...")
        export.clicked.connect(self._export)
        form.addRow(export)
        ctc = QPushButton("Save CTC folder...")
        ctc.setToolTip("Cell Tracking Challenge result folder, divisions as parent links")
        ctc.clicked.connect(self._export_ctc)
        tracks = QPushButton("Tracks layer")
        tracks.setToolTip("The objects' centroids through time, daughters linked to mothers")
        tracks.clicked.connect(lambda: self._safe(self.controller.tracks_layer))
        row = QHBoxLayout()
        row.addWidget(ctc)
        row.addWidget(tracks)
        form.addRow(row)
        self.status = QLabel("Load a model, pick a 3-D or 4-D image layer")
        self.status.setWordWrap(True)
        root = QVBoxLayout(self)
        root.addLayout(form)
        root.addWidget(self.status)
        root.addStretch(1)
        napari_viewer.layers.events.inserted.connect(self._refresh_layers)
        napari_viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    # ------------------------------------------------------------------ slots
    def _say(self, text: str) -> None:
        self.status.setText(text)

    def _safe(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (ValueError, RuntimeError, FileNotFoundError) as err:
            self._say(f"error: {err}")
            return None

    def _load_model(self) -> None:
        from napari_sam2 import load_model

        name = self.model_combo.currentData()
        model = self._safe(load_model, name)
        if model is not None:
            self.controller.model = model
            self._say(f"model {name} loaded")

    def _refresh_layers(self, *_) -> None:
        from napari.layers import Image

        current = self.layer_combo.currentText()
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        for layer in self.viewer.layers:
            if isinstance(layer, Image) and layer.ndim in (3, 4) and not layer.rgb:
                self.layer_combo.addItem(layer.name)
        if current:
            self.layer_combo.setCurrentText(current)
        self.layer_combo.blockSignals(False)
        self._guess(self.layer_combo.currentText())

    def _layer(self):
        name = self.layer_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _guess(self, *_) -> None:
        layer = self._layer()
        if layer is None:
            return
        axes, certain = self._safe(guess_axes, layer) or ("", False)
        self.axes_combo.setCurrentText(axes)
        self.axes_note.setText(
            "from the layer's axis labels"
            if certain
            else "the layer does not say: which axis is time (T), which is z (Z)?"
        )

    def _use_layer(self) -> None:
        layer = self._layer()
        if layer is None:
            self._say("no 3-D or 4-D image layer")
            return
        axes = self._safe(self.controller.set_image_layer, layer, self.axes_combo.currentText())
        if axes:
            self._show_objects()
            self._say(self.controller.status)

    def _new_object(self) -> None:
        if self.controller.labels_layer is not None:
            self.controller.new_object()
            self._show_objects()

    def _on_divisions_toggled(self, on: bool) -> None:
        c = self.controller
        if self._safe(c.set_follow_divisions, on) is None and c.follow_divisions != on:
            self._sync_divisions()  # refused (a propagation runs): show what is used

    def _sync_divisions(self) -> None:
        """The switch shows the controller's choice; offered for 3-D + time only."""
        c = self.controller
        self.divisions_check.blockSignals(True)
        self.divisions_check.setChecked(c.follow_divisions)
        self.divisions_check.blockSignals(False)
        self.divisions_check.setEnabled(c.axes is not None and "T" in c.axes)

    def _show_objects(self) -> None:
        """List the controller's objects (daughters with their mother) and the one clicks go
        to; show the division switch."""
        c = self.controller
        lineage = c.lineage(checked=False)
        lst = self.objects_list
        lst.blockSignals(True)
        lst.clear()
        for obj in sorted({*c.object_ids, c.obj_id}):
            text = f"object {obj}"
            if obj in lineage:
                text += f" (daughter of {lineage[obj]})"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, obj)
            lst.addItem(item)
            if obj == c.obj_id:
                lst.setCurrentItem(item)
        lst.blockSignals(False)
        self.object_label.setText(f"object {c.obj_id}")
        self._sync_divisions()

    def _on_object_selected(self, item, _previous=None) -> None:
        if item is not None:
            self.controller.select(int(item.data(Qt.ItemDataRole.UserRole)))
            self.object_label.setText(f"object {self.controller.obj_id}")

    def _run(self) -> None:
        worker = self._safe(self.controller.run, self.mode_combo.currentText())
        if worker is not None:
            self._say(f"{self.mode_combo.currentText()}: running...")
            worker.finished.connect(self._finished)

    def _finished(self) -> None:
        self._show_objects()
        self._say(self.controller.status)

    def _export(self) -> None:
        if self.controller.labels_layer is None:
            self._say("nothing to save yet")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save labels", "", "TIFF (*.tif *.tiff)")
        if path:
            out = self._safe(self.controller.export, path)
            if out is not None:
                self._say(f"wrote {out}")

    def _export_ctc(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "CTC result folder (e.g. 01_RES)")
        if folder:
            out = self._safe(self.controller.export_ctc, folder)
            if out is not None:
                self._say(f"wrote {out}")
