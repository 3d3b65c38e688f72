"""Divisions of 3-D cells followed through time (T, Z, Y, X).

A cell followed by :class:`~napari_sam2.video.volume_time.VolumeTimeSession` keeps one id until
its 3-D mask at a timepoint holds two cells. :func:`daughter_masks` says when, by one of three
signs, each giving two pieces that must each be at least :data:`MIN_FRACTION` of the cell's
volume at the timepoint before and at least :data:`MIN_VOXELS` voxels:

* the mask fell apart: its two largest 3-D (6-connected) pieces;
* the mask is one piece over two bright cores (the daughters still touch, and the model's
  mask, wider than the cells, joins them): the image inside the mask, smoothed by a third of
  the mother's radius, has two maxima whose brightest connecting path dips below
  :data:`SADDLE_SHARE` of the dimmer one's height above the background
  (:func:`~napari_sam2.video._volume_cores.bright_cores`), and the two peaks lie at least
  :data:`MIN_SEPARATION` mother radii apart (z scaled by the mother's z radius), with the
  mother's centre at the timepoint before between them (within :data:`MAX_OFFSET` of half
  their distance from their midpoint). The mask's voxels are shared out between the two by a
  watershed from the peaks;
* the mask is one daughter and her sister lies opposite, across the mother's centre, under
  another label (a touching neighbour's mask took her) or none: the mask shrank to at most
  :data:`MAX_SHRINK` of the mother's volume and its centre moved at least half of
  :data:`MIN_SEPARATION` of her radii; the sister is sought around the point opposite
  (:func:`_sister_opposite`), and the mask and an ellipsoid of its radii there are shared out
  by a watershed. On the 30 validation movies (seeds 2000-2029) it found one division the
  others missed (seed 2027: TRA 0.943 -> 1.000) and no false one; mean TRA 0.939 -> 0.941.

Either way each half must stand above the background around the mask by a cell's contrast
(:data:`MIN_CONTRAST`): a label that lost its cell and sits on background noise has cores of
noise, high peaks with a mean at the background's (the memory benchmark's lone nucleus: 3
false divisions in 60 timepoints, 8 in 120 without it; none with it).

A nucleus brighter in its middle than at its rim has one core; daughters side by side have
two, about 1.6 mother radii apart when they separate (each of 0.8 of the mother's radius).
On the 4-D validation movies (seeds 2000-2009, 10 divisions; the labels tracked without
divisions) the cores found the division on the first timepoint the mother's label spans both
daughters in 6 of the 8 movies where it does; the separation drops splits of one nucleus by
its texture (peaks 0.5-1.4 radii apart), the mother's centre between the two drops a
neighbour's core under the mask. With the rule: mean TRA 0.910 -> 0.934, 6 divisions found,
1 false (docs/3d_measurements.md).

A daughter does not divide again within :data:`MIN_CYCLE` timepoints of its birth
(:func:`may_divide`). Then the cell's track ends on the timepoint before, and the two pieces
become two daughters with new ids, linked in the session's ``lineage`` as
``{daughter: mother}`` (the rule of 2-D movies, :mod:`napari_sam2.video.lineage`, in 3-D).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._volume_cores import (
    bright_cores,
    brightest,
    cell_radii,
    heights_above,
    margin,
    split_between,
)

__all__ = [
    "MAX_OFFSET",
    "MIN_CONTRAST",
    "MIN_CYCLE",
    "MIN_FRACTION",
    "MIN_SEPARATION",
    "MIN_VOXELS",
    "SADDLE_SHARE",
    "daughter_masks",
    "divisions_by_default",
    "may_divide",
]

#: a piece smaller than this fraction of the mother's volume (on the timepoint before) is a
#: fragment, not a daughter
MIN_FRACTION = 0.25
#: ... or smaller than this many voxels
MIN_VOXELS = 20
#: two bright cores stay two where the brightest path between them dips below this share of
#: the dimmer core's height above the background (validation movies: 0.8 found each division
#: on the first timepoint the mask spans both daughters)
SADDLE_SHARE = 0.8
#: ... and the mother's centre at the timepoint before lies between them: nearer to their
#: midpoint than this share of half their distance (validation: 0.07-0.55 for divisions,
#: 0.9-3.2 where a neighbour's core lay under the mask, or a single nucleus split)
MAX_OFFSET = 0.75
#: each daughter stands above the background around the mask by at least this (the mean of
#: the image over it, smoothed by a third of the mother's radii, minus the median of a ring of
#: 3 voxels around the mask; in the model's window of intensities, [0, 1] over the movie's
#: percentiles): a label that lost its cell and sits on background is not split by the
#: noise's cores
MIN_CONTRAST = 0.1
#: a daughter does not divide again within this many timepoints of its birth (a cell cycle
#: is far longer; without it, on validation, the halves of a false split split again)
MIN_CYCLE = 10
#: the mother's label followed one daughter when it shrank to at most this share of her volume
#: (daughters: about half each)
MAX_SHRINK = 0.75
#: ... and their peaks lie at least this many mother radii apart (daughters' centres: about
#: 1.6; the texture of one nucleus split it with peaks 0.5-1.4 radii apart on validation)
MIN_SEPARATION = 1.4


def divisions_by_default(axes: str) -> bool:
    """Whether divisions are looked for when not asked either way: on 3-D + time (axes with a
    T; validation movies, seeds 2000-2009: mean TRA 0.910 -> 0.934, docs/3d_measurements.md), not on
    z-stacks.

    Args:
        axes: the data's axes, e.g. ``"TZYX"`` or ``"ZYX"``.
    """
    return "T" in axes.upper()


def may_divide(t: int, born: int | None) -> bool:
    """Whether a cell may divide at timepoint t (forward in time).

    Args:
        t: the timepoint.
        born: the timepoint its division made it a daughter (None: not a daughter).

    Returns:
        False within :data:`MIN_CYCLE` timepoints of its birth.
    """
    return born is None or t - born >= MIN_CYCLE


def daughter_masks(
    mask: np.ndarray,
    mother_voxels: int,
    min_fraction: float = MIN_FRACTION,
    min_voxels: int = MIN_VOXELS,
    *,
    image: np.ndarray | None = None,
    mother: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The two daughters of a cell's 3-D mask, or None (no division).

    Args:
        mask: (Z, Y, X) bool mask of the cell at one timepoint.
        mother_voxels: the cell's volume in voxels at the timepoint before.
        min_fraction: smallest daughter, as a fraction of ``mother_voxels``.
        min_voxels: smallest daughter in voxels.
        image: (Z, Y, X) intensities of the timepoint (cells brighter than the background, as
            the model sees them); with ``mother``, a mask that is one piece is split at a dip
            between two bright cores. None: only masks that fell apart divide.
        mother: (Z, Y, X) bool mask of the cell at the timepoint before (its radii size the
            smoothing and the separation).

    Returns:
        Two (Z, Y, X) bool masks, larger first, when both are large enough; else None.
    """
    smallest = max(min_voxels, min_fraction * mother_voxels)
    known = mother is not None and bool(mother.any())
    parts = _pieces(mask, smallest, mother if known else None)
    if parts is None and image is not None and known and mask.any():
        parts = _split_at_dip(mask, image, mother, smallest)
        if parts is None:
            parts = _sister_opposite(mask, image, mother, smallest)
    if parts is None or image is None:
        return parts
    both = mask | parts[0] | parts[1]  # the mask, or the mask and a sister beside it
    return parts if _both_cells(both, image, mother if known else mask, parts) else None


