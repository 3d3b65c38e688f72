"""What SAM 2 remembers about each object, kept bounded.

:class:`~napari_sam2.video.memory_settings.MemorySettings` (a torch-free module) are the
user-facing "memory bank" settings (defaults equal Meta's video predictor). :class:`MemoryBank`
stores, per object, the memory of prompted frames (kept) and of tracked frames (only those
attention can still reach, plus a small bounded reserve), and selects what one frame attends to,
in the same order and with the same temporal slots as SAM 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .memory_settings import MemorySettings

__all__ = ["MemoryEntry", "MemoryBank", "MemorySettings", "MemorySelection"]


@dataclass
class MemoryEntry:
    """One frame's memory of one object.

    Attributes:
        features: (1, mem_dim, h, w) memory features (bfloat16, storage device), None until
            encoded.
        obj_ptr: (1, d) object pointer.
        mask_logits: (1, 1, S/4, S/4) low-resolution mask logits (after hole filling).
        object_score: (1, 1) presence logit.
        reverse: whether the frame was produced while tracking backwards.
    """

    features: torch.Tensor | None
    obj_ptr: torch.Tensor
    mask_logits: torch.Tensor
    object_score: torch.Tensor
    reverse: bool = False


@dataclass
class MemorySelection:
    """What one frame of one object attends to (see :meth:`MemoryBank.select`)."""

    spatial: list[tuple[int, MemoryEntry]]  # (t_pos, entry)
    pointers: list[tuple[int, torch.Tensor]]  # (relative position, (1, d) pointer)

    def signature(self) -> tuple:
        """Layout key: objects with equal signatures can be batched."""
        return (tuple(t for t, _ in self.spatial), tuple(p for p, _ in self.pointers))


class MemoryBank:
    """Memories of one object: prompted frames ("conditioning") and tracked frames.

    Args:
        num_maskmem: memory slots of the model (7 for official models).
    """

    def __init__(self, num_maskmem: int) -> None:
        self.num_maskmem = num_maskmem
        self.cond: dict[int, MemoryEntry] = {}
        self.tracked: dict[int, MemoryEntry] = {}

    def __len__(self) -> int:
        return len(self.cond) + len(self.tracked)

    def get(self, frame: int) -> MemoryEntry | None:
        """The entry of ``frame`` (prompted first), if any."""
        return self.cond.get(frame) or self.tracked.get(frame)

    def nbytes(self) -> int:
        """Bytes held by the stored tensors."""
        total = 0
        for e in (*self.cond.values(), *self.tracked.values()):
            for t in (e.features, e.obj_ptr, e.mask_logits, e.object_score):
                if t is not None:
                    total += t.numel() * t.element_size()
        return total

    def clear_frame(self, frame: int) -> None:
        """Forget everything about ``frame``."""
        self.cond.pop(frame, None)
        self.tracked.pop(frame, None)

    def select(
        self, frame: int, settings: MemorySettings, num_frames: int, reverse: bool
    ) -> MemorySelection:
        """Pick the memories attended on ``frame``, following SAM 2's rules.

        Prompted frames (up to ``max_prompted_frames``, nearest first, one before and one after
        always included) take slot 0; the previous frame and every ``memory_stride``-th earlier
        frame take slots ``num_maskmem-1`` down to 1; object pointers come from prompted frames
        in the past (in the direction of travel) and from the last ``max_object_pointers - 1``
        tracked frames.
        """
        cond = self.cond
        chosen, left_over = _closest_prompted(frame, cond, settings.max_prompted_frames)
        spatial: list[tuple[int, MemoryEntry]] = [(0, chosen[t]) for t in chosen]
        stride = settings.memory_stride
        n_recent = settings.num_memory_frames
        # slots 1..num_maskmem-1; the model's last n_recent slots are used
        for t_pos in range(self.num_maskmem - n_recent, self.num_maskmem):
            t_rel = self.num_maskmem - t_pos  # frames back from the current one
            if t_rel == 1:
                prev = frame + 1 if reverse else frame - 1
            elif not reverse:
                prev = ((frame - 2) // stride) * stride - (t_rel - 2) * stride
            else:
                prev = -(-(frame + 2) // stride) * stride + (t_rel - 2) * stride
            entry = self.tracked.get(prev) or left_over.get(prev)
            if entry is not None and entry.features is not None:
                spatial.append((t_pos, entry))
        pointers: list[tuple[int, torch.Tensor]] = []
        if settings.use_object_pointers and settings.max_object_pointers > 0:
            window = min(num_frames, settings.max_object_pointers)
            sign = -1 if reverse else 1
            for t, e in chosen.items():
                if (t >= frame) if reverse else (t <= frame):
                    pointers.append(((frame - t) * sign, e.obj_ptr))
            for diff in range(1, window):
                t = frame + diff if reverse else frame - diff
                if t < 0 or t >= num_frames:
                    break
                e = self.tracked.get(t) or left_over.get(t)
                if e is not None:
                    pointers.append((diff, e.obj_ptr))
        return MemorySelection(spatial, pointers)

    def prune(self, front: int, settings: MemorySettings, reverse: bool) -> None:
        """Drop tracked-frame memories no longer reachable from the propagation ``front``.

        Keeps what the next frames can attend to (the stride window and the pointer window
        behind the front) plus up to ``stored_memory_frames`` others, nearest to the front.
        """
        reach = max(
            (settings.num_memory_frames + 1) * settings.memory_stride + 1,
            settings.max_object_pointers,
        )
        needed, others = [], []
        for t in self.tracked:
            behind = (t - front) if reverse else (front - t)
            (needed if 0 <= behind <= reach else others).append(t)
        if len(others) <= settings.stored_memory_frames:
            return
        others.sort(key=lambda t: abs(t - front))
        for t in others[settings.stored_memory_frames :]:
            del self.tracked[t]


def _closest_prompted(
    frame: int, cond: dict[int, MemoryEntry], limit: int | None
) -> tuple[dict[int, MemoryEntry], dict[int, MemoryEntry]]:
    """Split prompted frames into the attended ones and the rest (SAM 2's selection rule)."""
    if limit is None or len(cond) <= limit:
        return dict(cond), {}
    limit = max(limit, 1)
    picked: dict[int, MemoryEntry] = {}
    before = max((t for t in cond if t < frame), default=None)
    after = min((t for t in cond if t >= frame), default=None)
    for t in (before, after):
        if t is not None and len(picked) < max(limit, 2):
            picked[t] = cond[t]
    rest = sorted((t for t in cond if t not in picked), key=lambda t: abs(t - frame))
    for t in rest[: max(limit - len(picked), 0)]:
        picked[t] = cond[t]
    return picked, {t: e for t, e in cond.items() if t not in picked}
