"""Bright cores of a 3-D mask: the cells a mask holds, found by the dips of the image inside it.

A mask that covers two touching nuclei is one piece, often without a narrow neck (the model's
masks are wider than the cells); the image is not: a nucleus is brighter in its middle than at
its rim, so two nuclei side by side are two bright cores with a dimmer seam between them.
:func:`bright_cores` smooths the image (a Gaussian of a third of the cell's radius, so texture
does not make cores of its own), floods it from its maxima inside the mask (a watershed), and
merges two neighbouring regions unless the brightest path between their peaks dips below
``saddle_share`` of the dimmer peak's height above the background (the median of a thin ring
around the mask). What stays apart are the cores;
:func:`~napari_sam2.video.volume_divisions.daughter_masks` decides whether two of them are the
daughters of a division.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "Cores",
    "bright_cores",
    "brightest",
    "cell_radii",
    "height_map",
    "heights_above",
    "margin",
    "split_between",
]


@dataclass(frozen=True)
class Cores:
    """The cores of a mask: ``labels`` (Z, Y, X) int32, 0 outside the mask, 1..n the cores
    (every voxel of the mask in one), largest first; ``peaks`` (n, 3) the brightest voxel of
    each (z, y, x)."""

    labels: np.ndarray
    peaks: np.ndarray

    @property
    def count(self) -> int:
        """Number of cores."""
        return len(self.peaks)

    def sizes(self) -> np.ndarray:
        """(n,) voxels of each core."""
        return np.bincount(self.labels.ravel(), minlength=self.count + 1)[1:]


def cell_radii(mask: np.ndarray) -> tuple[float, float]:
    """A cell's radii in voxels: (z, y-x), from its z extent and its widest slice's area.

    Args:
        mask: (Z, Y, X) bool mask of the cell (not empty).

    Returns:
        (half the number of slices it spans, radius of a disc of its widest slice's area).
    """
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    area = float(mask.sum(axis=(1, 2)).max())
    return max((zs[-1] - zs[0] + 1) / 2.0, 0.5), max(float(np.sqrt(area / np.pi)), 1.0)


def _saddles(regions: np.ndarray, height: np.ndarray, n: int) -> dict[tuple[int, int], float]:
    """{(i, j): brightest crossing between regions i < j} over 6-connected neighbour voxels."""
    out: dict[tuple[int, int], float] = {}
    for axis in range(regions.ndim):
        a, b = np.moveaxis(regions, axis, 0), np.moveaxis(height, axis, 0)
        r0, r1, h0, h1 = a[:-1], a[1:], b[:-1], b[1:]
        cross = (r0 != r1) & (r0 > 0) & (r1 > 0)
        if not cross.any():
            continue
        lo, hi = np.minimum(r0[cross], r1[cross]), np.maximum(r0[cross], r1[cross])
        key = lo.astype(np.int64) * (n + 1) + hi
        value = np.minimum(h0[cross], h1[cross])  # a path crosses at its dimmer side
        order = np.argsort(key, kind="stable")
        key, value = key[order], value[order]
        uniq, start = np.unique(key, return_index=True)
        for k, v in zip(uniq.tolist(), np.maximum.reduceat(value, start).tolist()):
            pair = (k // (n + 1), k % (n + 1))
            out[pair] = max(out.get(pair, -np.inf), float(v))
    return out


#: width in voxels of the ring around a mask whose median is the background
RING = 3


def margin(radii: tuple[float, float]) -> tuple[int, int, int]:
    """The (z, y, x) margin in voxels a crop around a mask needs for :func:`height_map`: the
    cell's (z, y-x) radii (the smoothing reaches a third of them) and the background ring."""
    return (int(np.ceil(radii[0])) + RING, *[int(np.ceil(radii[1])) + RING] * 2)


def height_map(mask: np.ndarray, image: np.ndarray, radii: tuple[float, float]) -> np.ndarray:
    """The image's height above the background around a mask, voxel by voxel.

    Args:
        mask: (Z, Y, X) bool mask (a crop around it with :func:`margin` is enough).
        image: (Z, Y, X) intensities of the same voxels.
        radii: the cell's (z, y-x) radii in voxels; the image is smoothed by a third of each.

    Returns:
        (Z, Y, X) float32: the smoothed image minus the median of a ring of :data:`RING` voxels
        around ``mask``, signed so that the cell stands above it (a dark cell: negated).
    """
    sm = ndimage.gaussian_filter(np.asarray(image, np.float32), (radii[0] / 3, *[radii[1] / 3] * 2))
    ring = ndimage.binary_dilation(mask, iterations=RING) & ~mask
    background = float(np.median(sm[ring])) if ring.any() else float(sm[mask].min())
    height = sm - background
    return height if height[mask].mean() >= 0 else -height


def bright_cores(
    mask: np.ndarray, image: np.ndarray, radii: tuple[float, float], saddle_share: float
) -> Cores:
    """Split a mask into the bright cores of the image inside it.

    Args:
        mask: (Z, Y, X) bool mask (a crop around it is enough: a ring of 3 voxels around the
            mask is read as background).
        image: (Z, Y, X) intensities of the same voxels (as the model sees them: windowed to
            [0, 1]); a cell darker than its surroundings is read negated.
        radii: the cell's (z, y-x) radii in voxels (:func:`cell_radii`); the image is smoothed
            by a Gaussian of a third of each.
        saddle_share: two neighbouring regions stay apart when the brightest path between
            them dips below this share of the dimmer peak's height above the background.

    Returns:
        The cores (one for an empty mask's nothing: ``count`` 0).
    """
    from skimage.segmentation import watershed

    if not mask.any():
        return Cores(np.zeros(mask.shape, np.int32), np.zeros((0, 3), np.int64))
    height = height_map(mask, image, radii)
    # regional maxima inside the mask flood it (plateaus are one marker); maxima and flooding
    # both 6-connected, so every 6-connected piece of the mask holds a marker and is flooded
    six = ndimage.generate_binary_structure(3, 1)
    inside = np.where(mask, height, -np.inf)
    peaks = (inside == ndimage.maximum_filter(inside, footprint=six)) & mask
    markers, n = ndimage.label(peaks, structure=six)
    regions = watershed(-height, markers, connectivity=1, mask=mask)
    top = np.full(n + 1, -np.inf)
    np.maximum.at(top, regions.ravel(), height.ravel())
    parent = np.arange(n + 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    # merge across the brightest crossings first (a merge tree of the image inside the mask)
    for (i, j), s in sorted(_saddles(regions, height, n).items(), key=lambda kv: -kv[1]):
        ri, rj = root(i), root(j)
        if ri != rj and s >= saddle_share * min(top[ri], top[rj]):
            parent[rj] = ri
            top[ri] = max(top[ri], top[rj])
    roots = np.array([root(i) for i in range(n + 1)])
    merged = roots[regions]
    ids, sizes = np.unique(merged[mask], return_counts=True)
    order = ids[np.argsort(-sizes, kind="stable")]
    relabel = np.zeros(n + 1, np.int32)
    relabel[order] = np.arange(1, len(order) + 1)
    labels = relabel[merged]
    flat = np.where(mask, height, -np.inf).ravel()
    peak_at = [
        np.unravel_index(int(np.argmax(np.where(labels.ravel() == k, flat, -np.inf))), mask.shape)
        for k in range(1, len(order) + 1)
    ]
    return Cores(labels.astype(np.int32), np.asarray(peak_at, np.int64).reshape(-1, 3))


def split_between(
    mask: np.ndarray, image: np.ndarray, radii: tuple[float, float], peaks: np.ndarray
) -> np.ndarray:
    """Share every voxel of a mask out between two cores (a watershed from their peaks).

    Args:
        mask: (Z, Y, X) bool mask.
        image: (Z, Y, X) intensities (as for :func:`bright_cores`).
        radii: the cell's (z, y-x) radii in voxels (smoothing as in :func:`bright_cores`).
        peaks: (2, 3) the two cores' peaks (z, y, x).

    Returns:
        (Z, Y, X) int32: 1 and 2 on the voxels of each, 0 outside the mask.
    """
    from skimage.segmentation import watershed

    markers = np.zeros(mask.shape, np.int32)
    for k, (z, y, x) in enumerate(peaks[:2], start=1):
        markers[z, y, x] = k
    return watershed(-height_map(mask, image, radii), markers, mask=mask).astype(np.int32)


def heights_above(
    mask: np.ndarray, image: np.ndarray, radii: tuple[float, float], parts: tuple[np.ndarray, ...]
) -> list[float]:
    """How far each part of a mask stands above the background around the mask.

    Args:
        mask: (Z, Y, X) bool mask (a crop around it is enough, as for :func:`bright_cores`).
        image: (Z, Y, X) intensities of the same voxels (as for :func:`bright_cores`).
        radii: the cell's (z, y-x) radii in voxels; the image is smoothed by a third of each.
        parts: (Z, Y, X) bool masks inside ``mask``.

    Returns:
        Per part, the mean of the smoothed image over it minus the median of a ring of 3 voxels
        around ``mask``, in the image's units (signed as in :func:`bright_cores`: a cell darker
        than its surroundings is read negated).
    """
    height = height_map(mask, image, radii)
    return [float(height[p].mean()) if p.any() else 0.0 for p in parts]


def brightest(
    mask: np.ndarray, image: np.ndarray, radii: tuple[float, float], parts: tuple[np.ndarray, ...]
) -> np.ndarray:
    """The brightest voxel of each part of a mask, in the image smoothed as for the cores.

    Args:
        mask: (Z, Y, X) bool mask (a crop around it is enough, as for :func:`bright_cores`).
        image: (Z, Y, X) intensities of the same voxels (as for :func:`bright_cores`).
        radii: the cell's (z, y-x) radii in voxels; the image is smoothed by a third of each.
        parts: (Z, Y, X) bool masks inside ``mask``, none empty.

    Returns:
        (n, 3) int64 (z, y, x) of each part's brightest voxel (the peaks
        :func:`split_between` floods from).
    """
    height = height_map(mask, image, radii)
    flat = [int(np.argmax(np.where(p, height, -np.inf))) for p in parts]
    return np.asarray([np.unravel_index(i, mask.shape) for i in flat], np.int64).reshape(-1, 3)
