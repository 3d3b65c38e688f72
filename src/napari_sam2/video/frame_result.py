"""What a propagated frame gives back: each object's mask as its bounding rectangle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._sparse import crop_to_box

__all__ = ["FrameResult"]


@dataclass(init=False, repr=False, eq=False)
class FrameResult:
    """Masks of the propagated objects on one frame.

    Each mask is kept as its bounding rectangle (``boxes``, ``crops``), so that hundreds of
    cells on large frames cost their own areas; :attr:`masks` and :meth:`mask` give frame-size
    arrays. Build one from frame-size masks, ``FrameResult(frame, obj_ids, masks, scores)``,
    or from crops, ``FrameResult(frame, obj_ids, scores=..., boxes=..., crops=...,
    shape=...)``.

    Attributes:
        frame: frame index t.
        obj_ids: ids of the N objects, in the order of the masks.
        scores: (N,) object presence probability (sigmoid of the object-score logit).
        boxes: (N, 4) int (y0, x0, y1, x1) rectangle of each mask in frame pixels (end
            exclusive; all zero for an empty mask).
        crops: N (y1 - y0, x1 - x0) bool arrays, each mask inside its rectangle.
        shape: (H, W) of the frame.
    """

    frame: int
    obj_ids: list[int]
    scores: np.ndarray
    boxes: np.ndarray
    crops: list[np.ndarray]
    shape: tuple[int, int]

    def __init__(
        self,
        frame: int,
        obj_ids: Sequence[int],
        masks: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        *,
        boxes: np.ndarray | None = None,
        crops: list[np.ndarray] | None = None,
        shape: tuple[int, int] | None = None,
    ) -> None:
        self.frame = int(frame)
        self.obj_ids = [int(i) for i in obj_ids]
        n = len(self.obj_ids)
        self.scores = np.ones(n, np.float32) if scores is None else np.asarray(scores, np.float32)
        if masks is not None:
            masks = np.asarray(masks, dtype=bool)
            pairs = [crop_to_box(m) for m in masks]
            boxes, crops = [box for box, _ in pairs], [crop for _, crop in pairs]
            shape = masks.shape[1:]
        elif crops is None or boxes is None or shape is None:
            raise ValueError("give frame-size masks, or boxes, crops and shape")
        if len(crops) != n or len(boxes) != n or len(self.scores) != n:
            raise ValueError(f"{n} object ids need {n} masks and {n} scores")
        self.boxes = np.asarray(boxes, np.int64).reshape(n, 4)
        self.crops = list(crops)
        self.shape = (int(shape[0]), int(shape[1]))
        self._masks: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"FrameResult(frame={self.frame}, obj_ids={self.obj_ids}, shape={self.shape})"

    def mask(self, k: int) -> np.ndarray:
        """(H, W) bool mask of the k-th object (position in :attr:`obj_ids`)."""
        out = np.zeros(self.shape, bool)
        y0, x0, y1, x1 = self.boxes[k]
        out[y0:y1, x0:x1] = self.crops[k]
        return out

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool masks at the original frame size (False outside the session's ROI);
        built on first use (N frame-size arrays: prefer :meth:`mask` or the crops for many
        objects on large frames)."""
        if self._masks is None:
            self._masks = (
                np.stack([self.mask(k) for k in range(len(self.obj_ids))])
                if self.obj_ids
                else np.zeros((0, *self.shape), bool)
            )
        return self._masks
