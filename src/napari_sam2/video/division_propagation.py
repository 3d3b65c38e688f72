"""Propagation with cell divisions and lost/found tracks: a session's objects follow its lineage.

:func:`propagate_with_divisions` runs :meth:`VideoSession.propagate
<napari_sam2.video.session.VideoSession.propagate>` forward and feeds every frame to a
:class:`~napari_sam2.video.lineage.DivisionTracker` (which decides, on the label images, when a
cell divided, was lost or was found again). This module keeps the session in step with those
decisions: daughters and reappearing objects become real session objects (a mask prompt on
their first frame, so SAM 2 tracks them separately from then on), the mother (or the lost
object) is retired after that frame with its earlier labels kept, and ``session.lineage``
collects the divisions for :func:`napari_sam2.io.ctc.save_ctc` and
:func:`napari_sam2.io.tracks.tracks_from_labels`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ._sparse import crop_to_box
from .lineage import DivisionSettings, DivisionTracker
from .session import FrameResult

if TYPE_CHECKING:  # pragma: no cover
    from .session import VideoSession

__all__ = ["propagate_with_divisions"]


def _retire(session: VideoSession, obj_id: int, from_frame: int) -> None:
    """Stop tracking an object and clear its labels from ``from_frame`` on (earlier labels are
    kept; ``from_frame`` may be T, the number of frames: every label kept); an id that is no
    session object only loses those labels."""
    last = session.num_frames - 1
    if obj_id not in session.obj_ids:
        session.label_volume.erase(obj_id, range(from_frame, last + 1))
        return
    kept = session.labels()[last] == obj_id if from_frame > last else None
    session.remove_object(obj_id, min(from_frame, last))
    if kept is not None:  # a division on the last frame: its labels stay
        session.labels()[last][kept] = obj_id


def propagate_with_divisions(
    session: VideoSession,
    settings: DivisionSettings | None = None,
    *,
    start: int | None = None,
    stop: int | None = None,
    obj_ids: Sequence[int] | None = None,
    tracker: DivisionTracker | None = None,
) -> Iterator[FrameResult]:
    """Propagate forward with division and lost/found tracking.

    Runs ``session.propagate(start, "forward", stop, obj_ids)`` and feeds every frame to a
    :class:`DivisionTracker` over the session's label volume. On a division the daughters get
    a mask prompt on their first frame (``session.add_mask``), the mother is retired (no longer
    a session object; her labels before the split stay) and ``session.lineage`` records
    ``{daughter: mother}``; a reappearing lost object (and an object split from its first
    frame on) likewise continues as new object(s), without parent. Then propagation restarts
    on the next frame with the new objects, so SAM 2 tracks each daughter on its own. The
    label volume keeps the tracker's pixels on the daughters' first frame (the mask prompt's
    low-resolution copy is only the model's memory). Daughters recorded in
    ``session.lineage`` are kept off frames before their birth (when re-propagating from
    earlier frames).

    Args:
        session: a session with ``keep_labels=True``.
        settings: :class:`DivisionSettings` (default: on; ignored when ``tracker`` is given).
        start, stop: first and last frame (as for ``propagate``).
        obj_ids: objects to propagate (default: all with prompts); new objects are added.
        tracker: a :class:`DivisionTracker` to use (to read its events); default: a new one.

    Yields:
        A :class:`FrameResult` per frame, with ids as relabelled by the tracker (frames that a
        division rewrote retroactively were yielded before: re-read them from
        ``session.labels()``).
    """
    if not session.keep_labels:
        raise ValueError("division tracking edits the label volume: use keep_labels=True")
    vol = session.labels()
    top = max(
        [int(vol.max(initial=0)), *session.obj_ids, *session.lineage, *session.lineage.values()]
    )
    if tracker is None:
        tracker = DivisionTracker(settings or DivisionSettings())
    tracker.next_id = max(tracker.next_id or 1, top + 1)
    ids = None if obj_ids is None else [int(i) for i in obj_ids]
    births: dict[int, int] = {}
    for d in session.lineage:
        frames = session.prompted_frames(d) if d in session.obj_ids else []
        if frames:
            births[d] = frames[0]
    last = session.num_frames - 1 if stop is None else int(stop)
    while True:
        restart = None
        gen = session.propagate(start, "forward", stop, ids)
        try:
            for res in gen:
                t = res.frame
                vol = session.labels()
                lab = vol[t]
                unborn = [d for d, b in births.items() if b > t]
                if unborn:
                    lab[np.isin(lab, unborn)] = 0
                events = tracker.update(res, lab)
                for ev in events:
                    if ev.kind == "lost":
                        continue
                    first = ev.frame
                    for new in ev.new_ids:
                        mask = vol[first] == new
                        if mask.any():
                            session.add_mask(first, new, mask)
                            # keep the tracked pixels (the prompt's low-resolution copy can
                            # lose thin parts)
                            f = vol[first]
                            f[(f == new) & ~mask] = 0
                            f[mask & (f == 0)] = new
                            births[new] = first
                            if ids is not None:
                                ids.append(new)
                        if ev.kind == "division":
                            session.lineage[new] = ev.obj_id
                    _retire(session, ev.obj_id, t + 1)
                    if ids is not None and ev.obj_id in ids:
                        ids.remove(ev.obj_id)
                    restart = t + 1
                yield _remap(res, lab, tracker, unborn)
                if restart is not None:
                    break
        finally:
            gen.close()
        if restart is None or restart > last:
            return
        start = restart


def _remap(res: FrameResult, lab: np.ndarray, tracker: DivisionTracker, unborn) -> FrameResult:
    """The FrameResult of a frame after the tracker relabelled it."""
    ids, boxes, crops, scores = [], [], [], []
    for k, i in enumerate(res.obj_ids):
        targets = tracker.resolve(i)
        if targets == [i]:
            ids.append(i)
            y0, x0, y1, x1 = res.boxes[k]
            crop = res.crops[k]
            boxes.append(res.boxes[k])
            crops.append(crop & (lab[y0:y1, x0:x1] == i) if i in unborn else crop)
            scores.append(res.scores[k])
            continue
        for r in targets:
            if r in ids:
                continue
            box, crop = crop_to_box(lab == r)
            ids.append(r)
            boxes.append(box)
            crops.append(crop)
            scores.append(res.scores[k])
    return FrameResult(
        res.frame, ids, scores=scores, boxes=np.asarray(boxes), crops=crops, shape=lab.shape
    )
