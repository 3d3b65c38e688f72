"""Cell divisions and lost/found tracks: a post-processor over a propagation.

SAM 2 tracks each object with one id. When a cell divides, its mask usually splits into two
pieces that keep being tracked under the mother's id; when a cell leaves the field (or the
model loses it) and something reappears later, it keeps the old id. :class:`DivisionTracker`
turns this into a lineage, frame by frame, editing the label images in place:

* **Division.** An object whose mask falls apart into (at least) two 4-connected pieces that
  are each >= ``min_fraction`` of the mother's area (its area on the last frame before the
  split) and >= ``min_area`` pixels, on ``min_frames`` consecutive frames, has divided: the
  mother's track ends on the frame before the split, the two largest pieces on the split frame
  become two daughters with new ids (the next free ids), linked in ``lineage`` as
  ``{daughter: mother}``. The daughters' pixels are relabelled from the split frame on (the
  split frames already seen are rewritten, at most ``min_frames - 1`` back), and pixels the
  mother's id keeps getting afterwards are split between the daughters (each piece goes to the
  daughter nearest to it on the previous frame; a piece that straddles both is cut along the
  line of equal distance). A split that re-merges within ``min_frames`` frames, or a fragment
  below the size limits, is not a division. Daughters that still touch can optionally be cut
  at a narrow neck (``DivisionSettings.neck_ratio``).
* **Lost and found.** An object absent (< ``min_area`` pixels, or a presence score < ``min_score``)
  on ``lost_frames`` consecutive frames has a finished track. If it reappears later, it
  becomes a new track: a new id, no parent.

:func:`track_divisions` runs the tracker over a whole (T, H, W) label volume;
:func:`~napari_sam2.video.division_propagation.propagate_with_divisions` runs it alongside a
propagation of a :class:`~napari_sam2.video.session.VideoSession`, whose objects it updates.

The label-image operations (boxes, pieces, id maps) live in ``_division_ops.py``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..io.label_checks import check_labels
from ._division_ops import _Alias, _boxes, _crop, _Division, _mask_box, _pieces
from .session import FrameResult

__all__ = ["DivisionSettings", "DivisionTracker", "TrackEvent", "track_divisions"]


@dataclass
class DivisionSettings:
    """How divisions and lost/found tracks are detected (on by default: the cell presets).

    Attributes:
        enabled: detect divisions.
        min_frames: a split must persist this many consecutive frames (k).
        min_fraction: each daughter piece must have at least this fraction of the mother's
            area on the frame before the split (smaller pieces are fragments).
        min_area: and at least this many pixels; an object with fewer pixels counts as
            absent.
        lost_and_found: end tracks of absent objects, and give reappearing ones new ids.
        lost_frames: consecutive absent frames after which a track ends.
        min_score: presence probability (``FrameResult.scores``) below which an object counts
            as absent even if it has pixels.
        connectivity: 1: pieces are 4-connected, 2: 8-connected.
        neck_ratio: None (default): pieces are connected components. A value in (0, 1) also
            cuts a component at narrow necks, for daughters that still touch: its pieces are
            the connected parts where the distance to the mask's edge exceeds ``neck_ratio``
            times the component's largest such distance, grown back over the mask (each pixel
            to the nearest part). 0.5 cuts two touching disks whose contact is narrower than
            their radius; an ellipse is never cut.
    """

    enabled: bool = True
    min_frames: int = 3
    min_fraction: float = 0.2
    min_area: int = 4
    lost_and_found: bool = True
    lost_frames: int = 3
    min_score: float = 0.5
    connectivity: int = 1
    neck_ratio: float | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first out-of-range field."""
        if self.min_frames < 1:
            raise ValueError(f"min_frames must be >= 1, got {self.min_frames}")
        if not 0.0 < self.min_fraction <= 0.5:
            raise ValueError(f"min_fraction must be in (0, 0.5], got {self.min_fraction}")
        if self.min_area < 1:
            raise ValueError(f"min_area must be >= 1 pixel, got {self.min_area}")
        if self.lost_frames < 1:
            raise ValueError(f"lost_frames must be >= 1, got {self.lost_frames}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score}")
        if self.connectivity not in (1, 2):
            raise ValueError(f"connectivity must be 1 or 2, got {self.connectivity}")
        if self.neck_ratio is not None and not 0.0 < self.neck_ratio < 1.0:
            raise ValueError(f"neck_ratio must be None or in (0, 1), got {self.neck_ratio}")


@dataclass(frozen=True)
class TrackEvent:
    """Something the tracker decided.

    Attributes:
        kind: ``"division"``, ``"split"`` (an object in two pieces from its first frame on:
            the pieces become two new tracks without parent), ``"lost"`` or ``"found"``.
        frame: division/split: the new tracks' first frame (the mother ends one frame
            earlier); lost: the object's last frame present; found: the new track's first frame.
        obj_id: the mother, the lost object, or the object whose reappearance was renamed.
        new_ids: the two daughters, or the new id of a found object (empty for lost).
    """

    kind: str
    frame: int
    obj_id: int
    new_ids: tuple[int, ...] = ()


