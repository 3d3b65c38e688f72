"""3-D cells through time keep their identity: the timepoint before decides between neighbours.

In 3-D + time (:class:`~napari_sam2.video.volume_time.VolumeTimeSession`) each object's 3-D
mask at timepoint t is filled along z from its central slice, by its own sessions. Nuclei touch
and lie above one another, and the model's mask of one does not stop at its end along z or at
its side: it goes on into the nucleus above, below or beside it, which is bright too, so
neither the z guard (:func:`~napari_sam2.video.volumes.end_along_z`) nor the fit to the image
(:mod:`._volume_fit`) removes it. On the validation movies (seeds 2000-2003, shipped weights)
this is how labels moved: the intruding mask won the neighbour's voxels on a slice (about as
deep there as the neighbour's own mask), or the share-rise neighbour rule of the z guard ended
the *neighbour's* fill because the intruder's mask lay on it; the neighbour kept a sliver, its
widest slice moved, and from the next timepoint on its label followed the wrong cell or none.

The 2-D tracker sees one slice; the labels of the timepoint before hold every object's 3-D mask,
and cells move a few voxels per timepoint. Five rules use them, each in one place:

* sharing overlaps (``propagate_along_z(..., previous=...)``): where the masks overlap on a
  slice, the object that held a pixel at the timepoint before counts
  :data:`~._volume_overlap.HELD_BONUS` pixels deeper in
  :func:`~._volume_overlap.paint_deepest`, and the share-rise neighbour rule does not end
  anyone (it ended the cell intruded upon);
* ending on a neighbour's voxels (the neighbour rule of the z guard in 3-D + time): an
  object's fill ends on the first slice, walking away from its start slice, where more than
  :data:`MAX_HELD_SHARE` of its mask lies on voxels other objects held at the timepoint before
  (:func:`held_by_others`). Without it the fills of two nuclei stacked along z each went on
  through the other's slices, and the deeper-mask rule moved the shared voxels a little from
  one to the other at every timepoint (validation seed 2003: nucleus 2's IoU 0.79 at t = 0,
  0.30 at t = 9, then its label lost);
* a **steal** (:func:`give_back_stolen`, after the fill): an object covers less than
  :data:`MIN_KEPT` of its own voxels of the timepoint before, and other objects now hold at
  least :data:`MIN_TAKEN` of them: the voxels they hold that were the object's go back to it
  (the cell has moved by a few voxels since: that is the error left). A cell that moved keeps
  most of its voxels; a mask that lost its over-reach to a neighbour keeps its core; neither is
  touched;
* the objects prompted on one timepoint have no timepoint before: they are filled together
  by the z-stack's prompt rules (an object ends where it runs onto a cell prompted on a nearer
  slice), and the central slice of a prompted timepoint is the slice clicked
  (:meth:`~napari_sam2.video.volume_time.VolumeTimeSession.add_points`), not the widest slice
  of its fill, which may lie on a neighbour the fill went on into;
* after the steals and the division search, the voxels of every two touching labels are
  shared out again between their cells by the cells' centres and radii
  (:func:`~._volume_touching.reshare_touching`): the first rule keeps a boundary where it was
  at the timepoint before, and while the cells move against each other it drifts off them.

A z-stack without time has no timepoint before: of these it runs only the prompt rules.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["MAX_HELD_SHARE", "MIN_KEPT", "MIN_TAKEN", "give_back_stolen", "held_by_others"]

#: an object's fill along z ends on the first slice (walking away from its start slice) where
#: more than this share of its mask lies on voxels other objects held at the timepoint before
#: (chosen on the validation movies, seeds 2000-2003: 0.6 and 0.8 tried; docs/3d_measurements.md)
MAX_HELD_SHARE = 0.8

#: an object that covers less than this fraction of its voxels of the timepoint before ...
MIN_KEPT = 0.5
#: ... of which another object holds at least this fraction, was robbed by that object
#: (both set once, not tuned: a nucleus of y-x radius 9-14 voxels that moves 2-3 voxels
#: keeps 0.6-0.8 of its voxels)
MIN_TAKEN = 0.2


def give_back_stolen(
    labels: np.ndarray,
    previous: np.ndarray,
    ids: Sequence[int],
    min_kept: float = MIN_KEPT,
    min_taken: float = MIN_TAKEN,
) -> dict[int, int]:
    """Give back to each robbed object the voxels of its previous mask a neighbour took.

    Args:
        labels: (Z, Y, X) labels of this timepoint (modified).
        previous: (Z, Y, X) labels of the timepoint before (t - 1 forward, t + 1 backward).
        ids: the objects followed to this timepoint; only their voxels change hands.
        min_kept: an object robbed covers less than this fraction of its previous voxels ...
        min_taken: ... and another of ``ids`` holds at least this fraction of them.

    Returns:
        {robbed object id: voxels given back}.
    """
    ids = sorted({int(i) for i in ids})
    if len(ids) < 2:
        return {}
    given: dict[int, int] = {}
    robbed = []
    for obj_id in ids:
        before = previous == obj_id
        n = int(np.count_nonzero(before))
        if not n:
            continue
        now = labels[before]  # what holds its voxels of the timepoint before, now
        if np.count_nonzero(now == obj_id) >= min_kept * n:
            continue
        held = np.bincount(now.astype(np.int64, copy=False), minlength=max(ids) + 1)
        thieves = [o for o in ids if o != obj_id and held[o] >= min_taken * n]
        if thieves:
            robbed.append((obj_id, before, thieves))
    for obj_id, before, thieves in robbed:  # all found on the labels as the fill wrote them
        back = before & np.isin(labels, thieves)
        labels[back] = obj_id
        given[obj_id] = int(np.count_nonzero(back))
    return given


def held_by_others(mask: np.ndarray, previous: np.ndarray, obj_id: int) -> float:
    """Share of a mask on voxels other objects held at the timepoint before.

    Args:
        mask: (Y, X) bool mask of the object on one slice.
        previous: (Y, X) labels of that slice at the timepoint before.
        obj_id: the object's id.

    Returns:
        The share in [0, 1] (0.0 for an empty mask).
    """
    n = int(np.count_nonzero(mask))
    if not n:
        return 0.0
    theirs = (previous > 0) & (previous != obj_id)
    return int(np.count_nonzero(mask & theirs)) / n
