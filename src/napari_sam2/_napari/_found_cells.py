"""The rule that decides which cells found by "Find all cells" become new objects.

:func:`keep_new_cells` is the only place the widget applies it: the many-cells part imports
it under that name, so the rule can be replaced by another function of the same signature in
one import line.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_OVERLAP", "keep_new_cells"]

#: A found cell that lies mostly (more than this fraction of its area) on labelled pixels is
#: an object that already exists: it is dropped.
MAX_OVERLAP = 0.5


def keep_new_cells(lab: np.ndarray, masks: list[np.ndarray], min_area: int) -> np.ndarray:
    """Provisional (H, W) uint32 labels 1..K of the candidate masks (best first) that are new.

    Args:
        lab: (H, W) integer labels of the frame (0 = background).
        masks: candidate (H, W) bool masks, best first.
        min_area: fewest pixels a kept candidate must own, in frame pixels.

    Returns:
        (H, W) uint32: a candidate lying mostly on labelled pixels of ``lab`` is dropped; the
        others keep the pixels that are background and not taken by a better candidate, if at
        least ``min_area`` of them, numbered 1..K in the order of ``masks``.
    """
    labelled = lab != 0
    taken = labelled.copy()
    out = np.zeros(lab.shape, np.uint32)
    k = 0
    for m in masks:
        area = np.count_nonzero(m)
        if area == 0 or np.count_nonzero(m & labelled) > MAX_OVERLAP * area:
            continue
        own = m & ~taken
        if np.count_nonzero(own) < min_area:
            continue
        k += 1
        out[own] = k
        taken |= own
    return out
