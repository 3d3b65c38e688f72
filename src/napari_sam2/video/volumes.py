"""3-D: z-stacks segmented along z, and 3-D cells followed through time.

A z-stack (``axes="ZYX"`` or ``"CZYX"``) is a movie along z: :class:`VideoSession` plays its
slices as frames (see :attr:`FrameSource.frame_axis`). :func:`propagate_along_z` runs each
object up and down from the slice it was prompted on and ends it where it ends
(:func:`end_along_z`).

3-D + time (``axes="TZYX"``) builds on this: see :mod:`napari_sam2.video.volume_time`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np

from ._volume_fit import ImageFit, fit_level, fit_slice, smooth
from ._volume_identity import MAX_HELD_SHARE, held_by_others
from ._volume_overlap import paint_deepest
from .memory_bank import MemorySettings
from .session import VideoSession

__all__ = [
    "central_slice",
    "end_along_z",
    "is_volume_axes",
    "mask_contrast",
    "propagate_along_z",
]

#: z-propagation stops where an object's mask overlaps its previous slice's mask by less than
#: this fraction of the smaller of the two (the mask jumped onto something else).
MIN_SLICE_OVERLAP = 0.3
#: ... or, when the start slices are prompts (a z-stack), where more than this fraction of
#: its mask lies on the masks of objects prompted on a slice nearer to that slice than its own
#: (it slid into a cell another prompt claims: a cell above or below it, or a touching
#: neighbour). The masks are fitted to the image first (:mod:`._volume_fit`), so a share
#: this high means the object's own pixels are mostly another's; chosen on synthetic stacks of
#: seeds 2000-2009 (0.35 was best for the model's unfitted masks) ...
MAX_CLAIMED_SHARE = 0.6
#: ... the same share for the model's masks when they are not fitted (``fit=False``): they are
#: 1.6-2.5 times small nuclei, so a share this high ends too little (validation stacks: 85 %
#: of nuclei end cleanly with 0.6, 95 % with 0.35)
UNFITTED_CLAIMED_SHARE = 0.35
#: ... or, when the start slices were found by tracking (3-D + time), where more than this
#: fraction of its mask lies on other objects' masks, and that fraction has risen by more
#: than :data:`SHARED_RISE` since the start slice (touching cells whose masks overlap from the
#: start keep going) ...
MAX_SHARED = 0.5
#: rise of the shared fraction over the start slice's that counts as sliding onto a neighbour
#: (chosen on synthetic stacks of seeds 2000-2001).
SHARED_RISE = 0.3
#: ... or where the object's contrast (mean intensity inside its mask minus the mean of a ring
#: around it) falls below this fraction of its contrast on the start slice: the mask outlives
#: the cell (SAM 2 keeps a confident mask on empty slices once it has memories of the object).
#: 0.4 was chosen on synthetic stacks of seeds 2000-2001 (the evaluation uses seeds from 1000).
MIN_CONTRAST_RATIO = 0.4
#: ... and, for prompted objects, after the overlaps are shared out
#: (:func:`~._volume_overlap.paint_deepest`), from the first slice where the object kept less
#: than this share of its own mask (validation stacks, seeds 2000-2009: 54 -> 56 of 60 nuclei
#: ended cleanly, mean IoU 0.769 both; the slivers left past an end lay on a neighbour)
MIN_KEPT_SHARE = 0.2


def is_volume_axes(axes: str | None) -> bool:
    """True for axes with a Z letter (``"ZYX"``, ``"CZYX"``, ``"TZYX"``, ``"TCZYX"``...)."""
    return isinstance(axes, str) and "Z" in axes.strip().upper()


# ------------------------------------------------------------------------------ z guard


def mask_contrast(image: np.ndarray, mask: np.ndarray, others: np.ndarray | None = None) -> float:
    """Mean of ``image`` inside ``mask`` minus its mean in a ring around it.

    Args:
        image: (Y, X) intensities (any units).
        mask: (Y, X) bool mask.
        others: (Y, X) bool pixels left out of the ring (other objects), or None.

    Returns:
        The contrast (0.0 for an empty mask or an empty ring).
    """
    from scipy import ndimage

    n = int(mask.sum())
    if not n:
        return 0.0
    width = max(2, int(round(0.15 * np.sqrt(n))))
    ring = ndimage.binary_dilation(mask, iterations=width) & ~mask
    if others is not None:
        ring &= ~others
    if not ring.any():
        return 0.0
    return float(image[mask].mean() - image[ring].mean())


def _ended_slices(
    mask: Callable[[int], np.ndarray],
    num_slices: int,
    start: int,
    image: Callable[[int], np.ndarray] | None,
    others: Callable[[int], np.ndarray],
    slid: Callable[[int, np.ndarray], bool] | None = None,
) -> list[int]:
    """Slices past an object's ends (see :func:`end_along_z`); ``mask(z)`` is its (Y, X) mask,
    ``others(z)`` the pixels of other objects (left out of the contrast ring), ``slid(z, m)``
    whether its mask m on slice z slid onto a neighbour (None: no neighbour rule)."""
    first = mask(start)
    ref = None
    if image is not None:
        ref = mask_contrast(image(start), first, others(start))
        if abs(ref) < 1e-6:
            ref = None  # no contrast to lose (e.g. a prompt on a flat region)
    gone = []
    for step in (1, -1):
        prev = first
        z = start + step
        ended = not prev.any()
        while 0 <= z < num_slices:
            cur = mask(z)
            n = int(cur.sum())
            if not ended and n:
                inter = int(np.count_nonzero(cur & prev))
                ended = inter < MIN_SLICE_OVERLAP * min(n, int(prev.sum()))
                if not ended and slid is not None:
                    ended = slid(z, cur)
                if not ended and ref is not None:
                    ended = mask_contrast(image(z), cur, others(z)) / ref < MIN_CONTRAST_RATIO
            elif not n:
                ended = True
            if ended and n:
                gone.append(z)
            prev = cur
            z += step
    return gone


def _nearer(starts: dict[int, int], obj_id: int, z: int) -> list[int]:
    """The objects prompted on a slice strictly nearer to slice z than ``obj_id``'s."""
    own = abs(z - starts[obj_id])
    return [o for o, s in starts.items() if o != obj_id and abs(z - s) < own]


