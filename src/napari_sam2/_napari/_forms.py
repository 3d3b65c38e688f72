"""magicgui parts of the widget: the memory-bank form generated from
:class:`~napari_sam2.video.memory_settings.MemorySettings`, and layer pickers that list the
viewer's layers of one kind.

Each object owns its magicgui widgets; the Qt widget embeds them through ``.native``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, SpinBox

from napari_sam2.video.memory_settings import setting_fields

__all__ = ["LayerPicker", "MemoryForm"]

_SPIN_MAX = 100_000


class MemoryForm:
    """One magicgui widget per memory setting, built from the dataclass fields.

    Booleans become check boxes, whole numbers spin boxes; a field whose default is ``None``
    ("all") shows ``all`` at 0. Labels and tooltips come from the fields' metadata.

    Args:
        on_change: ``on_change(field_name, value)`` called when the user changes a value (not
            when :meth:`show` fills the form). ``value`` is ``None`` for "all".
    """

    def __init__(self, on_change: Callable[[str, Any], None]) -> None:
        self._on_change = on_change
        self._filling = False
        self._nullable: set[str] = set()
        self.widgets: dict[str, CheckBox | SpinBox] = {}
        for f in setting_fields():
            meta = f.metadata
            common = {"name": f.name, "label": meta["label"], "tooltip": meta["tooltip"]}
            if isinstance(f.default, bool):
                widget: CheckBox | SpinBox = CheckBox(value=f.default, **common)
            else:
                value = 0 if f.default is None else int(f.default)
                widget = SpinBox(value=value, min=0, max=_SPIN_MAX, **common)
                if f.default is None:
                    self._nullable.add(f.name)
                    widget.native.setSpecialValueText("all")
            widget.changed.connect(lambda value, name=f.name: self._changed(name, value))
            self.widgets[f.name] = widget
        self.container = Container(widgets=list(self.widgets.values()), labels=True)
        self.container.native.setContentsMargins(0, 0, 0, 0)

    @property
    def native(self) -> Any:
        """The form's Qt widget."""
        return self.container.native

    def native_widgets(self) -> dict[str, Any]:
        """Field name -> the Qt widget that edits it (``QCheckBox`` or ``QSpinBox``)."""
        return {name: w.native for name, w in self.widgets.items()}

    def _changed(self, name: str, value: Any) -> None:
        if self._filling:
            return
        if name in self._nullable and value == 0:
            value = None
        elif isinstance(value, bool):
            value = bool(value)
        else:
            value = int(value)
        self._on_change(name, value)

    def show(
        self, settings: Any, num_maskmem: int | None = None, max_obj_ptrs: int | None = None
    ) -> None:
        """Show ``settings`` without calling ``on_change``.

        Args:
            settings: a ``MemorySettings``.
            num_maskmem: the loaded model's memory slots (caps "Frames remembered" at one less);
                ``None`` when no model is loaded.
            max_obj_ptrs: the loaded model's object-pointer capacity; ``None`` when no model.
        """
        self._filling = True
        try:
            if num_maskmem is not None:
                self.widgets["num_memory_frames"].max = num_maskmem - 1
            if max_obj_ptrs is not None:
                self.widgets["max_object_pointers"].max = max_obj_ptrs
            for name, widget in self.widgets.items():
                value = getattr(settings, name)
                if isinstance(widget, CheckBox):
                    widget.value = bool(value)
                else:  # shown within the model's range, as a Qt spin box would clamp it
                    widget.value = min(max(int(value or 0), widget.min), widget.max)
        finally:
            self._filling = False


class LayerPicker:
    """A magicgui combo box of layer names, re-listed from the viewer on :meth:`refresh`.

    The widget calls :meth:`refresh` whenever layers are added or removed, so the list follows
    the viewer. Each item's text and data are the layer's name.

    Args:
        layers: returns the layers to offer, in order (e.g. the viewer's Image layers).
        tooltip: tooltip of the combo box.
    """

    def __init__(self, layers: Callable[[], list], tooltip: str) -> None:
        self._layers = layers
        self.combo = ComboBox(choices=self._choices, tooltip=tooltip)

    def _choices(self, _widget: Any = None) -> list[tuple[str, str]]:
        return [(layer.name, layer.name) for layer in self._layers()]

    @property
    def native(self) -> Any:
        """The ``QComboBox``."""
        return self.combo.native

    @property
    def names(self) -> list[str]:
        """The layer names listed now."""
        return [name for name, _ in self._choices()]

    @property
    def current(self) -> str | None:
        """The selected layer name, or ``None``."""
        return self.combo.native.currentData()

    def refresh(self, current: str | None) -> None:
        """Re-list the layers and select the one named ``current`` (nothing if it is ``None``
        or not listed)."""
        self.combo.reset_choices()
        index = self.combo.native.findData(current) if current is not None else -1
        self.combo.native.setCurrentIndex(index)