# ----------------------------------------------------------------------------- tracker


@dataclass
class _Track:
    first: int
    last: int
    ref_area: int | None = None  # area on the last frame seen in one piece
    absent: int = 0
    ended: bool = False
    divided: bool = False
    split_start: int | None = None
    split_count: int = 0
    split_ref: int = 0


@dataclass
class DivisionTracker:
    """Detect divisions and lost/found tracks in label images fed frame by frame.

    Feed consecutive frames with :meth:`update`; each label image is edited in place (pass
    views of the label volume). Because a split must persist ``min_frames`` frames, a division
    rewrites up to ``min_frames - 1`` frames fed earlier (their arrays are kept): frames up to
    :attr:`final_frame` no longer change.

    Args:
        settings: :class:`DivisionSettings` (default: on).
        next_id: first id to hand out to daughters and found objects (None: one above the
            largest id seen so far; pass it when later frames may hold larger ids).

    Attributes:
        lineage: {daughter_id: mother_id} of the divisions found.
        events: every :class:`TrackEvent`, in order.
    """

    settings: DivisionSettings = field(default_factory=DivisionSettings)
    next_id: int | None = None
    lineage: dict[int, int] = field(default_factory=dict)
    events: list[TrackEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings.validate()
        self._tracks: dict[int, _Track] = {}
        self._maps: list[_Alias | _Division] = []
        self._buffer: deque[tuple[int, np.ndarray]] = deque(maxlen=self.settings.min_frames)
        self._last_t: int | None = None
        self._structure = ndimage.generate_binary_structure(2, self.settings.connectivity)

    # ------------------------------------------------------------------ queries
    @property
    def final_frame(self) -> int | None:
        """Last frame that later updates can no longer change (None before any update)."""
        if self._last_t is None:
            return None
        k = self.settings.min_frames if self.settings.enabled else 1
        return self._last_t - k + 1

    def resolve(self, obj_id: int) -> list[int]:
        """Ids that pixels labelled ``obj_id`` get now (itself, its daughters, its new id...)."""
        ids = {int(obj_id)}
        for mp in self._maps:
            if any(s in ids for s in mp.sources()):
                ids.difference_update(mp.sources())
                ids.update(mp.targets())
        return sorted(ids)

    def track_span(self, obj_id: int) -> tuple[int, int] | None:
        """(first, last) frame of a track seen so far (a divided mother ends before the
        split), or None for an unknown id."""
        tr = self._tracks.get(int(obj_id))
        return None if tr is None else (tr.first, tr.last)

    # ------------------------------------------------------------------ feeding
    def _alloc(self, dtype: np.dtype) -> int:
        assert self.next_id is not None
        new = self.next_id
        if np.dtype(dtype).kind in "iu" and new > np.iinfo(dtype).max:
            raise ValueError(
                f"new track id {new} does not fit the label dtype {np.dtype(dtype).name}; "
                "use a uint32 label volume"
            )
        self.next_id += 1
        return new

    def update(
        self,
        frame: int | FrameResult,
        labels: np.ndarray,
        scores: Mapping[int, float] | None = None,
        obj_ids: Collection[int] | None = None,
    ) -> list[TrackEvent]:
        """Process one frame.

        Args:
            frame: frame index t (one above the previous update's), or a
                :class:`~napari_sam2.video.session.FrameResult` (its frame, scores and object
                ids are used).
            labels: (H, W) integer label image of that frame, edited in place.
            scores: optional {obj_id: presence probability}; ids without a score count as
                present when they have pixels.
            obj_ids: the objects to track (and the ids they were given since); other labels
                are left alone (relabelled only when they are a divided mother's or a renamed
                object's). Default: all labels of the frame (of the result for a FrameResult).

        Returns:
            The events decided on this frame.
        """
        if isinstance(frame, FrameResult):
            if scores is None:
                scores = {int(i): float(s) for i, s in zip(frame.obj_ids, frame.scores)}
            if obj_ids is None:
                obj_ids = frame.obj_ids
            frame = frame.frame
        t = int(frame)
        if self._last_t is not None and t != self._last_t + 1:
            raise ValueError(
                f"frames must be fed in order: got frame {t} after frame {self._last_t}"
            )
        lab = labels
        if not isinstance(lab, np.ndarray):
            raise ValueError("labels must be a (H, W) integer numpy array (edited in place)")
        check_labels(lab, ndims=(2,))
        st = self.settings
        boxes = _boxes(lab)
        if self.next_id is None or (boxes and max(boxes) >= self.next_id):
            self.next_id = max(self.next_id or 1, max(boxes, default=0) + 1)
        for mp in self._maps:
            mp.apply(lab, boxes)
        eff: dict[int, float] = {}
        if scores:
            for src, sc in scores.items():
                for r in self.resolve(int(src)):
                    eff.setdefault(r, float(sc))
        allowed = None
        if obj_ids is not None:
            allowed = {r for i in obj_ids for r in self.resolve(int(i))}
        events: list[TrackEvent] = []
        for obj_id in sorted(boxes):
            if obj_id not in boxes or eff.get(obj_id, 1.0) < st.min_score:
                continue
            if allowed is not None and obj_id not in allowed:
                continue
            piece = _crop(lab, boxes[obj_id]) == obj_id
            if np.count_nonzero(piece) < st.min_area:
                continue  # a speck: counts as absent
            tr = self._tracks.get(obj_id)
            if tr is None:
                tr = self._tracks[obj_id] = _Track(first=t, last=t)
            elif tr.divided:
                continue  # cannot happen: a mother's pixels are always handed to her daughters
            elif tr.ended:
                new = self._alloc(lab.dtype)
                alias = _Alias(obj_id, new)
                alias.apply(lab, boxes)
                self._maps.append(alias)
                events.append(TrackEvent("found", t, obj_id, (new,)))
                obj_id = new
                tr = self._tracks[new] = _Track(first=t, last=t)
            tr.last, tr.absent = t, 0
            self._check_split(t, obj_id, tr, piece, lab, boxes, events)
        for obj_id, tr in self._tracks.items():
            if tr.ended or tr.last == t or (allowed is not None and obj_id not in allowed):
                continue
            tr.absent += 1
            tr.split_start, tr.split_count = None, 0
            if st.lost_and_found and tr.absent >= st.lost_frames:
                tr.ended = True
                events.append(TrackEvent("lost", tr.last, obj_id))
        self._buffer.append((t, lab))
        self._last_t = t
        self.events.extend(events)
        return events

    def _check_split(self, t, obj_id, tr: _Track, piece, lab, boxes, events) -> None:
        st = self.settings
        area = int(np.count_nonzero(piece))
        big = 0
        ref = tr.split_ref if tr.split_start is not None else (tr.ref_area or area)
        if st.enabled:
            comps, n = _pieces(piece, self._structure, st.neck_ratio)
            if n >= 2:
                sizes = np.bincount(comps.ravel())[1:]
                big = int(np.count_nonzero(sizes >= max(st.min_area, st.min_fraction * ref)))
        if big < 2:
            tr.split_start, tr.split_count, tr.ref_area = None, 0, area
            return
        if tr.split_start is None:
            tr.split_start, tr.split_count, tr.split_ref = t, 1, ref
        else:
            tr.split_count += 1
        if tr.split_count >= st.min_frames:
            self._divide(t, obj_id, tr, lab, boxes, events)

    def _divide(self, c, mother, tr: _Track, lab, boxes, events) -> None:
        s = tr.split_start
        assert s is not None
        d1, d2 = self._alloc(lab.dtype), self._alloc(lab.dtype)
        st = self.settings
        div = _Division(mother, (d1, d2), self._structure, st.min_fraction, st.neck_ratio)
        for u, arr in list(self._buffer) + [(c, lab)]:
            if u < s:
                continue
            if u == c:
                div.apply(arr, boxes)
            else:
                box = _mask_box(arr == mother)
                if box is not None:
                    div.apply(arr, {mother: box})
        self._maps.append(div)
        tr.ended, tr.divided, tr.last = True, True, s - 1
        tr.split_start, tr.split_count = None, 0
        # in pieces since its first frame: two new tracks, no mother to link them to
        kind = "division" if s > tr.first else "split"
        for d in (d1, d2):
            box = boxes.get(d)
            area = 0 if box is None else int(np.count_nonzero(_crop(lab, box) == d))
            self._tracks[d] = _Track(first=s, last=c, ref_area=area or None)
            if kind == "division":
                self.lineage[d] = mother
        events.append(TrackEvent(kind, s, mother, (d1, d2)))


def track_divisions(
    labels,
    settings: DivisionSettings | None = None,
    *,
    scores: Sequence[Mapping[int, float] | None] | None = None,
    inplace: bool = False,
) -> tuple[np.ndarray, dict[int, int], list[TrackEvent]]:
    """Run :class:`DivisionTracker` over a whole label volume.

    Args:
        labels: (T, H, W) integer labels (a numpy array when ``inplace``).
        settings: :class:`DivisionSettings`.
        scores: optional per-frame {obj_id: presence probability}.
        inplace: edit ``labels`` itself instead of a copy.

    Returns:
        (labels (T, H, W) with daughters and new tracks relabelled, lineage
        {daughter_id: mother_id}, events).
    """
    vol = labels if inplace else np.array(labels, copy=True)
    if not isinstance(vol, np.ndarray):
        raise ValueError("labels must be a (T, H, W) integer numpy array")
    check_labels(vol, ndims=(3,))
    tracker = DivisionTracker(settings or DivisionSettings(), next_id=int(vol.max(initial=0)) + 1)
    for t in range(vol.shape[0]):
        tracker.update(t, vol[t], None if scores is None else scores[t])
    return vol, dict(tracker.lineage), list(tracker.events)