def end_along_z(
    labels: np.ndarray,
    obj_id: int,
    start: int,
    image: Callable[[int], np.ndarray] | None = None,
) -> int:
    """Remove an object from the slices past its end, in place.

    Walking up and down from ``start``, the object ends at the first slice where its mask is
    empty, overlaps the previous slice's mask by less than :data:`MIN_SLICE_OVERLAP` of the
    smaller mask (it jumped onto another object), or (given ``image``) where its contrast
    falls below :data:`MIN_CONTRAST_RATIO` of the start slice's (:func:`mask_contrast`); it
    is erased from that slice on. A 3-D cell is one run of slices, so a mask past the end is a
    false positive. :func:`propagate_along_z` also applies the neighbour rule
    (:data:`MAX_CLAIMED_SHARE`), which needs each object's own mask before the objects are
    composed into labels.

    Args:
        labels: (Z, Y, X) label volume (modified).
        obj_id: the object's label value.
        start: the slice the object was prompted (or last seen centred) on.
        image: ``image(z)`` -> (Y, X) intensities of slice z, for the contrast test; None
            skips it.

    Returns:
        Number of voxels erased.
    """
    gone = _ended_slices(
        lambda z: labels[z] == obj_id,
        labels.shape[0],
        start,
        image,
        lambda z: (labels[z] > 0) & (labels[z] != obj_id),
    )
    erased = 0
    for z in gone:
        hit = labels[z] == obj_id
        erased += int(hit.sum())
        labels[z][hit] = 0
    return erased


def slice_image(session: VideoSession) -> Callable[[int], np.ndarray]:
    """``image(z)``: slice z of a z-session as the model sees it (windowed to [0, 1], channels
    averaged), at full resolution, for :func:`end_along_z`."""

    def image(z: int) -> np.ndarray:
        out = np.zeros(session.frame_shape, np.float32)
        ys, xs = session.frames.roi_slices
        out[ys, xs] = session.frames.normalized(z).mean(axis=2)
        return out

    return image


