"""Touching 3-D cells through time: the voxels two touching labels hold are shared out again.

In 3-D + time (:class:`~napari_sam2.video.volume_time.VolumeTimeSession`) the boundary between
two touching labels is set by the fill along z, where the object that held a voxel at the
timepoint before keeps it (:data:`~._volume_overlap.HELD_BONUS`). That keeps the boundary where
it was while the cells move against each other, and from timepoint to timepoint it drifts off
the cells: on the validation movies the labels of two touching nuclei came to cover 24-51 % of
each other's nucleus within 5-10 timepoints, and a division of one of them was then missed
(docs/3d_measurements.md).

:func:`reshare_touching` puts the boundary back on the cells after the fill, for every pair of
followed labels that touch: the voxels both hold are given to the nearer of the two cells, the
distance to each cell's centre measured in that cell's own radii (z and y-x, from its mask at the
timepoint before: :func:`~._volume_cores.cell_radii`), as touching nuclei share their contact
(a larger nucleus holds more of it). The centres are the labels' centroids weighted by the image
(its height above the background around the two, :func:`~._volume_cores.height_map`), found
again after each sharing until it no longer changes (a two-centre k-means started from the
labels as filled). Only voxels the two held change hands, and only between them. It runs after
the division search (:meth:`~napari_sam2.video.volume_time.VolumeTimeSession._divide`), which
sees the masks as filled: a dividing cell reaches past its own radii, and shared out first its
far daughter went to a neighbour. On the 30 validation movies (seeds 2000-2029) the mean IoU /
TRA rose from 0.754 / 0.941 to 0.846 / 0.959, false divisions from 6 to 1, 20 found right both
ways (docs/3d_measurements.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ._volume_cores import cell_radii, height_map, margin

__all__ = ["MAX_ROUNDS", "MIN_SHARE", "reshare_touching", "touching_pairs"]

#: two labels are shared out again only when the smaller one's volume at the timepoint before is
#: at least this share of the larger one's (a label that lost its cell, a sliver of tens of
#: voxels, has no centre or radii to share by)
MIN_SHARE = 0.25
#: at most this many rounds of sharing and finding the centres again
MAX_ROUNDS = 10


def touching_pairs(labels: np.ndarray, ids: Sequence[int]) -> list[tuple[int, int]]:
    """Pairs (a < b) of ``ids`` whose voxels touch (6-connected) in a label volume.

    Args:
        labels: (Z, Y, X) integer labels.
        ids: the labels considered.

    Returns:
        The touching pairs, sorted.
    """
    keep = np.zeros(int(labels.max()) + 1 if labels.size else 1, bool)
    keep[[i for i in ids if 0 < i < len(keep)]] = True
    pairs: set[tuple[int, int]] = set()
    for axis in range(labels.ndim):
        lab = np.moveaxis(labels, axis, 0)
        a, b = lab[:-1], lab[1:]
        cross = (a != b) & keep[a] & keep[b]
        if cross.any():
            lo = np.minimum(a[cross], b[cross]).astype(np.int64)
            hi = np.maximum(a[cross], b[cross]).astype(np.int64)
            pairs.update(zip(lo.tolist(), hi.tolist()))
    return sorted(pairs)


def _around(boxes: Sequence[tuple[slice, ...]], pad: Sequence[int], shape) -> tuple[slice, ...]:
    """The smallest box around ``boxes``, grown by ``pad`` voxels per axis, inside ``shape``."""
    lo = [max(min(b[k].start for b in boxes) - pad[k], 0) for k in range(len(shape))]
    hi = [min(max(b[k].stop for b in boxes) + pad[k], shape[k]) for k in range(len(shape))]
    return tuple(slice(a, b) for a, b in zip(lo, hi))


def _share(
    both: np.ndarray,
    held: np.ndarray,
    weight: np.ndarray,
    radii: tuple[np.ndarray, np.ndarray],
    ids: tuple[int, int],
) -> np.ndarray | None:
    """Share the voxels of ``both`` between two cells (see the module); None if one is lost.

    Args:
        both: (Z, Y, X) bool voxels of the two labels.
        held: (Z, Y, X) labels as filled (``ids`` on ``both``).
        weight: (Z, Y, X) image weight of each voxel (>= 0).
        radii: each cell's (z, y, x) radii in voxels.
        ids: the two labels.

    Returns:
        (n,) the label of each voxel of ``both`` (in ``np.argwhere`` order).
    """
    where = np.argwhere(both).astype(np.float64)
    w = weight[both].astype(np.float64)
    now = held[both]
    for _ in range(MAX_ROUNDS):
        dist = []
        for obj_id, r in zip(ids, radii):
            mine = now == obj_id
            if not mine.any():
                return None
            centre = np.average(where[mine], axis=0, weights=w[mine])
            dist.append(np.linalg.norm((where - centre) / r, axis=1))
        new = np.where(dist[0] <= dist[1], ids[0], ids[1])
        if np.array_equal(new, now):
            break
        now = new
    return now


def reshare_touching(
    labels: np.ndarray, previous: np.ndarray, ids: Sequence[int], image: np.ndarray
) -> dict[tuple[int, int], int]:
    """Share the voxels of every two touching labels out between their cells, in place.

    Args:
        labels: (Z, Y, X) labels of timepoint t, as filled (modified).
        previous: (Z, Y, X) labels of the timepoint before (t - 1 forward, t + 1 backward).
        ids: the objects followed to t (the others' voxels are not touched).
        image: (Z, Y, X) intensities of t as the model sees them (windowed to [0, 1]).

    Returns:
        {(a, b): voxels that changed hands} for the pairs shared out again.
    """
    ids = sorted({int(i) for i in ids})
    if len(ids) < 2:
        return {}
    now_boxes = ndimage.find_objects(labels, max_label=max(ids))
    was_boxes = ndimage.find_objects(previous, max_label=max(ids))
    moved: dict[tuple[int, int], int] = {}
    for a, b in touching_pairs(labels, ids):
        if was_boxes[a - 1] is None or was_boxes[b - 1] is None:
            continue
        was = [previous[was_boxes[o - 1]] == o for o in (a, b)]
        sizes = [int(np.count_nonzero(m)) for m in was]
        if min(sizes) < MIN_SHARE * max(sizes):
            continue
        cell = [cell_radii(m) for m in was]
        radii = tuple(np.array([r[0], r[1], r[1]]) for r in cell)
        smallest = (min(r[0] for r in cell), min(r[1] for r in cell))
        box = _around([now_boxes[a - 1], now_boxes[b - 1]], margin(smallest), labels.shape)
        held = labels[box]
        both = (held == a) | (held == b)
        weight = np.clip(height_map(both, np.asarray(image[box], np.float32), smallest), 0, None)
        shared = _share(both, held, weight + 1e-3, radii, (a, b))
        if shared is None:
            continue
        changed = int(np.count_nonzero(shared != held[both]))
        if changed:
            held[both] = shared
            moved[(a, b)] = changed
            # either may now reach over the other's box (for the pairs still to come)
            now_boxes[a - 1] = now_boxes[b - 1] = _around(
                [now_boxes[a - 1], now_boxes[b - 1]], (0, 0, 0), labels.shape
            )
    return moved
