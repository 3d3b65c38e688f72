"""What SAM 2 remembers about each object, kept bounded.

:class:`MemorySettings` are the user-facing "memory bank" settings (defaults equal Meta's video
predictor). :class:`MemoryBank` stores, per object, the memory of prompted frames (kept) and of
tracked frames (only those attention can still reach, plus a small bounded reserve), and selects
what one frame attends to, in the same order and with the same temporal slots as SAM 2.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

__all__ = ["MemoryEntry", "MemoryBank", "MemorySettings", "MemorySelection"]


@dataclass
class MemorySettings:
    """How much of the past SAM 2 attends to while tracking (defaults = Meta's predictor).

    Attributes:
        num_memory_frames: recent (unprompted) frames attended besides the prompted ones,
            0..6 for official models (their temporal encoding has 7 slots: 1 prompted + 6).
            With 0, tracked frames' memories are never attended, so they are not computed
            (the memory encoder runs on prompted frames only: faster).
        memory_stride: use every r-th past frame for all but the previous one (long, slow
            movements: r > 1 reaches further back with the same cost).
        max_prompted_frames: prompted frames attended, nearest in time first (None = all).
        max_object_pointers: object pointers attended (one per recent frame, <= 16).
        use_object_pointers: attend to object pointers at all.
        non_overlap: each pixel goes to the object with the highest score.
        fill_holes_area: fill holes up to this many pixels (in the model's 1/4-resolution mask)
            inside masks; 0 disables.
        multimask_first_click: one click gives 3 candidate masks; keep the best (SAM 2's default).
        corrections_as_prompts: a click on an already tracked frame becomes a prompted frame that
            later propagations keep (Meta's ``add_all_frames_to_correct_as_cond``). When False,
            a correction is only a temporary memory that the next propagation over that frame
            replaces — Meta's default, kept for parity tests.
        offload_to_cpu: keep the memory bank in host memory while computing on a GPU.
        feature_cache_frames: frame encodings kept (LRU); re-propagating over cached frames
            skips the image encoder.
        stored_memory_frames: tracked-frame memories kept per object beyond the ones attention
            needs right now (nearest to the propagation front first), so that restarting a
            propagation nearby finds its context. Bounds memory on long movies.
    """

    num_memory_frames: int = 6
    memory_stride: int = 1
    max_prompted_frames: int | None = None
    max_object_pointers: int = 16
    use_object_pointers: bool = True
    non_overlap: bool = False
    fill_holes_area: int = 8
    multimask_first_click: bool = True
    corrections_as_prompts: bool = True
    offload_to_cpu: bool = False
    feature_cache_frames: int = 16
    stored_memory_frames: int = 32

    def validate(self, num_maskmem: int = 7, max_obj_ptrs: int = 16) -> None:
        """Check ranges against a model's capacity; raise ``ValueError`` naming the field."""
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

    def replace(self, **changes) -> MemorySettings:
        """Copy with some fields changed (unknown names raise ``TypeError``)."""
        known = {f.name for f in fields(self)}
        bad = set(changes) - known
        if bad:
            raise TypeError(f"unknown memory setting(s) {sorted(bad)}; known: {sorted(known)}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return MemorySettings(**values)


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
