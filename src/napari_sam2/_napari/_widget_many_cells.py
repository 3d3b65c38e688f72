"""The collapsible "Many cells" section of the dock widget
(:class:`~napari_sam2._napari.widget.SAM2Widget`): cell preset, follow divisions, seeding from a
Labels layer and finding all cells on a frame. A thin view over the controller's
:class:`~napari_sam2._napari._many_cells.ManyCellsControl` (``controller.cells``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)
from superqt import QCollapsible

from ._forms import DivisionForm, LayerPicker, divisions_check
from ._many_cells import PRESETS

__all__ = ["ManyCellsPanel"]

_FIND_HELP = (
    "Seeded and found cells become new objects with their mask as the prompt on this frame; "
    "existing objects and painted labels are never overwritten. Remove wrong ones (Objects > "
    "Remove), then Propagate."
)


class ManyCellsPanel:
    """The collapsible "Many cells" section (:attr:`section`).

    Args:
        controller: the :class:`~napari_sam2._napari.controller.TrackingController` (its
            ``cells`` and ``propagation`` parts are edited).
        safe: ``safe(func, *args)`` runs an action, turning errors into notifications.
    """

    def __init__(self, controller: Any, safe: Callable[..., Any]) -> None:
        self.controller = c = controller
        cells = c.cells
        self._safe = safe
        self._updating = False
        self.section = coll = QCollapsible("Many cells")
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

        self.divisions_check = divisions_check(", and a lost cell that reappears gets a new id")
        self.divisions_check.toggled.connect(
            lambda v: self._updating or safe(c.propagation.set_follow_divisions, v)
        )
        form.addRow(self.divisions_check)
        # filled when first opened: DivisionSettings lives with the engine (imports torch)
        self.division_form: DivisionForm | None = None
        self.division_section = QCollapsible("Division settings")
        self.division_section.setToolTip(
            "How a division (and a lost or found cell) is recognised while following divisions"
        )
        self.division_section.toggled.connect(lambda on: on and self._show_division_form())
        form.addRow(self.division_section)

        self.seed_picker = LayerPicker(  # magicgui
            cells.seed_layers,
            "A Labels layer (e.g. a segmentation of this frame): every label becomes an object",
        )
        self.seed_combo = self.seed_picker.native
        seed = QPushButton("Seed from this Labels layer")
        seed.setToolTip(
            "Every label of the chosen layer on this frame becomes an object (same id when it "
            "is free, else the next free id), with its mask as the prompt"
        )
        seed.clicked.connect(lambda: safe(self._seed_from_gui))
        row = QHBoxLayout()
        row.addWidget(self.seed_combo, 1)
        row.addWidget(seed)
        form.addRow("Labels", row)

        self.points_spin = QSpinBox()
        self.points_spin.setRange(1, 128)
        self.points_spin.setValue(cells.points_per_side)
        self.points_spin.setToolTip(
            "Grid of clicks tried per side (its square in all): more finds smaller cells, "
            "takes longer"
        )
        self.points_spin.valueChanged.connect(
            lambda v: self._updating or setattr(cells, "points_per_side", int(v))
        )
        find = QPushButton("Find all cells on this frame")
        find.setToolTip(
            "Segment everything on this frame without clicks (progress bar, Cancel stops it); "
            "each cell found becomes a new object"
        )
        find.clicked.connect(lambda: safe(cells.find))
        row = QHBoxLayout()
        row.addWidget(self.points_spin)
        row.addWidget(find, 1)
        form.addRow("Points/side", row)

        hint = QLabel(_FIND_HELP)
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray; font-size: small")
        form.addRow(hint)
        coll.addWidget(inner)
        coll.toggled.connect(lambda on: on and self.refresh_seed_layers())
        c.events.settings_changed.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------------ refresh
    def refresh_seed_layers(self, *_: Any) -> None:
        """Re-list the Labels layers to seed from, keeping the chosen one."""
        was, self._updating = self._updating, True
        picker = self.seed_picker
        current = picker.current
        picker.refresh(current if current in picker.names else next(iter(picker.names), None))
        self._updating = was

    def refresh(self) -> None:
        """Show the preset, the division switch and settings, and the grid of the controller."""
        c = self.controller
        was, self._updating = self._updating, True
        self.preset_combo.setCurrentText(c.cells.preset)
        self.divisions_check.setChecked(bool(c.propagation.follow_divisions))
        self.points_spin.setValue(int(c.cells.points_per_side))
        if self.division_form is not None:
            self.division_form.show(c.propagation.division_settings)
        self._updating = was

    def _show_division_form(self) -> None:
        """Build the division-settings form (magicgui) on first use, and show the settings."""
        propagation = self.controller.propagation
        if self.division_form is None:
            self.division_form = DivisionForm(self._set_division)
            self.division_section.addWidget(self.division_form.native)
        self.division_form.show(propagation.division_settings)

    def _set_division(self, name: str, value: Any) -> None:
        if self._updating:
            return
        self._safe(self.controller.propagation.set_division_setting, name, value)
        self.refresh()  # shows the value kept (an out-of-range one is refused)

    # ------------------------------------------------------------------ slots
    def _on_preset_activated(self, index: int) -> None:
        if self._updating:
            return
        self._safe(self.controller.cells.set_preset, self.preset_combo.itemText(index))

    def _seed_from_gui(self):
        name = self.seed_combo.currentText()
        if not name:
            raise ValueError("add a Labels layer to seed from (e.g. File > Open a label TIFF)")
        return self.controller.cells.seed_from_labels(name)
