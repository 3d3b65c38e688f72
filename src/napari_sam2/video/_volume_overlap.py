"""Touching 3-D cells through time: their overlapping masks are shared out between them.

In 3-D + time (:class:`~napari_sam2.video.volume_time.VolumeTimeSession`) every object is
followed by its own sessions, so the masks of touching cells overlap (the model's masks of
small nuclei are 1.6-2 times their area) and nothing makes them compete, as the objects of a
2-D frame compete for pixels by their logits. Two rules share the overlaps out:

* :func:`paint_deepest`: where the masks filled along z overlap on a slice, a pixel goes to the
  object whose own mask it lies deepest in (largest distance to that mask's edge), the
  stand-in for the highest logit. A mask that spans two cells has its deepest pixels between
  them, so the cell under it goes to the mask centred on that cell. In 3-D + time the object
  that held the pixel at the timepoint before counts :data:`HELD_BONUS` pixels deeper: the
  masks of touching nuclei are about as deep over their shared part, and the cell that was
  there keeps it unless the other mask is clearly centred on it
  (:mod:`napari_sam2.video._volume_identity`).
* :func:`without_neighbours`: the mask tracked onto an object's central slice at the next
  timepoint loses the pixels another object held there on the timepoint before, so that the
  fill along z does not start on the neighbour.

Without them, on the validation movies a nucleus' label slid onto its touching neighbour
within 3-4 timepoints (docs/3d_measurements.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["HELD_BONUS", "paint_deepest", "without_neighbours"]

#: 3-D + time: depth (pixels) added for the object that held a pixel at the timepoint before
#: (:func:`paint_deepest` with ``held``)
HELD_BONUS = 3.0


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, x0, y1, x1) bounding rectangle of a (Y, X) mask, end exclusive (None: empty)."""
    ys, xs = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not ys.size:
        return None
    return int(ys[0]), int(xs[0]), int(ys[-1]) + 1, int(xs[-1]) + 1


def paint_deepest(
    lab: np.ndarray,
    objects: Sequence[tuple[int, np.ndarray]],
    free: np.ndarray,
    held: np.ndarray | None = None,
) -> None:
    """Write overlapping masks into a label slice, each pixel to its deepest object, in place.

    The depth of a pixel is its distance (pixels) to the edge of the object's whole mask, on
    the mask's bounding rectangle only (cost: the objects' own areas, not the slice's per
    object).

    Args:
        lab: (Y, X) integer labels of one slice (modified).
        objects: (obj_id, (Y, X) bool mask) of the objects on the slice.
        free: (Y, X) bool pixels that may be written (others belong to other labels).
        held: (Y, X) labels of the slice at the timepoint before (3-D + time), or None:
            an object's depth counts :data:`HELD_BONUS` more on the pixels it held there.

    Ties in depth go to the object listed first.
    """
    best = np.zeros(lab.shape, np.float32)
    owner = np.zeros(lab.shape, lab.dtype)
    for obj_id, mask in objects:
        m = np.asarray(mask, bool)
        box = _box(m)
        if box is None:
            continue
        y0, x0, y1, x1 = box
        # padded: the rectangle's border is not the mask's edge
        depth = ndimage.distance_transform_edt(np.pad(m[y0:y1, x0:x1], 1))[1:-1, 1:-1]
        if held is not None:  # on the mask's own pixels only (outside, the depth stays 0)
            depth = depth + HELD_BONUS * ((held[y0:y1, x0:x1] == obj_id) & (depth > 0))
        win = depth > best[y0:y1, x0:x1]
        best[y0:y1, x0:x1][win] = depth[win]
        owner[y0:y1, x0:x1][win] = obj_id
    write = (owner > 0) & free
    lab[write] = owner[write]


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
