"""Touching 3-D cells through time: their overlapping masks are shared out between them.

In 3-D + time (:class:`~napari_sam2.video.volume_time.VolumeTimeSession`) every object is
followed by its own sessions, so the masks of touching cells overlap (the model's masks of
small nuclei are 1.6-2 times their area) and nothing makes them compete, as the objects of a
2-D frame compete for pixels by their logits. Two rules share the overlaps out:

* :func:`paint_deepest`: where the masks filled along z overlap on a slice, a pixel goes to the
  object whose own mask it lies deepest in (largest distance to that mask's edge), the
  stand-in for the highest logit. A mask that spans two cells has its deepest pixels between
  them, so the cell under it goes to the mask centred on that cell.
* :func:`without_neighbours`: the mask tracked onto an object's central slice at the next
  timepoint loses the pixels another object held there on the timepoint before, so that the
  fill along z does not start on the neighbour.

Without them, on the validation movies a nucleus' label slid onto its touching neighbour
within 3-4 timepoints (docs/3d.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["paint_deepest", "without_neighbours"]


def _depth(mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Distance (pixels) of each pixel of ``mask`` inside ``box`` to the mask's edge."""
    y0, x0, y1, x1 = box
    crop = np.pad(mask[y0:y1, x0:x1], 1)  # the frame's border is not the mask's edge: pad
    return ndimage.distance_transform_edt(crop)[1:-1, 1:-1]


def paint_deepest(
    lab: np.ndarray, objects: Sequence[tuple[int, np.ndarray]], free: np.ndarray
) -> None:
    """Write overlapping masks into a label slice, each pixel to its deepest object, in place.

    Args:
        lab: (Y, X) integer labels of one slice (modified).
        objects: (obj_id, (Y, X) bool mask) of the objects on the slice.
        free: (Y, X) bool pixels that may be written (others belong to other labels).

    Ties in depth go to the object listed first.
    """
    masks = [(int(o), np.asarray(m, bool)) for o, m in objects]
    masks = [(o, m) for o, m in masks if (m & free).any()]
    if not masks:
        return
    if len(masks) == 1:
        lab[masks[0][1] & free] = masks[0][0]
        return
    union = np.zeros(lab.shape, bool)
    for _, m in masks:
        union |= m
    ys, xs = np.flatnonzero(union.any(1)), np.flatnonzero(union.any(0))
    box = (int(ys[0]), int(xs[0]), int(ys[-1]) + 1, int(xs[-1]) + 1)
    best = np.zeros((box[2] - box[0], box[3] - box[1]), np.float32)
    owner = np.zeros(best.shape, lab.dtype)
    for o, m in masks:
        d = _depth(m, box)
        win = d > best
        best[win] = d[win]
        owner[win] = o
    y0, x0, y1, x1 = box
    sub = lab[y0:y1, x0:x1]
    write = (owner > 0) & free[y0:y1, x0:x1]
    sub[write] = owner[write]


def without_neighbours(mask: np.ndarray, previous: np.ndarray, obj_id: int) -> np.ndarray:
    """A tracked mask less the pixels other objects held on the timepoint before.

    The mask an object's time session tracks onto a slice is the model's own, often wider than
    the cell and lying over its touching neighbours; started from it, the fill along z hands
    the neighbour's voxels to the object, and its next central slice drifts onto the neighbour.
    The pixels another object held on the same slice at the timepoint before are taken out
    (cells move a few pixels per timepoint), unless nothing would be left.

    Args:
        mask: (Y, X) bool mask tracked onto slice z at timepoint t.
        previous: (Y, X) labels of slice z at the timepoint before (t - 1 forward, t + 1
            backward).
        obj_id: the object's id.

    Returns:
        (Y, X) bool mask (``mask`` itself when nothing is taken out or nothing would be left).
    """
    taken = (previous > 0) & (previous != obj_id)
    kept = mask & ~taken
    return kept if kept.any() and not np.array_equal(kept, mask) else mask
