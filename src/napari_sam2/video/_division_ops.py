"""Label-image operations behind :class:`~napari_sam2.video.lineage.DivisionTracker`.

Bounding-box helpers, splitting a mask into pieces (connected components, optionally cut at
narrow necks), assigning a mother's pixels to two daughters, and the per-id maps that rewrite
label images from a frame on (:class:`_Alias`: one id becomes another; :class:`_Division`: a
mother's pixels go to the nearer daughter). Boxes are ``(y0, x0, y1, x1)``, end-exclusive, in
frame pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

Box = tuple[int, int, int, int]  # (y0, x0, y1, x1), end-exclusive, frame pixels

# ----------------------------------------------------------------------------- geometry


def _union(*boxes: Box | None) -> Box | None:
    bs = [b for b in boxes if b is not None]
    if not bs:
        return None
    return (
        min(b[0] for b in bs),
        min(b[1] for b in bs),
        max(b[2] for b in bs),
        max(b[3] for b in bs),
    )


def _mask_box(mask: np.ndarray, dy: int = 0, dx: int = 0) -> Box | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(rows[0]) + dy, int(cols[0]) + dx, int(rows[-1]) + 1 + dy, int(cols[-1]) + 1 + dx)


def _boxes(lab: np.ndarray) -> dict[int, Box]:
    """Bounding box of every non-zero id of a (H, W) label image."""
    hi = int(lab.max()) if lab.size else 0
    if hi == 0:
        return {}
    if hi <= (1 << 20):
        slices = ndimage.find_objects(lab)
        return {
            i + 1: (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)
            for i, sl in enumerate(slices)
            if sl is not None
        }
    out = {}
    for i in np.unique(lab):
        if i != 0:
            box = _mask_box(lab == i)
            if box is not None:
                out[int(i)] = box
    return out


def _crop(lab: np.ndarray, box: Box) -> np.ndarray:
    return lab[box[0] : box[2], box[1] : box[3]]


def _pieces(mask: np.ndarray, structure: np.ndarray, neck: float | None) -> tuple[np.ndarray, int]:
    """Label the pieces of a (h, w) bool mask: connected components, optionally cut at necks
    (see :attr:`DivisionSettings.neck_ratio`). Returns (int32 labels, number of pieces)."""
    comps, n = ndimage.label(mask, structure)
    if neck is None or n == 0:
        return comps, n
    dist = ndimage.distance_transform_edt(mask)
    peak = np.asarray(ndimage.maximum(dist, comps, index=np.arange(1, n + 1)))
    thresh = np.concatenate([[np.inf], neck * peak])[comps]  # per pixel, by component
    cores, m = ndimage.label(dist > thresh, structure)
    if m <= n:
        return comps, n  # one core per component: nothing to cut
    idx = ndimage.distance_transform_edt(cores == 0, return_distances=False, return_indices=True)
    return (cores[idx[0], idx[1]] * mask).astype(np.int32), m


def _assign(
    mother: np.ndarray,
    ref: np.ndarray,
    structure: np.ndarray,
    frac: float,
    neck: float | None = None,
) -> np.ndarray:
    """Split a mother's pixels between two daughters.

    Args:
        mother: (h, w) bool pixels to assign.
        ref: (h, w) uint8 where the daughters were (1, 2; 0 elsewhere). When empty, the two
            largest pieces of ``mother`` become daughters 1 and 2.
        structure: connectivity of pieces.
        neck: cut pieces at necks (see :func:`_pieces`).
        frac: a piece that overlaps both daughters' previous pixels, each with at least this
            share of its overlap, is cut along the line of equal distance to them; otherwise
            it goes whole to the daughter it overlaps most (or, overlapping neither, to the
            one nearest to most of its pixels).

    Returns:
        (h, w) uint8: 1 or 2 on ``mother`` pixels, 0 elsewhere.
    """
    comps, n = _pieces(mother, structure, neck)
    if n == 0:
        return np.zeros(mother.shape, np.uint8)
    if not ref.any():
        sizes = np.bincount(comps.ravel())[1:]
        order = np.argsort(-sizes, kind="stable")
        ref = np.zeros(mother.shape, np.uint8)
        ref[comps == order[0] + 1] = 1
        if n > 1:
            ref[comps == order[1] + 1] = 2
    idx = ndimage.distance_transform_edt(ref == 0, return_distances=False, return_indices=True)
    near = ref[idx[0], idx[1]]  # (h, w) nearest daughter, 1 or 2
    c = comps.ravel()

    def per_comp(values: np.ndarray) -> np.ndarray:
        return np.bincount(c, weights=values.ravel(), minlength=n + 1)[1:]

    o1, o2 = per_comp(ref == 1), per_comp(ref == 2)  # overlap with each daughter
    n1, n2 = per_comp(near == 1), per_comp(near == 2)  # pixels nearest to each daughter
    overlaps = (o1 + o2) > 0
    whole = np.where(overlaps, np.where(o1 >= o2, 1, 2), np.where(n1 >= n2, 1, 2))
    cut = overlaps & (np.minimum(o1, o2) >= frac * (o1 + o2))
    whole_px = np.concatenate([[0], whole]).astype(np.uint8)[comps]
    cut_px = np.concatenate([[False], cut])[comps]
    return np.where(cut_px, near, whole_px).astype(np.uint8) * mother


# ----------------------------------------------------------------------------- id maps


class _Alias:
    """From now on, pixels of ``old`` are ``new``."""

    def __init__(self, old: int, new: int) -> None:
        self.old, self.new = old, new

    def sources(self) -> tuple[int, ...]:
        return (self.old,)

    def targets(self) -> tuple[int, ...]:
        return (self.new,)

    def apply(self, lab: np.ndarray, boxes: dict[int, Box]) -> None:
        box = boxes.pop(self.old, None)
        if box is None:
            return
        crop = _crop(lab, box)
        crop[crop == self.old] = self.new
        boxes[self.new] = _union(boxes.get(self.new), box)  # type: ignore[assignment]


class _Division:
    """From now on, pixels of ``mother`` go to the nearer of the two daughters."""

    def __init__(
        self, mother: int, daughters: tuple[int, int], structure, frac: float, neck: float | None
    ) -> None:
        self.mother, self.daughters = mother, daughters
        self.structure, self.frac, self.neck = structure, frac, neck
        self.prev: tuple[Box, np.ndarray] | None = None  # daughters (1, 2) on the last frame

    def sources(self) -> tuple[int, ...]:
        return (self.mother,)

    def targets(self) -> tuple[int, ...]:
        return self.daughters

    def apply(self, lab: np.ndarray, boxes: dict[int, Box]) -> None:
        d_boxes = [boxes.get(d) for d in self.daughters]
        m_box = boxes.get(self.mother)
        if m_box is None:
            if any(b is not None for b in d_boxes):
                self._remember(lab, _union(*d_boxes))  # type: ignore[arg-type]
            return
        region = _union(m_box, *d_boxes, self.prev[0] if self.prev else None)
        assert region is not None
        y0, x0, y1, x1 = region
        crop = lab[y0:y1, x0:x1]
        ref = np.zeros(crop.shape, np.uint8)
        if self.prev is not None:
            (py0, px0, py1, px1), arr = self.prev
            ref[py0 - y0 : py1 - y0, px0 - x0 : px1 - x0] = arr
        for k, (d, b) in enumerate(zip(self.daughters, d_boxes)):
            if b is not None:
                ref[crop == d] = k + 1
        assign = _assign(crop == self.mother, ref, self.structure, self.frac, self.neck)
        for k, d in enumerate(self.daughters):
            sel = assign == k + 1
            crop[sel] = d
            box = _mask_box(sel, y0, x0)
            if box is not None:
                boxes[d] = _union(boxes.get(d), box)  # type: ignore[assignment]
        boxes.pop(self.mother)
        self._remember(lab, _union(*(boxes.get(d) for d in self.daughters)))  # type: ignore[arg-type]

    def _remember(self, lab: np.ndarray, region: Box | None) -> None:
        if region is None:
            return
        crop = _crop(lab, region)
        arr = (crop == self.daughters[0]).astype(np.uint8) + 2 * (crop == self.daughters[1])
        box = _mask_box(arr > 0)
        if box is None:
            return
        y0, x0 = region[:2]
        self.prev = (
            (box[0] + y0, box[1] + x0, box[2] + y0, box[3] + x0),
            arr[box[0] : box[2], box[1] : box[3]].astype(np.uint8),
        )
