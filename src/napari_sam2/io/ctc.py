"""Cell Tracking Challenge (CTC) export: result folders and ground-truth folders.

CTC tracks must be contiguous in time, so an object id that disappears and
reappears is split into several *segments*, each a separate CTC track label.
:func:`track_segments` computes that split (shared with the napari Tracks
export in :mod:`napari_sam2.io.tracks`), :func:`save_ctc` writes a RESULT folder
and :func:`save_ctc_ground_truth` a GT folder for evaluation.
"""

from __future__ import annotations

import bisect
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from napari_sam2.io.label_checks import check_labels
from napari_sam2.io.tiff import atomic_open

__all__ = [
    "TrackSegment",
    "frame_ids",
    "relabel_frame",
    "save_ctc",
    "save_ctc_ground_truth",
    "track_segments",
]

CTC_MAX_LABEL = 65535  # CTC masks and track labels are 16-bit


@dataclass(frozen=True)
class TrackSegment:
    """One time-contiguous piece of an object's track.

    Attributes:
        label: Track label (CTC ``L``; napari track id).
        obj_id: The object id in the input labels.
        begin: First frame (inclusive).
        end: Last frame (inclusive).
        parent: Label of the parent segment (CTC ``P``); 0 = none.
    """

    label: int
    obj_id: int
    begin: int
    end: int
    parent: int


