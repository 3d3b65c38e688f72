"""The (T, H, W) label volume of a :class:`~napari_sam2.video.session.VideoSession`: created
lazily, widened to uint32 past 65,535 ids, optionally an external array (a napari Labels
layer's data), and written so that other objects and manual edits are never overwritten.

Long movies keep it on disk (:mod:`._disk_volume`): above
:data:`~._disk_volume.DISK_THRESHOLD_BYTES` it is a memory-mapped label TIFF, whose written
pages are handed back to the system as frames are written.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ._disk_volume import PageBudget, new_label_volume, widened
from ._sparse import MaskCrop, composite

__all__ = ["LabelVolumeMixin"]


class LabelVolumeMixin:
    """Label-volume part of :class:`~napari_sam2.video.session.VideoSession` (uses its
    ``keep_labels``, ``num_frames``, ``frame_shape``, ``_objects`` and ``_labels``)."""

    def labels(self, dtype=None) -> np.ndarray:
        """The (T, H, W) label volume (uint16, or uint32 once ids exceed 65,535).

        Returns the session's own array (results keep streaming into it); copy it to keep a
        snapshot.
        """
        if not self.keep_labels:
            raise RuntimeError("session made with keep_labels=False: it keeps no labels")
        vol = self._label_volume()
        return vol if dtype is None or vol.dtype == dtype else vol.astype(dtype)

    def set_label_volume(self, volume: np.ndarray) -> None:
        """Write results into ``volume`` (T, H, W) (e.g. a napari Labels layer's data) from now
        on; its existing values (manual edits) are kept."""
        expected = (self.num_frames, *self.frame_shape)
        if volume.shape != expected:
            raise ValueError(
                f"label volume has shape {volume.shape}, expected {expected} (T, H, W)"
            )
        if volume.dtype.kind not in "iu":
            raise ValueError(f"label volume must have an integer dtype, got {volume.dtype}")
        self._labels = volume

    def _label_volume(self) -> np.ndarray:
        if self._labels is None:
            dtype = np.uint32 if max(self._objects, default=0) > 65535 else np.uint16
            # in memory: np.zeros is backed by lazily mapped pages (untouched frames are free);
            # a memory-mapped TIFF above DISK_THRESHOLD_BYTES
            self._labels = new_label_volume((self.num_frames, *self.frame_shape), dtype)
        elif max(self._objects, default=0) > np.iinfo(self._labels.dtype).max:
            self._labels = widened(self._labels)
        return self._labels

    def _write_labels(self, t: int, ids: list[int], crops: Iterable[MaskCrop | None]):
        """Write the masks of ``ids`` (their :class:`~._sparse.MaskCrop` logits, one per id,
        in order) into frame t of the label volume.

        Only pixels that are background or already belong to one of ``ids`` change, so other
        objects and manual edits of other labels are kept. Where objects overlap, the highest
        logit wins (the first object on ties).

        Returns:
            :func:`~._sparse.composite`'s (winner map, per-object (box, mask) or None).
        """
        winner, masks = composite(crops, self.frame_shape)
        if not self.keep_labels:
            return winner, masks
        vol = self._label_volume()
        lab = vol[t]
        arr = np.asarray(ids, dtype=vol.dtype)
        free = np.isin(lab, arr) | (lab == 0)
        new = np.where(winner >= 0, arr[np.clip(winner, 0, None)], 0).astype(vol.dtype)
        lab[free] = new[free]
        budget = self.__dict__.setdefault("_page_budget", PageBudget())
        budget.note(vol, lab.nbytes)
        return winner, masks

