"""The "SAM 2 tracking" dock widget: a thin Qt view over :class:`TrackingController`.

Every button calls a method of one of the controller's parts; scripts and the napari console
call the same methods through ``widget.controller`` (``widget.controller.prompts.add_point(...)``,
``widget.controller.propagation.run(...)``...; see docs/usage.md, "Scripting a napari session").
The widget owns its sections as small objects: :class:`~._widget_model.ModelRows`,
:class:`~._widget_roi.RegionRow`, :class:`~._zoom.ZoomRow`, the magicgui
:class:`~._forms.LayerPicker` and :class:`~._forms.MemoryForm`,
:class:`~._widget_many_cells.ManyCellsPanel` and :class:`~._widget_propagation.PropagationPanel`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from ._forms import LayerPicker, MemoryForm
from ._help import shortcut_help
from ._widget_many_cells import ManyCellsPanel
from ._widget_model import ModelRows
from ._widget_propagation import PropagationPanel
from ._widget_roi import RegionRow
from ._zoom import ZoomRow
from .controller import TrackingController
from .layers import UnsupportedLayerError

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["SAM2Widget"]

_CLICK_HELP = (
    "Clicks layer (add mode): click = positive (on the object), Alt+click or right-click = "
    "negative (background). Boxes layer: press R and drag a rectangle. Delete a click or box "
    "(select mode, Delete) to undo it. Paint in the labels layer, then 'Use my edit'."
)


def _warm_up_imports() -> None:
    """Import torch and the model code in the background, so the first click does not wait."""
    import sys
    import threading

    if "napari_sam2.video.session" in sys.modules:
        return

    def run() -> None:
        import importlib

        try:
            importlib.import_module("napari_sam2.video.session")
        except Exception:  # noqa: BLE001 - the real import will report it
            pass

    threading.Thread(target=run, name="napari-sam2 warm-up", daemon=True).start()


def _button(text: str, tip: str, slot) -> QPushButton:
    b = QPushButton(text)
    b.setToolTip(tip)
    b.clicked.connect(slot)
    return b


class SAM2Widget(QWidget):
    """Dock widget "SAM 2 tracking".

    Args:
        napari_viewer: the viewer (injected by napari).
        bind_keys: bind the keyboard shortcuts on the viewer.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, *, bind_keys: bool = True) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.controller = TrackingController(napari_viewer, bind_keys=bind_keys)
        self._updating = False
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        root.addWidget(self._model_section())
        root.addWidget(self._data_section())
        root.addWidget(self._objects_section())
        self.many_cells = ManyCellsPanel(self.controller, self._safe)
        root.addWidget(self.many_cells.section)
        self.propagation_panel = PropagationPanel(self.controller, self._safe)
        root.addWidget(self.propagation_panel.box)
        root.addWidget(self._memory_section())
        root.addWidget(self._export_section())
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        root.addWidget(self.status)
        root.addStretch(1)

        c = self.controller
        ev = c.events
        ev.status_changed.connect(self._set_status)
        ev.objects_changed.connect(self._refresh_objects)
        ev.busy_changed.connect(self._on_busy)
        ev.image_changed.connect(self._refresh_layers)
        ev.settings_changed.connect(self._refresh_memory)
        layers = self.viewer.layers.events
        handlers = [
            (layers.inserted, self._refresh_layers),
            (layers.inserted, self._auto_pick),
            (layers.removed, self._refresh_layers),
        ]
        for event, handler in handlers:
            event.connect(handler)

        def cleanup(*_) -> None:
            for event, handler in handlers:
                event.disconnect(handler)
            c.close()

        self.destroyed.connect(cleanup)
        self.close_controller = cleanup
        self._refresh_layers()
        self._auto_pick()
        self.status.setText(c.status_text())
        _warm_up_imports()

    def _set_status(self, text: str) -> None:
        self.status.setText(text)

    def _auto_pick(self, *_) -> None:
        """Track the active image layer (or the first usable one) when none is chosen yet."""
        from napari.layers import Image

        if self.controller.info is not None:
            return
        active = self.viewer.layers.selection.active
        candidates = [active] if isinstance(active, Image) else []
        candidates += [ly for ly in reversed(self.viewer.layers) if isinstance(ly, Image)]
        for layer in candidates:
            try:
                self.controller.set_image_layer(layer)
            except UnsupportedLayerError:
                continue
            self._refresh_layers()
            return

    # ================================================================== sections
    def _model_section(self) -> QGroupBox:
        box = QGroupBox("Model")
        form = QFormLayout(box)
        c = self.controller
        self.model_rows = ModelRows(c.model, c.events, form, self._safe)
        self.region_row = RegionRow(c, form, self._safe)
        self.zoom_row = ZoomRow(c.zoom, form, self._safe)
        return box

    def _data_section(self) -> QGroupBox:
        box = QGroupBox("Data and prompts")
        form = QFormLayout(box)
        self.image_picker = LayerPicker(  # magicgui
            self._image_layers, "The time-lapse to track: (T, Y, X), RGB or (T, C, Y, X)"
        )
        self.layer_combo = self.image_picker.native
        self.layer_combo.activated.connect(self._on_layer_activated)
        form.addRow("Image", self.layer_combo)
        self.channel_combo = QComboBox()
        self.channel_combo.setToolTip("Which channel the model looks at")
        self.channel_combo.activated.connect(self._on_channel_activated)
        self.contrast_combo = QComboBox()
        self.contrast_combo.addItems(["auto contrast", "as displayed"])
        self.contrast_combo.setToolTip(
            "auto: brightness window from the whole movie (robust); as displayed: the layer's "
            "contrast limits, so the model sees what you see"
        )
        self.contrast_combo.activated.connect(self._on_channel_activated)
        row = QHBoxLayout()
        row.addWidget(self.channel_combo, 1)
        row.addWidget(self.contrast_combo)
        form.addRow("Channel", row)
        self.negative_check = QCheckBox("negative clicks")
        self.negative_check.setToolTip(
            "Clicks mark background instead of the object" + shortcut_help("toggle_negative")
        )
        self.negative_check.toggled.connect(self._on_negative_toggled)
        edit = _button(
            "Use my edit",
            "Send what you painted for the selected object on this frame to the model as its "
            "mask" + shortcut_help("use_edit"),
            lambda: self._safe(self.controller.prompts.use_edit),
        )
        row = QHBoxLayout()
        row.addWidget(self.negative_check)
        row.addWidget(edit)
        form.addRow("Clicks", row)
        hint = QLabel(_CLICK_HELP)
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray; font-size: small")
        form.addRow(hint)
        return box

    def _objects_section(self) -> QGroupBox:
        box = QGroupBox("Objects")
        lay = QVBoxLayout(box)
        self.objects_list = QListWidget()
        self.objects_list.setMaximumHeight(120)
        self.objects_list.setToolTip(
            "Objects (cells) being tracked; colours match the labels layer. Select one before "
            "clicking" + shortcut_help("next_object").replace(")", ", ',' previous)")
        )
        self.objects_list.currentItemChanged.connect(self._on_object_selected)
        lay.addWidget(self.objects_list)
        row = QHBoxLayout()
        row.addWidget(
            _button(
                "Add",
                "New object with the next free id" + shortcut_help("new_object"),
                lambda: self._safe(self.controller.objects.add),
            )
        )
        row.addWidget(
            _button(
                "Remove",
                "Forget the selected object and clear its labels",
                lambda: self._safe(self.controller.objects.remove),
            )
        )
        lay.addLayout(row)
        return box

    def _memory_section(self) -> QCollapsible:
        """Collapsible "Memory bank" settings (values filled in when first opened, since reading
        the defaults imports torch)."""
        self._memory_filled = False
        self.memory_section = coll = QCollapsible("Memory bank")
        coll.setToolTip("What the model remembers while it tracks")
        self.memory_form = MemoryForm(self._set_memory)  # magicgui, from MemorySettings
        self.memory_widgets = self.memory_form.native_widgets()
        inner = self.memory_form.native
        coll.addWidget(inner)
        coll.toggled.connect(lambda on: on and self._refresh_memory(force=True))
        return coll

    def _export_section(self) -> QGroupBox:
        box = QGroupBox("Export")
        grid = QGridLayout(box)
        grid.addWidget(
            _button(
                "Labels TIFF...",
                "Save the label movie as a TIFF (Fiji-ready)",
                self._export_tiff_dialog,
            ),
            0,
            0,
        )
        grid.addWidget(
            _button(
                "CTC folder...", "Cell Tracking Challenge result folder", self._export_ctc_dialog
            ),
            0,
            1,
        )
        grid.addWidget(
            _button(
                "Measurements CSV...",
                "Area, centroid, intensity and score of every object on every frame",
                self._export_csv_dialog,
            ),
            1,
            0,
        )
        grid.addWidget(
            _button(
                "Tracks layer",
                "Show the objects' centroid tracks",
                lambda: self._safe(self.controller.exports.tracks_layer, wait=False),
            ),
            1,
            1,
        )
        return box

    # ================================================================== refresh
    def _refresh_layers(self, *_) -> None:
        self._updating = True
        info = self.controller.info
        self.image_picker.refresh(None if info is None else info.layer.name)
        self._refresh_channels()
        self._updating = False
        self.many_cells.refresh_seed_layers()
        self.propagation_panel.set_num_frames(self.controller.num_frames)

    def _image_layers(self) -> list:
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def _refresh_channels(self) -> None:
        info = self.controller.info
        self.channel_combo.clear()
        if info is None or not info.channels:
            self.channel_combo.setEnabled(False)
            return
        self.channel_combo.setEnabled(True)
        for label, value in info.channels:
            self.channel_combo.addItem(label, value)
        i = [v for _, v in info.channels].index(self.controller.channel)
        self.channel_combo.setCurrentIndex(i)

    def _refresh_objects(self) -> None:
        c = self.controller
        lst = self.objects_list
        self._updating = True
        lst.clear()
        for obj in c.objects.ids:
            pix = QPixmap(14, 14)
            r, g, b, _ = (int(255 * v) for v in c.objects.color(obj))
            pix.fill(QColor(r, g, b))
            n = sum(1 for (_, o) in c.scores if o == obj)
            text = f"object {obj}" + (f"  ({n} frames)" if n else "")
            item = QListWidgetItem(QIcon(pix), text)
            item.setData(Qt.ItemDataRole.UserRole, obj)
            lst.addItem(item)
            if obj == c.objects.current:
                lst.setCurrentItem(item)
        self._updating = False
        self.status.setText(c.status_text())

    def _refresh_memory(self, force: bool = False) -> None:
        if not (force or self._memory_filled):
            return
        self._memory_filled = True
        model = self.controller.model
        cfg = None if model.loaded is None else model.loaded.config
        self.memory_form.show(
            model.settings,
            num_maskmem=None if cfg is None else cfg.num_maskmem,
            max_obj_ptrs=None if cfg is None else cfg.max_obj_ptrs_in_encoder,
        )

    def _on_busy(self, busy: bool) -> None:
        self.status.setText(self.controller.status_text())
        if not busy:
            self._refresh_objects()

    # ================================================================== slots
    def _safe(self, func, *args, **kwargs):
        return self.controller._safe(func, *args, **kwargs)

    def _on_layer_activated(self, index: int) -> None:
        if self._updating or index < 0:
            return
        self._safe_set_layer(self.layer_combo.itemData(index))

    def _safe_set_layer(self, name: str) -> None:
        from napari.utils.notifications import show_warning

        try:
            self.controller.set_image_layer(self.viewer.layers[name])
        except UnsupportedLayerError as exc:
            show_warning(f"SAM 2 cannot use this layer: {exc}")
            self._refresh_layers()
        except Exception as exc:  # noqa: BLE001
            self._safe(self._raise, exc)
        self._refresh_layers()

    @staticmethod
    def _raise(exc: BaseException) -> None:
        raise exc

    def _on_channel_activated(self, *_) -> None:
        if self._updating or self.controller.info is None:
            return
        contrast = "layer" if self.contrast_combo.currentIndex() == 1 else "auto"
        channel = self.channel_combo.currentData() if self.channel_combo.count() else None
        self._safe(self.controller.set_channel, channel, contrast=contrast)

    def _on_negative_toggled(self, value: bool) -> None:
        if self.controller.prompts.negative_mode != value:
            self.controller.prompts.toggle_negative()

    def _on_object_selected(self, item, _prev=None) -> None:
        if self._updating or item is None:
            return
        self._safe(self.controller.objects.select, item.data(Qt.ItemDataRole.UserRole))

    def _set_memory(self, name: str, value: Any) -> None:
        if self._updating:
            return
        self._safe(self.controller.model.set_memory_setting, name, value)
        self._refresh_memory()

    def _export_tiff_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save labels", "labels.tif", "TIFF (*.tif)")
        if path:
            self._safe(self.controller.exports.labels, path, wait=False)

    def _export_ctc_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "CTC result folder (e.g. 01_RES)")
        if folder:
            self._safe(self.controller.exports.ctc, folder, wait=False)

    def _export_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save measurements", "measurements.csv", "CSV (*.csv)"
        )
        if path:
            self._safe(self.controller.exports.measurements, path, wait=False)
