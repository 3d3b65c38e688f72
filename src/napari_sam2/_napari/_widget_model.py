"""The "Model" rows of the dock widget: the model picker (with "load from file..."), the Load
button, the device and the precision. A thin view over the controller's
:class:`~napari_sam2._napari._model.ModelControl`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QPushButton

from ._model import DEVICES, LOAD_FROM_FILE, PRECISIONS, ModelControl, model_choices

__all__ = ["ModelRows"]


class ModelRows:
    """The model, device and precision rows.

    Args:
        control: the controller's model part.
        events: the controller's signals (the rows follow ``model_changed``).
        form: the form to add the rows to.
        safe: ``safe(func, *args)`` runs an action, turning errors into notifications.
    """

    def __init__(
        self,
        control: ModelControl,
        events: Any,
        form: QFormLayout,
        safe: Callable[..., Any],
    ) -> None:
        self.control = control
        self._safe = safe
        self._updating = False
        self._file_models: list[str] = []
        self.model_combo = QComboBox()
        self.model_combo.setToolTip(
            "Which SAM 2 model segments and tracks. 'micro' ships with the plugin; official "
            "models are downloaded once (progress bar, cancellable) and cached."
        )
        self.model_combo.activated.connect(self._on_model_activated)
        load = QPushButton("Load")
        load.setToolTip("Load (and if needed download) the chosen model")
        load.clicked.connect(self._load_model)
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(load)
        form.addRow("Model", row)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.device_combo.setToolTip("Where the model runs: auto picks a GPU when there is one")
        self.device_combo.currentTextChanged.connect(
            lambda d: self._updating or safe(control.set_device, d)
        )
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(PRECISIONS)
        self.precision_combo.setToolTip(
            "fp32: exact; bf16: about 2x faster on recent GPUs, tiny differences in masks"
        )
        self.precision_combo.currentTextChanged.connect(
            lambda p: self._updating or safe(control.set_precision, p)
        )
        row = QHBoxLayout()
        row.addWidget(self.device_combo)
        row.addWidget(self.precision_combo)
        form.addRow("Device", row)
        events.model_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Re-list the models and show the loaded (or chosen) one, the device, the precision."""
        c = self.control
        combo = self.model_combo
        current = c.name or c.choice
        self._updating = True
        combo.clear()
        for choice in model_choices():
            combo.addItem(choice["label"], choice["name"])
            combo.setItemData(combo.count() - 1, choice["description"], Qt.ItemDataRole.ToolTipRole)
        for path in self._file_models:
            combo.addItem(os.path.basename(path), path)
        if c.loaded is not None and combo.findData(c.name) < 0:
            combo.insertItem(0, f"{c.name} (loaded)", c.name)
        combo.addItem(LOAD_FROM_FILE, LOAD_FROM_FILE)
        combo.setCurrentIndex(max(combo.findData(current), 0))
        self.device_combo.setCurrentText(c.device)
        self.precision_combo.setCurrentText(c.precision)
        self._updating = False

    def _on_model_activated(self, index: int) -> None:
        if self._updating:
            return
        name = self.model_combo.itemData(index)
        if name == LOAD_FROM_FILE:
            path, _ = QFileDialog.getOpenFileName(
                self.model_combo,
                "SAM 2 checkpoint",
                "",
                "PyTorch checkpoints (*.pt *.pth);;All files (*)",
            )
            if not path:
                self.refresh()
                return
            self._file_models.append(path)
            self._safe(self.control.set_model, path)
            self.refresh()
            return
        self.control.choose(name)

    def _load_model(self) -> None:
        name = self.model_combo.currentData()
        if name and name != LOAD_FROM_FILE:
            self._safe(self.control.set_model, name)
