"""napari Tracks layer data from label movies."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from napari_sam2.io.ctc import _FrameLookup, track_segments
from napari_sam2.io.label_checks import check_labels

__all__ = ["frame_centroids", "tracks_from_labels"]


def frame_centroids(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroids of all objects in one label frame.

    Args:
        frame: (Y, X) or (Z, Y, X) integer labels, 0 = background.

    Returns:
        ids: (n,) int64 sorted non-zero object ids.
        centroids: (n, D) float64 mean pixel coordinates (row, col order).
    """
    frame = np.asarray(frame)
    ids, inverse = np.unique(frame, return_inverse=True)
    inverse = inverse.ravel()
    counts = np.bincount(inverse, minlength=len(ids)).astype(np.float64)
    cents = np.empty((len(ids), frame.ndim), dtype=np.float64)
    for axis, size in enumerate(frame.shape):
        shape = [1] * frame.ndim
        shape[axis] = size
        coord = np.broadcast_to(np.arange(size, dtype=np.float64).reshape(shape), frame.shape)
        cents[:, axis] = np.bincount(inverse, weights=coord.ravel(), minlength=len(ids)) / counts
    keep = ids != 0
    return ids[keep].astype(np.int64), cents[keep]


def tracks_from_labels(
    labels,
    lineage: Mapping[int, int] | None = None,
    *,
    link_gaps: bool = False,
) -> tuple[np.ndarray, dict[int, list[int]]]:
    """Build napari Tracks layer data from a label movie.

    Track ids follow the Cell Tracking Challenge export
    (:func:`napari_sam2.io.ctc.track_segments`): an object's first time-contiguous
    run keeps its object id as track id, and a reappearance after a gap becomes a
    new track (new id above the largest object id). A mother that keeps its id
    past a division is split into a new track at the division frame.

    Args:
        labels: Integer labels (T, Y, X) or (T, Z, Y, X); read frame by frame.
        lineage: Optional {daughter_obj_id: parent_obj_id} divisions.
        link_gaps: Also link a reappearance to the object's previous track in
            ``graph``.

    Returns:
        data: (N, 4) float64 rows ``[track_id, t, y, x]`` ((N, 5) with ``z``
            before ``y`` for 3-D frames), centroids in pixels, sorted by track id
            then time.
        graph: {daughter_track_id: [parent_track_id]} for the napari ``graph``
            argument (divisions, mother continuations, and gap links when
            ``link_gaps``).
    """
    labels = check_labels(labels, ndims=(3, 4), check_values=False)
    shape = tuple(labels.shape)
    ndim = len(shape) - 1

    per_frame: list[tuple[np.ndarray, np.ndarray]] = []
    for t in range(shape[0]):
        frame = check_labels(np.asarray(labels[t]), name=f"labels of frame {t}")
        per_frame.append(frame_centroids(frame))

    segments = track_segments([ids for ids, _ in per_frame], lineage, link_gaps=link_gaps)
    lookup = _FrameLookup(segments)
    rows = []
    for t, (ids, cents) in enumerate(per_frame):
        if len(ids) == 0:
            continue
        track = np.array([lookup(t, int(i)) for i in ids], dtype=np.float64)
        rows.append(np.column_stack([track, np.full(len(ids), t, dtype=np.float64), cents]))
    data = np.concatenate(rows) if rows else np.zeros((0, 2 + ndim), dtype=np.float64)
    data = data[np.lexsort((data[:, 1], data[:, 0]))]  # by track, then time
    graph = {s.label: [s.parent] for s in segments if s.parent}
    return data, graph
