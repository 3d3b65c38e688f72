"""The one rule for keeping cells found automatically on a frame.

Automatic cell finding (:meth:`~napari_sam2.video.session.VideoSession.find_objects`) returns
candidate masks, best first. Before they become objects they are compared with what the frame
already holds (labelled pixels: prompted objects, seed labels, labels painted by hand) and with
each other, by :func:`new_cell_labels`:

* a candidate with more than ``max_taken`` (half) of its area on pixels already taken (labelled,
  or kept for a better candidate) is the same cell again and is dropped;
* the others keep only their free pixels, and are dropped when fewer than ``min_area`` remain.

Every place that adds found cells as objects calls this function, so a cell is kept or dropped
the same way in scripts, on the command line and in the napari widget.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["MAX_TAKEN", "new_cell_labels"]

#: A candidate with more than this fraction of its area already taken is dropped.
MAX_TAKEN = 0.5


def new_cell_labels(
    labelled: np.ndarray,
    masks: Iterable[np.ndarray],
    min_area: int = 16,
    max_taken: float = MAX_TAKEN,
) -> np.ndarray:
    """Provisional labels 1..K of the candidate masks that are new cells.

    Args:
        labelled: (H, W) labels (or a bool mask) of the frame; non-zero pixels are taken.
        masks: candidate (H, W) bool masks, best first (e.g. by predicted IoU).
        min_area: fewest free pixels, in frame pixels, a kept candidate must have.
        max_taken: largest fraction of a candidate's area that may already be taken.

    Returns:
        (H, W) uint32 labels: 0 = not a new cell, k = the k-th kept candidate (in the order
        given), holding only its pixels that were free (not labelled, not in a better
        candidate).

    Raises:
        ValueError: a mask whose shape differs from ``labelled``, or ``max_taken`` outside
            [0, 1].
    """
    if not 0.0 <= max_taken <= 1.0:
        raise ValueError(f"max_taken must be within [0, 1], got {max_taken}")
    taken = np.asarray(labelled) != 0
    out = np.zeros(taken.shape, np.uint32)
    k = 0
    for m in masks:
        m = np.asarray(m, bool)
        if m.shape != taken.shape:
            raise ValueError(
                f"a candidate mask is {m.shape[0]} x {m.shape[1]} px but the frame is "
                f"{taken.shape[0]} x {taken.shape[1]} px"
            )
        area = int(np.count_nonzero(m))
        if area == 0:
            continue
        free = m & ~taken
        n_free = int(np.count_nonzero(free))
        if area - n_free > max_taken * area or n_free < min_area:
            continue
        k += 1
        out[free] = k
        taken |= free
    return out