def _pieces(
    mask: np.ndarray, smallest: float, mother: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The mask's two largest 3-D pieces when both are large enough (and, with the mother's
    mask at the timepoint before, lie around her: :func:`_two_cells`), or None."""
    pieces, n = ndimage.label(mask)
    if n < 2:
        return None
    sizes = np.bincount(pieces.ravel(), minlength=n + 1)[1:]
    first, second = np.argsort(sizes)[::-1][:2]
    parts = pieces == first + 1, pieces == second + 1
    if sizes[second] < smallest:
        return None
    if mother is not None and not _two_cells(
        *(np.argwhere(p).mean(axis=0) for p in parts), mother, cell_radii(mother)
    ):
        return None
    return parts


def _box(mask: np.ndarray, radii: tuple[float, float]) -> tuple[slice, ...]:
    """A crop around the mask with a margin of the radii and the 3-voxel background ring."""
    pad = margin(radii)
    where = np.argwhere(mask)
    lo = np.maximum(where.min(0) - pad, 0)
    hi = np.minimum(where.max(0) + 1 + np.asarray(pad), mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _both_cells(
    mask: np.ndarray, image: np.ndarray, mother: np.ndarray, parts: tuple[np.ndarray, ...]
) -> bool:
    """Whether each daughter is a cell: the image over it, smoothed by a third of the mother's
    radii, stands at least :data:`MIN_CONTRAST` above the background around the mask
    (:func:`~napari_sam2.video._volume_cores.heights_above`)."""
    radii = cell_radii(mother)
    box = _box(mask, radii)
    img = np.asarray(image[box], np.float32)
    heights = heights_above(mask[box], img, radii, tuple(p[box] for p in parts))
    return min(heights) >= MIN_CONTRAST


def _two_cells(
    a: np.ndarray, b: np.ndarray, mother: np.ndarray, radii: tuple[float, float]
) -> bool:
    """Whether two points (z, y, x voxels) can be the centres of a mother's daughters: at least
    :data:`MIN_SEPARATION` of her radii apart, her centre at the timepoint before between them
    (nearer to their midpoint than :data:`MAX_OFFSET` of half their distance)."""
    scale = np.array([radii[0], radii[1], radii[1]])  # voxels -> mother radii
    a, b = np.asarray(a) / scale, np.asarray(b) / scale
    half = float(np.linalg.norm(a - b)) / 2
    centre = np.argwhere(mother).mean(axis=0) / scale
    return 2 * half >= MIN_SEPARATION and float(np.linalg.norm((a + b) / 2 - centre)) <= (
        MAX_OFFSET * half
    )


def _ellipsoid(shape: tuple[int, ...], centre: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """(Z, Y, X) bool ellipsoid of semi-axes ``axes`` (voxels) around ``centre`` (z, y, x)."""
    lo = np.maximum(centre - np.ceil(axes), 0).astype(int)
    hi = np.minimum(centre + np.ceil(axes) + 1, shape).astype(int)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    grid = np.ogrid[box]
    out = np.zeros(shape, bool)
    out[box] = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, axes)) <= 1.0
    return out


def _sister_opposite(
    mask: np.ndarray, image: np.ndarray, mother: np.ndarray, smallest: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """The mask is one daughter, its sister lies opposite across the mother's centre, or None.

    The mother's label followed one daughter (it shrank to at most :data:`MAX_SHRINK` of her
    volume, and its centre moved at least half of :data:`MIN_SEPARATION` of her radii), and the
    point opposite (the mask's centre mirrored through the mother's) lies within a third of her
    radii of her mask at the timepoint before and is not the mask's: the sister is sought
    there, as an ellipsoid of the mask's own radii around that point, whoever's label holds it
    now; the mask and the ellipsoid are shared out between the two by a watershed from their
    brightest voxels.
    """
    if np.count_nonzero(mask) > MAX_SHRINK * np.count_nonzero(mother):
        return None
    radii = cell_radii(mother)
    scale = np.array([radii[0], radii[1], radii[1]])
    before, here = np.argwhere(mother).mean(axis=0), np.argwhere(mask).mean(axis=0)
    if float(np.linalg.norm((here - before) / scale)) < MIN_SEPARATION / 2:
        return None
    q = np.round(2 * before - here).astype(int)  # (z, y, x) opposite the mask
    if np.any(q < 0) or np.any(q >= mask.shape) or mask[tuple(q)]:
        return None
    if not (mother & _ellipsoid(mask.shape, q, scale / 3)).any():
        return None  # not on the mother (within a third of her radii)
    own = cell_radii(mask)
    sister = _ellipsoid(mask.shape, q, np.array([own[0], own[1], own[1]]))
    sister &= ~mask
    both = mask | sister
    box = _box(both, radii)
    crop, img = both[box], np.asarray(image[box], np.float32)
    peaks = brightest(crop, img, radii, (mask[box], sister[box]))
    halves = split_between(crop, img, radii, peaks)
    out = []
    for k in (1, 2):
        full = np.zeros(mask.shape, bool)
        full[box] = halves == k
        out.append(full)
    if min(int(np.count_nonzero(p)) for p in out) < smallest:
        return None
    if not _two_cells(*(np.argwhere(p).mean(axis=0) for p in out), mother, radii):
        return None
    return (out[0], out[1]) if out[0].sum() >= out[1].sum() else (out[1], out[0])


def _split_at_dip(
    mask: np.ndarray, image: np.ndarray, mother: np.ndarray, smallest: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """The two daughters of a mask over two bright cores (see the module), or None."""
    radii = cell_radii(mother)
    box = _box(mask, radii)
    lo = np.array([b.start for b in box])
    crop, img = mask[box], np.asarray(image[box], np.float32)
    cores = bright_cores(crop, img, radii, SADDLE_SHARE)
    if cores.count < 2:
        return None
    if not _two_cells(cores.peaks[0] + lo, cores.peaks[1] + lo, mother, radii):
        return None  # one nucleus' texture, or a neighbour's core under the mask
    halves = split_between(crop, img, radii, cores.peaks[:2])
    sizes = [int(np.count_nonzero(halves == k)) for k in (1, 2)]
    if min(sizes) < smallest:
        return None
    out = []
    for k in np.argsort(sizes)[::-1] + 1:
        full = np.zeros(mask.shape, bool)
        full[box] = halves == k
        out.append(full)
    return out[0], out[1]
