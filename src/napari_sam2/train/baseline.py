"""A classical segmentation-and-tracking baseline, for benchmarks and accuracy tests.

Per frame: Gaussian smoothing, Otsu threshold, an opening, and a distance-transform watershed
that splits touching cells. Frames are linked by mask overlap: a segment continues the previous
object it overlaps most; two or more large segments continuing the same object are a division
(the mother ends, each piece is a daughter); segments overlapping nothing start new tracks.

Polarity: cells brighter than the background (fluorescence) or darker (e.g. nuclei in
transmitted light, stained cells in bright field). ``"auto"`` decides once per movie: Otsu's
threshold splits the pixels in two classes, and the cells are the smaller class (they cover less
than half of the frame).

Any model worth shipping must beat this on the same data; the accuracy tests compute it
themselves (``tests/weights/test_accuracy.py``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["detect_polarity", "object_tracks", "run_baseline", "segment_frame"]

POLARITIES = ("auto", "bright", "dark")


def _smooth(img: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(np.asarray(img, np.float32), 1.0)


def _check_movie(movie: np.ndarray) -> np.ndarray:
    movie = np.asarray(movie)
    if movie.ndim != 3:
        raise ValueError(
            f"the baseline needs a single-channel movie (T, Y, X), got shape {movie.shape}; "
            "pick one channel first"
        )
    return movie


def detect_polarity(movie: np.ndarray) -> str:
    """``"bright"`` when the cells are brighter than the background, else ``"dark"``.

    Args:
        movie: (T, Y, X) intensities, or one (Y, X) frame.

    Returns:
        ``"bright"`` or ``"dark"``: the Otsu class covering less than half of the pixels (of
        the first, middle and last frame together) is taken to be the cells.
    """
    from skimage.filters import threshold_otsu

    movie = np.asarray(movie)
    frames = [movie] if movie.ndim == 2 else [movie[0], movie[len(movie) // 2], movie[-1]]
    smooth = np.stack([_smooth(f) for f in frames])
    if smooth.max() == smooth.min():
        return "bright"
    above = float((smooth > threshold_otsu(smooth)).mean())
    return "bright" if above <= 0.5 else "dark"


def segment_frame(
    img: np.ndarray, min_area: int = 20, min_distance: int = 5, polarity: str = "bright"
) -> np.ndarray:
    """Label the cells of one frame: Otsu threshold, then a watershed on the distance map.

    Args:
        img: (Y, X) intensities.
        min_area: smallest component kept, in pixels.
        min_distance: smallest distance between two cell centres (watershed seeds), in pixels.
        polarity: ``"bright"`` cells on a dark background, ``"dark"`` the reverse, or
            ``"auto"`` (:func:`detect_polarity` on this frame).

    Returns:
        (Y, X) int32 labels, 0 = background, 1..n cells.
    """
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {POLARITIES}, got {polarity!r}")
    if polarity == "auto":
        polarity = detect_polarity(img)
    smooth = _smooth(img)
    if smooth.max() == smooth.min():
        return np.zeros(smooth.shape, np.int32)
    if polarity == "dark":
        smooth = -smooth
    fg = smooth > threshold_otsu(smooth)
    fg = ndimage.binary_opening(fg, iterations=1)
    comps, _ = ndimage.label(fg)
    sizes = np.bincount(comps.ravel())
    fg &= sizes[comps] >= min_area
    dist = ndimage.distance_transform_edt(fg)
    peaks = peak_local_max(dist, min_distance=min_distance, labels=comps * fg, exclude_border=False)
    markers = np.zeros(smooth.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=fg).astype(np.int32)


def _link(seg: np.ndarray, prev: np.ndarray, next_id: int, min_child_area: int, lineage):
    """Ids for the segments of one frame from their overlap with the previous frame's ids."""
    n = int(seg.max())
    ids = np.zeros(n + 1, np.int64)
    if prev is None or n == 0:
        ids[1:] = np.arange(next_id, next_id + n)
        return ids, next_id + n
    width = int(prev.max()) + 1
    # overlap counts between current segments (rows) and previous ids (columns)
    counts = np.bincount(
        (seg.ravel().astype(np.int64) * width + prev.ravel()), minlength=(n + 1) * width
    ).reshape(n + 1, width)
    counts[:, 0] = 0
    best = counts[1:].argmax(axis=1)  # (n,) previous id each segment overlaps most
    has = counts[1:].max(axis=1) > 0
    areas = np.bincount(seg.ravel(), minlength=n + 1)
    children: dict[int, list[int]] = {}
    for s in range(1, n + 1):
        if has[s - 1]:
            children.setdefault(int(best[s - 1]), []).append(s)
        else:
            ids[s] = next_id
            next_id += 1
    for parent, segs in children.items():
        big = [s for s in segs if areas[s] >= min_child_area]
        if len(segs) == 1 or len(big) < 2:
            keep = max(segs, key=lambda s: areas[s])
            ids[keep] = parent
            for s in segs:
                if s != keep:
                    ids[s] = next_id
                    next_id += 1
        else:  # division: the mother ends, every piece is a daughter
            for s in segs:
                ids[s] = next_id
                if s in big:
                    lineage[next_id] = parent
                next_id += 1
    return ids, next_id


def run_baseline(
    movie: np.ndarray, min_child_area: int = 20, polarity: str = "auto"
) -> tuple[np.ndarray, dict[int, int]]:
    """Segment every frame (:func:`segment_frame`) and link the frames by overlap.

    Args:
        movie: (T, Y, X) intensities.
        min_child_area: smallest piece (pixels) counted as a daughter at a division.
        polarity: ``"auto"`` (decided once for the movie), ``"bright"`` or ``"dark"``.

    Returns:
        (labels, lineage): (T, Y, X) uint16 track ids (0 = background) and
        ``{daughter id: mother id}``.
    """
    movie = _check_movie(movie)
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {POLARITIES}, got {polarity!r}")
    if polarity == "auto":
        polarity = detect_polarity(movie)
    out = np.zeros(movie.shape, np.uint16)
    lineage: dict[int, int] = {}
    next_id, prev = 1, None
    for t, img in enumerate(movie):
        seg = segment_frame(img, polarity=polarity)
        ids, next_id = _link(seg, prev, next_id, min_child_area, lineage)
        out[t] = ids[seg]
        prev = out[t].astype(np.int64)
    return out, lineage


def object_tracks(
    movie: np.ndarray, points: dict[int, tuple[int, int]], polarity: str = "auto"
) -> np.ndarray:
    """The baseline's answer to "track the cell under this click": one label per clicked object.

    Args:
        movie: (T, Y, X) intensities.
        points: ``{object id: (y, x)}`` clicks on frame 0, in pixels.
        polarity: as in :func:`run_baseline`.

    Returns:
        (T, Y, X) uint16: each object's id on the baseline track under its click and on all of
        that track's descendants (daughters keep the id); 0 elsewhere, and everywhere for an
        object whose click falls on background.
    """
    tracks, lineage = run_baseline(movie, polarity=polarity)
    root: dict[int, int] = {}
    for obj, (y, x) in points.items():
        track = int(tracks[0, int(y), int(x)])
        if track:
            root[track] = obj
    lut = np.zeros(int(tracks.max()) + 1, np.uint16)
    for track in range(1, len(lut)):
        r = track
        while r not in root and r in lineage:
            r = lineage[r]
        lut[track] = root.get(r, 0)
    return lut[tracks]
