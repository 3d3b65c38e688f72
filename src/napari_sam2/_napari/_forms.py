"""magicgui parts of the widget: settings forms generated from dataclasses (the memory bank's
:class:`~napari_sam2.video.memory_settings.MemorySettings`, the division tracking's
:class:`~napari_sam2.video.lineage.DivisionSettings`), and layer pickers that list the
viewer's layers of one kind; and the "Follow divisions" switch of the tracking and the 3-D
widgets.

Each object owns its magicgui widgets; the Qt widget embeds them through ``.native``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import Field, fields
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox

from napari_sam2.video.memory_settings import setting_fields

__all__ = [
    "DivisionForm",
    "LayerPicker",
    "MemoryForm",
    "SettingsForm",
    "attribute_docs",
    "divisions_check",
]

_SPIN_MAX = 100_000
#: Step of the spin boxes of float fields (fractions and probabilities, 0..1).
_FLOAT_STEP = 0.05

_Widget = CheckBox | SpinBox | FloatSpinBox


class SettingsForm:
    """One magicgui widget per field of a settings dataclass.

    Booleans become check boxes, floats spin boxes from 0 to 1 (fractions and
    probabilities), whole numbers spin boxes from 0; a field whose default is ``None`` shows
    ``none_text`` at 0.

    Args:
        settings_fields: the dataclass fields to show, in order.
        texts: ``texts(field)`` -> (label, tooltip) of a field.
        on_change: ``on_change(field_name, value)`` called when the user changes a value (not
            when :meth:`show` fills the form). ``value`` is ``None`` for ``none_text``.
        none_text: what 0 means for a field whose default is ``None``.
    """

    def __init__(
        self,
        settings_fields: Sequence[Field],
        texts: Callable[[Field], tuple[str, str]],
        on_change: Callable[[str, Any], None],
        none_text: str,
    ) -> None:
        self._on_change = on_change
        self._filling = False
        self._nullable: set[str] = set()
        self.widgets: dict[str, _Widget] = {}
        for f in settings_fields:
            label, tooltip = texts(f)
            widget = _widget_for(f, label, tooltip)
            if f.default is None:
                self._nullable.add(f.name)
                widget.native.setSpecialValueText(none_text)
            widget.changed.connect(lambda value, name=f.name: self._changed(name, value))
            self.widgets[f.name] = widget
        self.container = Container(widgets=list(self.widgets.values()), labels=True)
        self.container.native.setContentsMargins(0, 0, 0, 0)

    @property
    def native(self) -> Any:
        """The form's Qt widget."""
        return self.container.native

    def native_widgets(self) -> dict[str, Any]:
        """Field name -> the Qt widget that edits it (``QCheckBox``, ``QSpinBox`` or
        ``QDoubleSpinBox``)."""
        return {name: w.native for name, w in self.widgets.items()}

    def _changed(self, name: str, value: Any) -> None:
        if self._filling:
            return
        widget = self.widgets[name]
        if name in self._nullable and value == 0:
            value = None
        elif isinstance(widget, CheckBox):
            value = bool(value)
        elif isinstance(widget, FloatSpinBox):
            value = float(value)
        else:
            value = int(value)
        self._on_change(name, value)

    def show(self, settings: Any, maxima: dict[str, float] | None = None) -> None:
        """Show ``settings`` (a dataclass instance) without calling ``on_change``.

        Args:
            settings: the values to show (``None`` shows as ``none_text``).
            maxima: field name -> largest value the spin box allows (e.g. the loaded
                model's capacity).
        """
        self._filling = True
        try:
            for name, top in (maxima or {}).items():
                self.widgets[name].max = top
            for name, widget in self.widgets.items():
                value = getattr(settings, name)
                if isinstance(widget, CheckBox):
                    widget.value = bool(value)
                else:  # shown within range, as a Qt spin box would clamp it
                    widget.value = min(max(value or 0, widget.min), widget.max)
        finally:
            self._filling = False