def frame_ids(labels: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Sorted non-zero object ids present in each frame.

    Args:
        labels: (T, ...) label array; read one frame at a time (works for
            lazy arrays such as dask/zarr).

    Returns:
        List of T int64 arrays.
    """
    out = []
    for t in range(len(labels)):
        ids = np.unique(np.asarray(labels[t]))
        out.append(ids[ids != 0].astype(np.int64))
    return out


def _runs(frames: list[int]) -> list[tuple[int, int]]:
    """Split sorted frame indices into maximal consecutive (begin, end) runs."""
    runs: list[tuple[int, int]] = []
    for t in frames:
        if runs and t == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs


def track_segments(
    ids_per_frame: Sequence[Iterable[int]],
    lineage: Mapping[int, int] | None = None,
    *,
    link_gaps: bool = False,
    max_label: int | None = None,
) -> list[TrackSegment]:
    """Split object tracks into time-contiguous segments with parent links.

    Rules:
      * Each maximal run of consecutive frames in which an object id is present
        becomes one segment. The first segment of an object keeps the object id
        as its label; later segments (reappearances after a gap) get new labels
        above the largest object id, in order of (begin frame, object id).
      * A reappearance has parent 0, or the previous segment of the same object
        when ``link_gaps`` is True (a gap-closing link).
      * ``lineage`` {daughter_id: parent_id}: the daughter's first segment gets as
        parent the parent object's last segment that ends before the daughter's
        first frame. If the parent object is still present in that frame (the
        mother kept its id through the division), its segment is split there:
        the part from the division on becomes a new segment whose parent is the
        part before, as CTC requires parents to end before their children begin.
      * If ``max_label`` is given and a label would exceed it, all segments are
        relabelled 1..N in order of (begin frame, object id).

    Args:
        ids_per_frame: For each frame t, the object ids present (0 ignored).
        lineage: Optional {daughter_obj_id: parent_obj_id} divisions. Entries
            naming ids absent from the labels are skipped with a warning.
        link_gaps: Link a reappearance to the object's previous segment.
        max_label: Largest allowed label (65535 for CTC), or None.

    Returns:
        Segments sorted by label.

    Raises:
        ValueError: a daughter is its own parent, the parent object has no
            frame before the daughter's first frame, or there are more
            segments than ``max_label``.
    """
    presence: dict[int, list[int]] = {}
    for t, ids in enumerate(ids_per_frame):
        for i in ids:
            i = int(i)
            if i != 0:
                presence.setdefault(i, []).append(t)

    # Per object: list of [begin, end, kind]; kind "first" | "gap" | "split".
    segs: dict[int, list[list]] = {}
    for obj, frames in presence.items():
        runs = _runs(frames)
        segs[obj] = [[b, e, "first" if k == 0 else "gap"] for k, (b, e) in enumerate(runs)]

    divisions: list[tuple[int, int]] = []  # (daughter, parent)
    for daughter, parent in (lineage or {}).items():
        daughter, parent = int(daughter), int(parent)
        if parent == 0:
            continue
        if daughter == parent:
            raise ValueError(f"lineage: object {daughter} is its own parent")
        if daughter not in segs or parent not in segs:
            missing = daughter if daughter not in segs else parent
            warnings.warn(
                f"lineage entry {daughter} -> {parent} skipped: object {missing} "
                "is not in the labels",
                stacklevel=2,
            )
            continue
        divisions.append((daughter, parent))

    # Split mothers that keep their id through a division.
    for daughter, parent in divisions:
        birth = segs[daughter][0][0]
        psegs = segs[parent]
        for k, (b, e, _kind) in enumerate(psegs):
            if b < birth <= e:
                psegs[k][1] = birth - 1
                psegs.insert(k + 1, [birth, e, "split"])
                break

    # Labels: first segments keep the object id, the rest count up from max id.
    max_obj = max(segs, default=0)
    extra = sorted((s[0], obj, k) for obj, lst in segs.items() for k, s in enumerate(lst) if k > 0)
    label_of: dict[tuple[int, int], int] = {(obj, 0): obj for obj in segs}
    for n, (_b, obj, k) in enumerate(extra, start=1):
        label_of[(obj, k)] = max_obj + n
    if max_label is not None and max_obj + len(extra) > max_label:
        order = sorted((lst[k][0], obj, k) for obj, lst in segs.items() for k in range(len(lst)))
        if len(order) > max_label:
            raise ValueError(f"{len(order)} track segments exceed the label limit {max_label}")
        label_of = {(obj, k): n for n, (_b, obj, k) in enumerate(order, start=1)}

    parent_of: dict[tuple[int, int], int] = {}
    for obj, lst in segs.items():
        for k, (_b, _e, kind) in enumerate(lst):
            if kind == "split" or (kind == "gap" and link_gaps):
                parent_of[(obj, k)] = label_of[(obj, k - 1)]
    for daughter, parent in divisions:
        birth = segs[daughter][0][0]
        before = [k for k, s in enumerate(segs[parent]) if s[1] < birth]
        if not before:
            raise ValueError(
                f"lineage: parent {parent} of object {daughter} is not present before "
                f"frame {birth}, where the daughter first appears"
            )
        parent_of[(daughter, 0)] = label_of[(parent, before[-1])]

    out = [
        TrackSegment(label_of[(obj, k)], obj, s[0], s[1], parent_of.get((obj, k), 0))
        for obj, lst in segs.items()
        for k, s in enumerate(lst)
    ]
    return sorted(out, key=lambda s: s.label)


class _FrameLookup:
    """Maps (frame, obj_id) -> segment label."""

    def __init__(self, segments: Iterable[TrackSegment]) -> None:
        per_obj: dict[int, list[tuple[int, int]]] = {}
        for s in segments:
            per_obj.setdefault(s.obj_id, []).append((s.begin, s.label))
        self._begins = {o: [b for b, _ in sorted(v)] for o, v in per_obj.items()}
        self._labels = {o: [lab for _, lab in sorted(v)] for o, v in per_obj.items()}

    def __call__(self, t: int, obj: int) -> int:
        k = bisect.bisect_right(self._begins[obj], t) - 1
        return self._labels[obj][k]


def relabel_frame(
    frame: np.ndarray, t: int, segments: Iterable[TrackSegment] | _FrameLookup, dtype=np.uint16
) -> np.ndarray:
    """Replace object ids in frame ``t`` by their segment labels.

    Args:
        frame: (Y, X) or (Z, Y, X) integer labels of frame ``t``.
        t: Frame index.
        segments: Output of :func:`track_segments` for the whole movie.
        dtype: Output dtype.

    Returns:
        Array like ``frame`` with segment labels (0 stays 0).
    """
    lookup = segments if isinstance(segments, _FrameLookup) else _FrameLookup(segments)
    frame = np.asarray(frame)
    ids, inverse = np.unique(frame, return_inverse=True)
    new = np.array([0 if i == 0 else lookup(t, int(i)) for i in ids], dtype=dtype)
    return new[inverse].reshape(frame.shape)


def _write_tif(path: Path, data: np.ndarray) -> None:
    # Per-frame masks skip fsync (several ms each, i.e. seconds for long movies);
    # the rename still guarantees no half-written mask on errors or crashes.
    with atomic_open(path, "wb", durable=False) as fh:
        tifffile.imwrite(fh, data, photometric="minisblack")


def _write_track_file(path: Path, segments: Sequence[TrackSegment]) -> None:
    with atomic_open(path, "w", encoding="ascii", newline="\n") as fh:
        for s in segments:
            fh.write(f"{s.label} {s.begin} {s.end} {s.parent}\n")


def _n_digits(n_frames: int) -> int:
    return max(3 if n_frames <= 1000 else 4, len(str(max(n_frames - 1, 0))))


def _write_masks(
    folder: Path,
    prefix: str,
    labels,
    segments: Sequence[TrackSegment],
    frames: Iterable[int] | None = None,
) -> None:
    """Write ``{prefix}{t:0Nd}.tif`` uint16 masks and remove stale ones."""
    n = len(labels)
    digits = _n_digits(n)
    lookup = _FrameLookup(segments)
    written = set()
    for t in range(n) if frames is None else sorted(set(frames)):
        mask = relabel_frame(labels[t], t, lookup)
        name = f"{prefix}{t:0{digits}d}.tif"
        _write_tif(folder / name, mask)
        written.add(name)
    pattern = re.compile(rf"{re.escape(prefix)}\d+\.tif")
    for p in folder.iterdir():
        if pattern.fullmatch(p.name) and p.name not in written:
            p.unlink()


def save_ctc(
    folder: str | os.PathLike,
    labels,
    lineage: Mapping[int, int] | None = None,
    *,
    link_gaps: bool = False,
) -> Path:
    """Write labels as a Cell Tracking Challenge RESULT folder (``XX_RES``).

    Writes, directly into ``folder`` (created if needed):
      * ``mask000.tif``, ``mask001.tif``, ... one uint16 mask per frame (3 digits,
        4 when T > 1000), (Y, X) or (Z, Y, X) like the input frames;
      * ``res_track.txt``: one ``L B E P`` line per track (label, first frame,
        last frame, parent label, 0 = none).

    Object ids that disappear and reappear are split into new track labels (see
    :func:`track_segments`), and the masks are relabelled accordingly; ids that
    would not fit in 16 bits cause a compact 1..N relabelling. Each file is
    written atomically (temporary file + rename). ``mask*.tif`` files already in
    ``folder`` that are not part of this result (e.g. from a longer earlier
    export) are deleted so that the folder stays a valid result. A result with
    no objects at all yields an empty ``res_track.txt``, which CTC tools reject.

    Args:
        folder: Output folder.
        labels: Integer labels (T, Y, X) or (T, Z, Y, X); read frame by frame.
        lineage: Optional {daughter_obj_id: parent_obj_id} divisions.
        link_gaps: Give a reappearing object's new track its previous track as
            parent instead of 0.

    Returns:
        The folder.
    """
    check_labels(labels, ndims=(3, 4))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    segments = track_segments(
        frame_ids(labels), lineage, link_gaps=link_gaps, max_label=CTC_MAX_LABEL
    )
    _write_masks(folder, "mask", labels, segments)
    _write_track_file(folder / "res_track.txt", segments)
    return folder


def save_ctc_ground_truth(
    folder: str | os.PathLike,
    labels,
    lineage: Mapping[int, int] | None = None,
    *,
    seg_frames: Iterable[int] | None = None,
    link_gaps: bool = False,
) -> Path:
    """Write labels as a Cell Tracking Challenge ground-truth folder (``XX_GT``).

    Layout: ``TRA/man_trackTTT.tif`` (full masks used as tracking markers),
    ``TRA/man_track.txt`` (``L B E P`` lines) and ``SEG/man_segTTT.tif``. Tracks
    are split at gaps exactly as in :func:`save_ctc`, so a result written by
    :func:`save_ctc` from the same labels scores 1.0. Meant for evaluating results with
    the CTC metrics (``py-ctcmetrics``).

    Args:
        folder: Output folder (``TRA`` and ``SEG`` are created inside).
        labels: Integer labels (T, Y, X) or (T, Z, Y, X).
        lineage: Optional {daughter_obj_id: parent_obj_id} divisions.
        seg_frames: Frames that get a SEG mask (default: all).
        link_gaps: Give a reappearance its previous track as parent.

    Returns:
        The folder.
    """
    check_labels(labels, ndims=(3, 4))
    folder = Path(folder)
    tra, seg = folder / "TRA", folder / "SEG"
    tra.mkdir(parents=True, exist_ok=True)
    seg.mkdir(parents=True, exist_ok=True)
    segments = track_segments(
        frame_ids(labels), lineage, link_gaps=link_gaps, max_label=CTC_MAX_LABEL
    )
    _write_masks(tra, "man_track", labels, segments)
    _write_track_file(tra / "man_track.txt", segments)
    _write_masks(seg, "man_seg", labels, segments, frames=seg_frames)
    return folder
