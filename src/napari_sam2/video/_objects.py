"""The per-object state of a video session: prompts, memory bank, pending prompt results,
tracked frames and zoom windows."""

from __future__ import annotations

from .memory_bank import MemoryBank, MemoryEntry
from .prompts import FramePrompts
from .windows import Window

__all__ = ["TrackedObject", "by_window"]


class TrackedObject:
    """One object (one label value) of a :class:`~napari_sam2.video.session.VideoSession`.

    Attributes:
        obj_id: the object id (>= 1; its label value).
        prompts: frame -> the object's prompts there.
        bank: the object's :class:`~napari_sam2.video.memory_bank.MemoryBank`.
        pending: frames with a prompt result whose memory is not encoded yet:
            frame -> (entry, whether it becomes a conditioning frame).
        tracked: frame -> produced while tracking backwards.
        side: automatic zoom: window side in frame pixels (None: the whole frame), decided on
            the first prompt (``sized`` then True); ``size_checked`` False while a size
            estimated from a click or a hint waits for its check against the first mask;
            ``side_fixed`` True when the side was given (``add_mask(window_side=...)``) and is
            not sized again from later boxes or masks.
        windows: frame -> the window (y0, x0, y1, x1) the object was segmented in there.
    """

    def __init__(self, obj_id: int, num_maskmem: int) -> None:
        self.obj_id = obj_id
        self.prompts: dict[int, FramePrompts] = {}
        self.bank = MemoryBank(num_maskmem)
        self.pending: dict[int, tuple[MemoryEntry, bool]] = {}
        self.tracked: dict[int, bool] = {}
        self.side: int | None = None
        self.sized = False
        self.size_checked = True
        self.side_fixed = False
        self.windows: dict[int, Window] = {}

    @property
    def prompted_frames(self) -> set[int]:
        """Frames whose result conditions the memory (committed or pending)."""
        return set(self.bank.cond) | {t for t, (_, c) in self.pending.items() if c}

    def set_window(self, frame: int, window: Window | None) -> None:
        """Record the window the object was segmented in on a frame (None: the whole frame)."""
        if window is None:
            self.windows.pop(frame, None)
        else:
            self.windows[frame] = window

    def forget_frame(self, frame: int) -> None:
        """Drop the prompts, results and memory of one frame."""
        self.prompts.pop(frame, None)
        self.pending.pop(frame, None)
        self.bank.clear_frame(frame)
        self.tracked.pop(frame, None)


def by_window(
    objs: list[TrackedObject], t: int
) -> dict[Window | None, list[TrackedObject]]:
    """Objects grouped by the window they have on frame t (None first), order kept."""
    groups: dict[Window | None, list[TrackedObject]] = {}
    for obj in objs:
        groups.setdefault(obj.windows.get(t), []).append(obj)
    return groups