def _widget_for(f: Field, label: str, tooltip: str) -> _Widget:
    common = {"name": f.name, "label": label, "tooltip": tooltip}
    if isinstance(f.default, bool):
        return CheckBox(value=f.default, **common)
    if isinstance(f.default, float) or (f.default is None and "float" in str(f.type)):
        return FloatSpinBox(value=f.default or 0.0, min=0.0, max=1.0, step=_FLOAT_STEP, **common)
    return SpinBox(value=0 if f.default is None else int(f.default), min=0, max=_SPIN_MAX, **common)


class MemoryForm(SettingsForm):
    """The memory-bank form, built from the fields of
    :class:`~napari_sam2.video.memory_settings.MemorySettings` (labels and tooltips from the
    fields' metadata; ``all`` for "no limit").

    Args:
        on_change: ``on_change(field_name, value)`` on a user edit (see :class:`SettingsForm`).
    """

    def __init__(self, on_change: Callable[[str, Any], None]) -> None:
        super().__init__(
            setting_fields(),
            lambda f: (f.metadata["label"], f.metadata["tooltip"]),
            on_change,
            none_text="all",
        )

    def show(  # type: ignore[override]
        self, settings: Any, num_maskmem: int | None = None, max_obj_ptrs: int | None = None
    ) -> None:
        """Show ``settings`` without calling ``on_change``.

        Args:
            settings: a ``MemorySettings``.
            num_maskmem: the loaded model's memory slots (caps "Frames remembered" at one less);
                ``None`` when no model is loaded.
            max_obj_ptrs: the loaded model's object-pointer capacity; ``None`` when no model.
        """
        maxima: dict[str, float] = {}
        if num_maskmem is not None:
            maxima["num_memory_frames"] = num_maskmem - 1
        if max_obj_ptrs is not None:
            maxima["max_object_pointers"] = max_obj_ptrs
        super().show(settings, maxima)


#: DivisionSettings fields the form leaves out: ``enabled`` is the "Follow divisions" switch.
_DIVISION_HIDDEN = ("enabled",)


class DivisionForm(SettingsForm):
    """The division-tracking form, built from the fields of
    :class:`~napari_sam2.video.lineage.DivisionSettings` (tooltips from its docstring; ``off``
    for ``neck_ratio=None``). Building it imports the engine (torch).

    Args:
        on_change: ``on_change(field_name, value)`` on a user edit (see :class:`SettingsForm`).
    """

    def __init__(self, on_change: Callable[[str, Any], None]) -> None:
        from napari_sam2.video.lineage import DivisionSettings

        docs = attribute_docs(DivisionSettings)
        super().__init__(
            [f for f in fields(DivisionSettings) if f.name not in _DIVISION_HIDDEN],
            lambda f: (f.name.replace("_", " ").capitalize(), docs.get(f.name, "")),
            on_change,
            none_text="off",
        )


def divisions_check(more: str = "") -> Any:
    """The "Follow divisions" switch (a ``QCheckBox``, unchecked), as the tracking widget and
    the 3-D widget show it.

    Args:
        more: what the widget's division tracking does besides (appended to the tooltip).
    """
    from qtpy.QtWidgets import QCheckBox

    check = QCheckBox("Follow divisions")
    check.setToolTip(
        "While propagating forward, a cell that divides continues as two new objects "
        "(daughters, linked to their mother in the CTC export and the Tracks layer)" + more
    )
    return check


def attribute_docs(cls: type) -> dict[str, str]:
    """Field name -> its text in the *Attributes* section of ``cls``'s Google-style docstring
    (continuation lines joined)."""
    doc = cls.__doc__ or ""
    section = re.split(r"\n\s*Attributes:\s*\n", doc, maxsplit=1)
    if len(section) < 2:
        return {}
    out: dict[str, str] = {}
    name = None
    for line in section[1].splitlines():
        m = re.match(r"\s{4,8}(\w+): (.*)", line)
        if m and not line.startswith(" " * 12):
            name = m.group(1)
            out[name] = m.group(2).strip()
        elif name and line.strip():
            out[name] += " " + line.strip()
        elif not line.strip() and name:
            name = None
    return out


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
