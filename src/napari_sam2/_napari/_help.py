"""Texts of the plugin: memory-setting labels and tooltips, keyboard shortcuts (plain data)."""

from __future__ import annotations

__all__ = ["MEMORY_BOOL_FIELDS", "MEMORY_FIELDS", "SHORTCUTS", "shortcut_help"]

#: MemorySettings field -> (label, tooltip), in the order shown in the "Memory bank" section.
MEMORY_FIELDS: dict[str, tuple[str, str]] = {
    "num_memory_frames": (
        "Frames remembered",
        "How many past frames the model remembers while it follows a cell, besides the frames "
        "you clicked on. More frames: steadier tracking of slowly changing cells; fewer: "
        "quicker adaptation when a cell changes shape fast (e.g. during division). 0 is the "
        "fastest (only the clicked frames are remembered), at some cost on fast-moving cells.",
    ),
    "memory_stride": (
        "Remember every n-th frame",
        "Use only every n-th past frame (the previous frame is always used). Larger values "
        "look further back in time at the same cost: helps with slow movements or cells that "
        "are briefly hidden.",
    ),
    "max_prompted_frames": (
        "Clicked frames used",
        "How many of the frames you clicked on (or corrected) the model looks at, nearest in "
        "time first. 'all' uses every one; a small number keeps long movies fast.",
    ),
    "max_object_pointers": (
        "Identity cues",
        "How many recent frames contribute a compact 'what this cell looks like' summary. "
        "Higher values help to keep the same cell among similar neighbours.",
    ),
    "use_object_pointers": (
        "Use identity cues",
        "Let the model use the compact per-frame summaries of each cell (recommended).",
    ),
    "non_overlap": (
        "No overlaps between cells",
        "Each pixel goes to one cell only (the one the model is most sure about). Turn on for "
        "densely packed cells whose masks bleed into each other.",
    ),
    "fill_holes_area": (
        "Fill holes up to (px)",
        "Fill small holes inside masks (size measured on the model's coarse 1/4-resolution "
        "mask). 0 keeps holes, e.g. for cells with vacuoles.",
    ),
    "multimask_first_click": (
        "Best of 3 on first click",
        "With a single click the model proposes three candidate outlines (part, whole, group) "
        "and keeps the one it trusts most.",
    ),
    "corrections_as_prompts": (
        "Keep corrections",
        "A click on an already tracked frame is kept as a reference frame for later "
        "propagations (recommended). Off: a correction only lasts until the next propagation "
        "passes that frame.",
    ),
    "offload_to_cpu": (
        "Keep memory in RAM",
        "Store what the model remembers in computer memory instead of on the graphics card. "
        "Slower, but lets long movies with many cells fit on small GPUs.",
    ),
    "feature_cache_frames": (
        "Frames kept encoded",
        "How many frames stay encoded after the model has looked at them. Re-running nearby "
        "frames (e.g. after a correction) skips the slow encoding step. Costs memory.",
    ),
    "stored_memory_frames": (
        "Extra memories kept",
        "Past-frame memories kept per cell beyond those in use, so that restarting a "
        "propagation near where it stopped starts from good context. Costs memory.",
    ),
}

#: MemorySettings fields shown as check boxes (the others are whole numbers).
MEMORY_BOOL_FIELDS = frozenset(
    {
        "use_object_pointers",
        "non_overlap",
        "multimask_first_click",
        "corrections_as_prompts",
        "offload_to_cpu",
    }
)

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