class _ObjectSlices:
    """Each object's own mask on each slice (as (box, crop)), before objects are composed."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.crops: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}

    def add(self, res) -> None:
        for k, obj_id in enumerate(res.obj_ids):
            self.crops.setdefault(obj_id, {})[res.frame] = (res.boxes[k], res.crops[k])

    def mask(self, obj_id: int, z: int) -> np.ndarray:
        out = np.zeros(self.shape, bool)
        item = self.crops.get(obj_id, {}).get(z)
        if item is not None:
            y0, x0, y1, x1 = item[0]
            out[y0:y1, x0:x1] = item[1]
        return out

    def drop(self, obj_id: int, z: int) -> None:
        self.crops.get(obj_id, {}).pop(z, None)

    def fit_to_image(
        self, starts: dict[int, int], num_slices: int, image: Callable[[int], np.ndarray]
    ) -> None:
        """Fit each object's masks to the image (:mod:`._volume_fit`), one slice at a time:
        its level from its mask on its start slice, then every slice's mask cut to it."""
        fits: dict[int, ImageFit] = {}
        for z in sorted({int(v) for v in starts.values()}):
            ids = [o for o, s in starts.items() if int(s) == z and z in self.crops.get(o, {})]
            if ids:
                img = smooth(image(z))
                for o in ids:
                    fit = fit_level(self.mask(o, z), img)
                    if fit is not None:
                        fits[o] = fit
        for z in range(num_slices):
            todo = [o for o in fits if z in self.crops[o]]
            if not todo:
                continue
            img = smooth(image(z))
            for o in todo:
                box = self.crops[o][z][0]
                cut = fit_slice(fits[o], self.mask(o, z), img, box)
                if cut is not None:
                    self.crops[o][z] = (box, cut)


def propagate_along_z(
    session: VideoSession,
    starts: dict[int, int],
    direction: str = "both",
    guard: bool = True,
    claims: bool = True,
    fit: bool = True,
    previous: np.ndarray | None = None,
) -> Iterator[int]:
    """Propagate a z-session's objects along z, each from its own slice, into its labels.

    Objects prompted on the same slice run together (one encoding per slice, shared through
    the session's encoding cache). Each object's masks are kept apart until all have run,
    fitted to the image (``fit``: :mod:`._volume_fit`), each is ended along z (``guard``:
    :func:`end_along_z`'s rules, then the neighbour rule of ``claims``), and then they are
    written: where two overlap, the object whose own mask the pixel lies deepest in
    (:func:`~._volume_overlap.paint_deepest`), or, for the model's masks from prompts
    (``claims`` without ``fit``), the object whose start slice is nearer (ties: the
    smaller id). Pixels of other labels are kept. Stopping the generator early writes the
    slices done so far.

    Args:
        session: a :class:`VideoSession` over a z-stack (frames are slices).
        starts: {obj_id: first slice} of the objects to propagate.
        direction: ``"forward"`` (increasing z), ``"backward"`` (decreasing z) or ``"both"``.
        guard: erase each object past its ends along z.
        claims: the start slices are prompts (clicks, boxes or masks on those slices): an
            object ends where more than :data:`MAX_CLAIMED_SHARE` of its mask lies on the masks
            of objects prompted on a slice nearer to that slice. False (start slices found by
            tracking, as in 3-D + time): where more than :data:`MAX_SHARED` of its mask lies on
            other objects' masks, :data:`SHARED_RISE` more than on its start slice.
        fit: cut each object's masks to the pixels as bright (or dark) as the object
            (:mod:`._volume_fit`); False keeps the model's masks. On the validation stacks
            (seeds 2000-2009) fitted masks shared out by depth gave a mean 3-D IoU of 0.842,
            by nearer start slice 0.806; the model's masks 0.575 and 0.551.
        previous: (Z, Y, X) labels of the timepoint before (3-D + time, ``claims`` False),
            or None: where masks overlap, the object that held a pixel there counts
            :data:`~._volume_overlap.HELD_BONUS` pixels deeper, and the neighbour rule is
            that of the voxels held then: an object ends where more than
            :data:`~._volume_identity.MAX_HELD_SHARE` of its mask lies on other objects'
            voxels of the timepoint before (the share rise ended the cell whose neighbour's
            mask lay on it, not the neighbour; :mod:`._volume_identity`).

    Yields:
        The index of each slice visited (repeated when several start slices exist).
    """
    if direction not in ("forward", "backward", "both"):
        raise ValueError(f"direction must be 'forward', 'backward' or 'both', got {direction!r}")
    groups: dict[int, list[int]] = {}
    for obj_id, z in starts.items():
        groups.setdefault(int(z), []).append(int(obj_id))
    found = _ObjectSlices(session.frame_shape)
    try:
        for z, ids in sorted(groups.items()):
            for res in session.propagate(start=z, direction=direction, obj_ids=ids):
                found.add(res)
                yield res.frame
    finally:
        _compose(session, found, starts, guard, claims, fit, previous)


