"""The (T, H, W) label volume a :class:`~napari_sam2.video.session.VideoSession` writes its
results into: created lazily, widened to uint32 past 65,535 ids, optionally an external array
(a napari Labels layer's data), and written so that other objects and manual edits are never
overwritten.

Long movies keep it on disk (:mod:`._disk_volume`): above
:data:`~._disk_volume.DISK_THRESHOLD_BYTES` it is a memory-mapped label TIFF, whose written
pages are handed back to the system as frames are written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from ..io.label_checks import check_labels
from ._disk_volume import PageBudget, new_label_volume, widened
from ._sparse import MaskCrop, composite

__all__ = ["LabelVolume"]


class LabelVolume:
    """The label volume of a session.

    Args:
        shape: (T, H, W) of the movie.
        keep: keep a volume at all; with False nothing is stored and :meth:`write` only
            composites the masks.
        max_id: returns the largest object id in use (it picks uint16 or uint32).
    """

    def __init__(self, shape: tuple[int, int, int], keep: bool, max_id: Callable[[], int]) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.keep = bool(keep)
        self._max_id = max_id
        self._array: np.ndarray | None = None
        self._budget = PageBudget()

    @property
    def created(self) -> bool:
        """Whether the volume exists yet (it is made on the first write or read)."""
        return self._array is not None

    def array(self) -> np.ndarray:
        """The (T, H, W) volume (uint16, or uint32 once ids exceed 65,535), made on first use.

        Raises:
            RuntimeError: the volume was made with ``keep=False``.
        """
        if not self.keep:
            raise RuntimeError("session made with keep_labels=False: it keeps no labels")
        top = self._max_id()
        if self._array is None:
            dtype = np.uint32 if top > 65535 else np.uint16
            # in memory: np.zeros is backed by lazily mapped pages (untouched frames are free);
            # a memory-mapped TIFF above DISK_THRESHOLD_BYTES
            self._array = new_label_volume(self.shape, dtype)
        elif top > np.iinfo(self._array.dtype).max:
            self._array = widened(self._array)
        return self._array

    def use(self, volume: np.ndarray) -> None:
        """Write into ``volume`` (T, H, W) from now on (its values, manual edits, are kept).

        Raises:
            ValueError: not an integer array of the movie's (T, H, W) shape.
        """
        check_labels(
            volume,
            shape=self.shape,
            name="label volume",
            shape_of="the movie (T, H, W)",
            check_values=False,
        )
        self._array = volume

    def write(self, t: int, ids: list[int], crops: Iterable[MaskCrop | None]):
        """Write the masks of ``ids`` (their :class:`~._sparse.MaskCrop` logits, one per id,
        in order) into frame t.

        Only pixels that are background or already belong to one of ``ids`` change, so other
        objects and manual edits of other labels are kept. Where objects overlap, the highest
        logit wins (the first object on ties).

        Returns:
            :func:`~._sparse.composite`'s (winner map, per-object (box, mask) or None).
        """
        winner, masks = composite(crops, self.shape[1:])
        if not self.keep:
            return winner, masks
        vol = self.array()
        lab = vol[t]
        arr = np.asarray(ids, dtype=vol.dtype)
        free = np.isin(lab, arr) | (lab == 0)
        new = np.where(winner >= 0, arr[np.clip(winner, 0, None)], 0).astype(vol.dtype)
        lab[free] = new[free]
        self._budget.note(vol, lab.nbytes)
        return winner, masks

    def erase(self, obj_id: int, frames: Iterable[int] | None = None) -> None:
        """Set an object's pixels to 0 on some frames (None: every frame); a volume not made
        yet stays unmade."""
        if self._array is None:
            return
        for t in range(self.shape[0]) if frames is None else frames:
            lab = self._array[t]
            hit = lab == obj_id
            if hit.any():
                lab[hit] = 0

    def clear(self) -> None:
        """Set every pixel to 0 (if the volume exists)."""
        if self._array is not None:
            self._array[...] = 0
