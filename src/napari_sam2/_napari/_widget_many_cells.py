"""The collapsible "Many cells" section of the dock widget
(:class:`~napari_sam2._napari.widget.SAM2Widget`): cell preset, follow divisions, seeding from a
Labels layer and finding all cells on a frame. A thin view over the controller's
:class:`~napari_sam2._napari._many_cells.ManyCellsMixin` methods."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)
from superqt import QCollapsible

from ._forms import LayerPicker
from ._many_cells import PRESETS

__all__ = ["ManyCellsSection"]

_FIND_HELP = (
    "Seeded and found cells become new objects with their mask as the prompt on this frame; "
    "existing objects and painted labels are never overwritten. Remove wrong ones (Objects > "
    "Remove), then Propagate."
)


class ManyCellsSection:
    """The "Many cells" section and scripting methods of the widget (uses its
    ``controller``, ``_safe`` and ``_updating``)."""

    def _many_cells_section(self) -> QCollapsible:
        c = self.controller
        self.many_cells_section = coll = QCollapsible("Many cells")
        coll.setToolTip("Cell presets, division tracking, and many objects at once")
        inner = QWidget()
        form = QFormLayout(inner)

        self.preset_combo = QComboBox()
        for name, p in PRESETS.items():
            self.preset_combo.addItem(name)
            i = self.preset_combo.count() - 1
            self.preset_combo.setItemData(i, p["description"], Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.setToolTip(
            "Sets the memory settings, division tracking and the 'find cells' grid for a kind "
            "of cells (Generic: SAM 2's defaults, no division tracking)"
        )
        self.preset_combo.activated.connect(self._on_preset_activated)
        form.addRow("Preset", self.preset_combo)

        self.divisions_check = QCheckBox("Follow divisions")
        self.divisions_check.setToolTip(
            "While propagating forward, a cell that divides continues as two new objects "
            "(daughters, linked to their mother in the CTC export and the Tracks layer), and a "
            "lost cell that reappears gets a new id"
        )
        self.divisions_check.toggled.connect(
            lambda v: self._updating or self._safe(c.set_follow_divisions, v)
        )
        form.addRow(self.divisions_check)

        self.seed_picker = LayerPicker(  # magicgui
            c.seed_layers,
            "A Labels layer (e.g. a segmentation of this frame): every label becomes an object",
        )
        self.seed_combo = self.seed_picker.native
        seed = QPushButton("Seed from this Labels layer")
        seed.setToolTip(
            "Every label of the chosen layer on this frame becomes an object (same id when it "
            "is free, else the next free id), with its mask as the prompt"
        )
        seed.clicked.connect(lambda: self._safe(self._seed_from_gui))
        row = QHBoxLayout()
        row.addWidget(self.seed_combo, 1)
        row.addWidget(seed)
        form.addRow("Labels", row)

        self.points_spin = QSpinBox()
        self.points_spin.setRange(1, 128)
        self.points_spin.setValue(c.points_per_side)
        self.points_spin.setToolTip(
            "Grid of clicks tried per side (its square in all): more finds smaller cells, "
            "takes longer"
        )
        self.points_spin.valueChanged.connect(
            lambda v: self._updating or setattr(c, "points_per_side", int(v))
        )
        find = QPushButton("Find all cells on this frame")
        find.setToolTip(
            "Segment everything on this frame without clicks (progress bar, Cancel stops it); "
            "each cell found becomes a new object"
        )
        find.clicked.connect(lambda: self._safe(c.find_cells))
        row = QHBoxLayout()
        row.addWidget(self.points_spin)
        row.addWidget(find, 1)
        form.addRow("Points/side", row)

        hint = QLabel(_FIND_HELP)
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray; font-size: small")
        form.addRow(hint)
        coll.addWidget(inner)
        coll.toggled.connect(lambda on: on and self._refresh_seed_layers())
        self._refresh_many_cells()
        return coll

    # ------------------------------------------------------------------ refresh
    def _refresh_seed_layers(self, *_) -> None:
        was, self._updating = self._updating, True
        picker = self.seed_picker
        current = picker.current
        picker.refresh(current if current in picker.names else next(iter(picker.names), None))
        self._updating = was

    def _refresh_many_cells(self) -> None:
        c = self.controller
        was, self._updating = self._updating, True
        self.preset_combo.setCurrentText(c.preset)
        self.divisions_check.setChecked(bool(c.follow_divisions))
        self.points_spin.setValue(int(c.points_per_side))
        self._updating = was

    # ------------------------------------------------------------------ slots
    def _on_preset_activated(self, index: int) -> None:
        if self._updating:
            return
        self._safe(self.controller.set_preset, self.preset_combo.itemText(index))

    def _seed_from_gui(self):
        name = self.seed_combo.currentText()
        if not name:
            raise ValueError("add a Labels layer to seed from (e.g. File > Open a label TIFF)")
        return self.controller.seed_from_labels(name)

    # ------------------------------------------------------------------ scripting API
    def seed_from_labels(self, layer=None, frame: int | None = None, *, wait: bool = False):
        """Every label of a Labels layer (layer or name) on ``frame`` becomes an object; returns
        {label value: object id} with ``wait=True`` (see the controller)."""
        return self.controller.seed_from_labels(layer, frame, wait=wait)

    def find_cells(self, frame: int | None = None, *, wait: bool = False, **kwargs):
        """Find all cells on ``frame`` and add them as objects; returns their ids with
        ``wait=True`` (keywords: ``points_per_side``, ``min_area``, ``max_area``...)."""
        return self.controller.find_cells(frame, wait=wait, **kwargs)

    def set_preset(self, name: str) -> None:
        """Apply a cell preset ("Generic", "Nuclei (fluorescence)", "Cells (phase contrast)",
        "Bacteria")."""
        self.controller.set_preset(name)