def _compose(
    session: VideoSession,
    found: _ObjectSlices,
    starts: dict[int, int],
    guard: bool,
    claims: bool = True,
    fit: bool = True,
    previous: np.ndarray | None = None,
) -> None:
    nz = session.num_frames
    if fit:
        found.fit_to_image(starts, nz, slice_image(session))
    if guard:
        share = MAX_CLAIMED_SHARE if fit else UNFITTED_CLAIMED_SHARE
        # 3-D + time: the labels of the timepoint before share the overlaps out instead
        _guard(found, starts, nz, slice_image(session), claims, share, previous=previous)
    if not session.keep_labels:
        return
    labels = session.labels()
    ids = np.asarray(sorted(starts), dtype=labels.dtype)
    for z in range(nz):
        present = [o for o in starts if z in found.crops.get(o, {})]
        lab = labels[z]
        mine = np.isin(lab, ids)
        if not present and not mine.any():
            continue
        lab[mine] = 0
        free = lab == 0
        if fit or not claims:  # each pixel to the object whose mask it lies deepest in
            held = None if previous is None else previous[z]
            paint_deepest(lab, [(o, found.mask(o, z)) for o in sorted(present)], free, held)
            continue
        # the model's masks from prompts: nearest start slice first, so it is painted last
        # and wins
        for o in sorted(present, key=lambda o: (-abs(z - starts[o]), -o)):
            m = found.mask(o, z) & free
            lab[m] = o
    if guard and claims:
        _end_where_outweighed(labels, found, starts)


def _end_where_outweighed(labels: np.ndarray, found: _ObjectSlices, starts: dict[int, int]) -> None:
    """End each prompted object on the first slice, walking away from its start slice, where
    it kept less than :data:`MIN_KEPT_SHARE` of its own mask when the overlaps were shared
    out: the rest lies deeper in other objects' masks, so the slice belongs to them (erased
    from that slice on, in place; ``labels`` is (Z, Y, X))."""
    nz = labels.shape[0]
    for o in sorted(starts):
        for step in (1, -1):
            z = int(starts[o]) + step
            while 0 <= z < nz:
                n = int(np.count_nonzero(found.mask(o, z)))
                if n and np.count_nonzero(labels[z] == o) < MIN_KEPT_SHARE * n:
                    past = labels[z:] if step > 0 else labels[: z + 1]
                    past[past == o] = 0
                    break
                z += step


