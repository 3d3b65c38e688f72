"""Divisions of 3-D cells followed through time (T, Z, Y, X).

A cell followed by :class:`~napari_sam2.video.volume_time.VolumeTimeSession` keeps one id while
its 3-D mask stays one piece. When the mask at a timepoint falls apart into two 3-D
(6-connected) pieces that are each at least :data:`MIN_FRACTION` of the cell's volume at the
timepoint before and at least :data:`MIN_VOXELS` voxels, the cell has divided: its track ends
on the timepoint before, and the two largest pieces become two daughters with new ids, linked in
the session's ``lineage`` as ``{daughter: mother}`` (the rule of 2-D movies,
:mod:`napari_sam2.video.lineage`, in 3-D).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["MIN_FRACTION", "MIN_VOXELS", "daughter_masks"]

#: a piece smaller than this fraction of the mother's volume (on the timepoint before) is a
#: fragment, not a daughter
MIN_FRACTION = 0.25
#: ... or smaller than this many voxels
MIN_VOXELS = 20


def daughter_masks(
    mask: np.ndarray,
    mother_voxels: int,
    min_fraction: float = MIN_FRACTION,
    min_voxels: int = MIN_VOXELS,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The two daughters of a 3-D mask that fell apart, or None (no division).

    Args:
        mask: (Z, Y, X) bool mask of the cell at one timepoint.
        mother_voxels: the cell's volume in voxels at the timepoint before.
        min_fraction: smallest daughter, as a fraction of ``mother_voxels``.
        min_voxels: smallest daughter in voxels.

    Returns:
        The two largest 6-connected pieces, larger first, as (Z, Y, X) bool masks, when both
        are large enough; else None.
    """
    pieces, n = ndimage.label(mask)
    if n < 2:
        return None
    sizes = np.bincount(pieces.ravel(), minlength=n + 1)[1:]
    first, second = np.argsort(sizes)[::-1][:2]
    if sizes[second] < max(min_voxels, min_fraction * mother_voxels):
        return None
    return pieces == first + 1, pieces == second + 1
