"""The user-facing memory-bank settings, as one dataclass (no torch: the CLI and the widget
build their options from it without loading the model code).

Every field carries its documentation in its metadata, in one place:

- ``doc``: what the setting does, for the Python API and the command line (``--help``);
- ``label`` and ``tooltip``: the words the napari widget shows.

:func:`setting_fields` lists them in display order; the class docstring's *Attributes* section
is generated from ``doc``.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import Any

__all__ = ["MemorySettings", "setting_fields"]


def _setting(default: Any, doc: str, label: str, tooltip: str) -> Any:
    return field(default=default, metadata={"doc": doc, "label": label, "tooltip": tooltip})


@dataclass
class MemorySettings:
    """How much of the past SAM 2 attends to while tracking (defaults = Meta's predictor)."""

    num_memory_frames: int = _setting(
        6,
        "recent (unprompted) frames attended besides the prompted ones, 0..6 for official models "
        "(their temporal encoding has 7 slots: 1 prompted + 6). With 0, tracked frames' memories "
        "are never attended, so they are not computed (the memory encoder runs on prompted "
        "frames only: faster).",
        "Frames remembered",
        "How many past frames the model remembers while it follows a cell, besides the frames "
        "you clicked on. More frames: steadier tracking of slowly changing cells; fewer: "
        "quicker adaptation when a cell changes shape fast (e.g. during division). 0 is the "
        "fastest (only the clicked frames are remembered), at some cost on fast-moving cells.",
    )
    memory_stride: int = _setting(
        1,
        "use every r-th past frame for all but the previous one (long, slow movements: r > 1 "
        "reaches further back with the same cost).",
        "Remember every n-th frame",
        "Use only every n-th past frame (the previous frame is always used). Larger values "
        "look further back in time at the same cost: helps with slow movements or cells that "
        "are briefly hidden.",
    )
    max_prompted_frames: int | None = _setting(
        None,
        "prompted frames attended, nearest in time first (None = all).",
        "Clicked frames used",
        "How many of the frames you clicked on (or corrected) the model looks at, nearest in "
        "time first. 'all' uses every one; a small number keeps long movies fast.",
    )
    max_object_pointers: int = _setting(
        16,
        "object pointers attended (one per recent frame, <= 16).",
        "Identity cues",
        "How many recent frames contribute a compact 'what this cell looks like' summary. "
        "Higher values help to keep the same cell among similar neighbours.",
    )
    use_object_pointers: bool = _setting(
        True,
        "attend to object pointers at all.",
        "Use identity cues",
        "Let the model use the compact per-frame summaries of each cell (recommended).",
    )
    non_overlap: bool = _setting(
        False,
        "each pixel goes to the object with the highest score.",
        "No overlaps between cells",
        "Each pixel goes to one cell only (the one the model is most sure about). Turn on for "
        "densely packed cells whose masks bleed into each other.",
    )
    fill_holes_area: int = _setting(
        8,
        "fill holes up to this many pixels (in the model's 1/4-resolution mask) inside masks; "
        "0 disables.",
        "Fill holes up to (px)",
        "Fill small holes inside masks (size measured on the model's coarse 1/4-resolution "
        "mask). 0 keeps holes, e.g. for cells with vacuoles.",
    )
    multimask_first_click: bool = _setting(
        True,
        "one click gives 3 candidate masks; keep the best (SAM 2's default).",
        "Best of 3 on first click",
        "With a single click the model proposes three candidate outlines (part, whole, group) "
        "and keeps the one it trusts most.",
    )
    corrections_as_prompts: bool = _setting(
        True,
        "a click on an already tracked frame becomes a prompted frame that later propagations "
        "keep (Meta's ``add_all_frames_to_correct_as_cond``). When False, a correction is only "
        "a temporary memory that the next propagation over that frame replaces — Meta's "
        "default, kept for parity tests.",
        "Keep corrections",
        "A click on an already tracked frame is kept as a reference frame for later "
        "propagations (recommended). Off: a correction only lasts until the next propagation "
        "passes that frame.",
    )
    offload_to_cpu: bool = _setting(
        False,
        "keep the memory bank in host memory while computing on a GPU.",
        "Keep memory in RAM",
        "Store what the model remembers in computer memory instead of on the graphics card. "
        "Slower, but lets long movies with many cells fit on small GPUs.",
    )
    feature_cache_frames: int = _setting(
        16,
        "frame encodings kept (LRU); re-propagating over cached frames skips the image encoder.",
        "Frames kept encoded",
        "How many frames stay encoded after the model has looked at them. Re-running nearby "
        "frames (e.g. after a correction) skips the slow encoding step. Costs memory.",
    )
    stored_memory_frames: int = _setting(
        32,
        "tracked-frame memories kept per object beyond the ones attention needs right now "
        "(nearest to the propagation front first), so that restarting a propagation nearby "
        "finds its context. Bounds memory on long movies.",
        "Extra memories kept",
        "Past-frame memories kept per cell beyond those in use, so that restarting a "
        "propagation near where it stopped starts from good context. Costs memory.",
    )

    def validate(self, num_maskmem: int = 7, max_obj_ptrs: int = 16) -> None:
        """Check ranges against a model's capacity; raise ``ValueError`` naming the field.

        Args:
            num_maskmem: memory slots of the model (7 for official models).
            max_obj_ptrs: object pointers the model can attend to (16 for official models).
        """
        if not 0 <= self.num_memory_frames <= num_maskmem - 1:
            raise ValueError(
                f"num_memory_frames={self.num_memory_frames} is out of range: this model has "
                f"{num_maskmem} memory slots, so use 0..{num_maskmem - 1}"
            )
        if self.memory_stride < 1:
            raise ValueError(f"memory_stride must be >= 1, got {self.memory_stride}")
        if self.max_prompted_frames is not None and self.max_prompted_frames < 1:
            raise ValueError("max_prompted_frames must be None (all) or >= 1")
        if not 0 <= self.max_object_pointers <= max_obj_ptrs:
            raise ValueError(
                f"max_object_pointers must be in 0..{max_obj_ptrs}, got {self.max_object_pointers}"
            )
        if self.fill_holes_area < 0:
            raise ValueError("fill_holes_area must be >= 0 pixels")
        if self.feature_cache_frames < 1:
            raise ValueError("feature_cache_frames must be >= 1")
        if self.stored_memory_frames < 0:
            raise ValueError("stored_memory_frames must be >= 0")

    def replace(self, **changes: Any) -> MemorySettings:
        """Copy with some fields changed (unknown names raise ``TypeError``)."""
        known = {f.name for f in fields(self)}
        bad = set(changes) - known
        if bad:
            raise TypeError(f"unknown memory setting(s) {sorted(bad)}; known: {sorted(known)}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return MemorySettings(**values)


def setting_fields() -> tuple[Field, ...]:
    """The fields of :class:`MemorySettings` in display order.

    Returns:
        Dataclass fields; each has ``.name``, ``.default`` and ``.metadata`` with the keys
        ``doc`` (API / CLI help), ``label`` and ``tooltip`` (napari widget).
    """
    return fields(MemorySettings)


def _attributes_section() -> str:
    import textwrap

    lines = ["", "", "Attributes:"]
    for f in setting_fields():
        text = f"{f.name}: {f.metadata['doc']}"
        lines += textwrap.wrap(text, width=92, initial_indent="    ", subsequent_indent="        ")
    return "\n".join(lines) + "\n"


MemorySettings.__doc__ = (MemorySettings.__doc__ or "") + _attributes_section()