def _guard(
    found: _ObjectSlices,
    starts: dict[int, int],
    num_slices: int,
    image: Callable[[int], np.ndarray],
    claims: bool = True,
    claimed_share: float = MAX_CLAIMED_SHARE,
    neighbour_rule: bool = True,
    previous: np.ndarray | None = None,
) -> None:
    """End every object along z, in two rounds, in place.

    First each object alone (its masks' overlap from slice to slice and its contrast), then the
    neighbour rule against the masks the others kept: a neighbour's mask past its own end
    (SAM 2 keeps one on empty slices) is not a reason to end an object it lies on. With
    ``claims`` the start slices are prompts, and an object ends where more than
    ``claimed_share`` (:data:`MAX_CLAIMED_SHARE` for fitted masks,
    :data:`UNFITTED_CLAIMED_SHARE` for the model's) of its mask lies on objects prompted
    nearer to the slice; without,
    where its share on all other masks exceeds :data:`MAX_SHARED` and has risen by
    :data:`SHARED_RISE` since its start slice. Given ``previous`` (the (Z, Y, X) labels of
    the timepoint before, 3-D + time), instead where more than
    :data:`~._volume_identity.MAX_HELD_SHARE` of its mask lies on voxels other objects held
    then (:func:`~._volume_identity.held_by_others`). ``neighbour_rule`` False: the first
    round only.
    """

    def pixels(ids: list[int], z: int) -> np.ndarray:
        out = np.zeros(found.shape, bool)
        for o in ids:
            out |= found.mask(o, z)
        return out

    def claimed_rule(obj_id: int) -> Callable[[int, np.ndarray], bool]:
        def slid(z: int, cur: np.ndarray) -> bool:
            near = pixels(_nearer(starts, obj_id, z), z)
            return np.count_nonzero(cur & near) > claimed_share * np.count_nonzero(cur)

        return slid

    def rise_rule(obj_id: int, others: list[int]) -> Callable[[int, np.ndarray], bool]:
        start = int(starts[obj_id])
        first = found.mask(obj_id, start)
        limit = MAX_SHARED
        if first.any():
            share = np.count_nonzero(first & pixels(others, start)) / np.count_nonzero(first)
            limit = max(MAX_SHARED, share + SHARED_RISE)

        def slid(z: int, cur: np.ndarray) -> bool:
            return np.count_nonzero(cur & pixels(others, z)) > limit * np.count_nonzero(cur)

        return slid

    def held_rule(obj_id: int) -> Callable[[int, np.ndarray], bool]:
        def slid(z: int, cur: np.ndarray) -> bool:
            return held_by_others(cur, previous[z], obj_id) > MAX_HELD_SHARE

        return slid

    def ended(obj_id: int, neighbours: bool) -> list[int]:
        others = [o for o in starts if o != obj_id]
        slid = None
        if neighbours and previous is not None:
            slid = held_rule(obj_id)
        elif neighbours:
            slid = claimed_rule(obj_id) if claims else rise_rule(obj_id, others)
        return _ended_slices(
            lambda z: found.mask(obj_id, z),
            num_slices,
            int(starts[obj_id]),
            image,
            lambda z: pixels(others, z),
            slid,
        )

    for neighbours in (False, True) if neighbour_rule else (False,):
        gone = {obj_id: ended(obj_id, neighbours) for obj_id in starts}  # all before any drop
        for obj_id, slices in gone.items():
            for z in slices:
                found.drop(obj_id, z)


def z_settings(settings: MemorySettings | None, num_slices: int) -> MemorySettings:
    """Settings for a z-session: the encodings of a whole stack (up to 64 slices) stay cached,
    so objects starting on different slices share them."""
    base = settings or MemorySettings()
    cache = max(base.feature_cache_frames, min(num_slices, 64))
    return dataclasses.replace(base, feature_cache_frames=cache)


#: a 3-D cell's central slice (the slice it is followed on through time) is the slice nearest
#: its mask's z centroid among the slices holding at least this share of the widest slice's
#: area (:func:`central_slice`; chosen on the 4-D validation movies, seeds 2000-2003, from
#: 0.5, 0.75 and 1.0, the widest slice alone; docs/3d_measurements.md, *Memory through time*)
CENTRE_SHARE = 0.75


def central_slice(mask: np.ndarray, share: float = CENTRE_SHARE) -> int | None:
    """Central slice of a (Z, Y, X) mask, or None for an empty mask.

    The slice nearest the mask's voxel-weighted z centroid among the slices holding at least
    ``share`` of the widest slice's area (the wider one on ties). The model's masks hardly
    shrink towards a cell's tips, so the widest slice alone can be a tip, or a slice past the
    cell's end: a cell followed through time on it is lost (docs/3d_measurements.md, *Memory through
    time*).

    Args:
        mask: (Z, Y, X) bool mask.
        share: fraction in (0, 1] of the widest slice's area a candidate slice holds
            (1.0: the widest slice, nearest the centroid on ties).
    """
    areas = mask.reshape(mask.shape[0], -1).sum(1)
    if not areas.any():
        return None
    zc = float((areas * np.arange(len(areas))).sum() / areas.sum())
    best = np.flatnonzero(areas >= share * areas.max())
    dist = np.abs(best - zc)
    near = best[dist == dist.min()]
    return int(near[np.argmax(areas[near])])
