"""Texts of the plugin: memory-setting labels and tooltips, keyboard shortcuts (plain data)."""

from __future__ import annotations

from napari_sam2.video.memory_settings import setting_fields

__all__ = ["MEMORY_BOOL_FIELDS", "MEMORY_FIELDS", "SHORTCUTS", "shortcut_help"]

#: MemorySettings field -> (label, tooltip), in the order shown in the "Memory bank" section
#: (read from the fields' metadata in :mod:`napari_sam2.video.memory_settings`).
MEMORY_FIELDS: dict[str, tuple[str, str]] = {
    f.name: (f.metadata["label"], f.metadata["tooltip"]) for f in setting_fields()
}

#: MemorySettings fields shown as check boxes (the others are whole numbers).
MEMORY_BOOL_FIELDS = frozenset(f.name for f in setting_fields() if isinstance(f.default, bool))

#: action -> (key, description). Keys are napari key strings bound on the viewer; none of them
#: is a napari default (napari's own use Shift only for polygon lasso, polyline, select-all and
#: visibility, and the plain letters E, F, L, M, P, R, S, T, X, Z ... of layer modes).
SHORTCUTS: dict[str, tuple[str, str]] = {
    "new_object": ("N", "new object (next free id)"),
    "next_object": (".", "select the next object"),
    "previous_object": (",", "select the previous object"),
    "propagate_forward": ("Shift-F", "propagate forward from the current frame"),
    "propagate_backward": ("Shift-B", "propagate backward from the current frame"),
    "cancel": ("Shift-Escape", "cancel the running propagation, cell search or download"),
    "toggle_negative": ("Shift-T", "toggle clicks between positive and negative"),
    "use_edit": ("Shift-E", "send your painted edit of the selected object on this frame"),
}


def shortcut_help(action: str) -> str:
    """' (key)' suffix for a tooltip."""
    key = SHORTCUTS[action][0].replace("-", "+")
    return f" (shortcut: {key})"
