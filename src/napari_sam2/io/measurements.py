"""Per-object, per-frame measurements of label movies and their CSV export."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from skimage.measure import regionprops_table

from napari_sam2.io.label_checks import check_labels
from napari_sam2.io.tiff import atomic_open

__all__ = ["RawFrames", "measure", "save_measurements_csv"]


class RawFrames:
    """A (T, H, W[, C]) array-like over a frame source's stored frames, read one at a time.

    ``measure(labels, RawFrames(source))`` measures intensities on the movie as stored (before
    the model's intensity window and resize), without loading the whole movie.

    Args:
        frames: a :class:`~napari_sam2.video.frames.FrameSource` (anything with ``raw(t)`` and
            ``num_frames``).
    """

    def __init__(self, frames) -> None:
        self._frames = frames
        first = frames.raw(0)
        self.shape = (frames.num_frames, *first.shape)
        self.dtype = first.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, t) -> np.ndarray:
        return self._frames.raw(int(t))


def _frame_image(movie, t: int, channel_axis: int | None) -> np.ndarray:
    """Frame ``t`` of the movie with any channel axis moved last: (Y, X[, C])."""
    frame = np.asarray(movie[t])
    if channel_axis is not None:
        frame = np.moveaxis(frame, channel_axis - 1, -1)
    return frame


def measure(
    labels,
    movie=None,
    *,
    scores: Mapping[tuple[int, int], float] | None = None,
    channel_axis: int | None = None,
) -> dict[str, np.ndarray]:
    """Measure every object in every frame with ``skimage.measure.regionprops_table``.

    Labels and movie are read one frame at a time (``labels[t]``, ``movie[t]``),
    so lazy arrays (dask, zarr, memmaps) are never loaded whole.

    Columns (all of length N = number of (frame, object) pairs, sorted by frame
    then object id):
      * ``frame`` (int64), ``obj_id`` (int64), ``area`` (float64, pixels/voxels);
      * ``centroid-0`` .. ``centroid-{D-1}`` (float64, pixels, row/col order) and
        ``bbox-0`` .. ``bbox-{2D-1}`` (int64, min corner then exclusive max
        corner), with D = 2 for (T, Y, X) labels (D = 3 for (T, Z, Y, X));
      * with a movie: ``mean_intensity`` and ``max_intensity`` (float64); for a
        movie with a channel axis one pair per channel, named
        ``mean_intensity-{c}`` ... then ``max_intensity-{c}`` ...;
      * with ``scores``: ``score`` (float64), NaN for pairs missing from the dict.

    Args:
        labels: Integer labels (T, Y, X) or (T, Z, Y, X); a single (Y, X) frame is
            treated as frame 0 (then ``movie`` and ``channel_axis`` have no T axis).
        movie: Optional intensities (T, Y, X) (same shape as labels), or with a
            channel axis: (T, Y, X, C) (channel last, the default when the movie
            has one more dim than the labels) or e.g. (T, C, Y, X) with
            ``channel_axis=1``.
        scores: Optional {(frame, obj_id): score}, e.g. SAM 2 mask confidences.
        channel_axis: Axis of ``movie`` holding channels (counted with T as axis
            0; negative values allowed), or None for auto (see ``movie``).

    Returns:
        Dict of column name -> 1-D array.

    Raises:
        ValueError: mismatched shapes, bad channel axis or non-integer labels.
    """
    if movie is None:
        channel_axis = None
    if getattr(labels, "ndim", np.ndim(labels)) == 2:
        labels = np.asarray(labels)[None]
        if movie is not None:
            movie = np.asarray(movie)[None]
            if channel_axis is not None and channel_axis >= 0:
                channel_axis += 1
    labels = check_labels(labels, ndims=(3, 4), check_values=False)
    lab_shape = tuple(labels.shape)
    n_frames, spatial = lab_shape[0], lab_shape[1:]
    ndim = len(spatial)

    n_channels = 0
    if movie is not None:
        mshape = tuple(movie.shape)
        if channel_axis is None and len(mshape) == len(lab_shape) + 1:
            channel_axis = len(mshape) - 1
        if channel_axis is not None:
            if len(mshape) != len(lab_shape) + 1:
                raise ValueError(f"movie {mshape} needs one channel axis more than labels")
            channel_axis = channel_axis % len(mshape)
            if channel_axis == 0:
                raise ValueError("channel_axis cannot be the time axis 0")
            n_channels = mshape[channel_axis]
            mshape = mshape[:channel_axis] + mshape[channel_axis + 1 :]
        if mshape != lab_shape:
            raise ValueError(f"movie shape {tuple(movie.shape)} does not match labels {lab_shape}")

    props = ["label", "area", "centroid", "bbox"]
    if movie is not None:
        props += ["intensity_mean", "intensity_max"]
    centroid_cols = [f"centroid-{i}" for i in range(ndim)]
    bbox_cols = [f"bbox-{i}" for i in range(2 * ndim)]
    if channel_axis is not None:
        mean_cols = [f"mean_intensity-{c}" for c in range(n_channels)]
        max_cols = [f"max_intensity-{c}" for c in range(n_channels)]
        mean_src = [f"intensity_mean-{c}" for c in range(n_channels)]
        max_src = [f"intensity_max-{c}" for c in range(n_channels)]
    elif movie is not None:
        mean_cols, max_cols = ["mean_intensity"], ["max_intensity"]
        mean_src, max_src = ["intensity_mean"], ["intensity_max"]
    else:
        mean_cols = max_cols = mean_src = max_src = []

    names = ["frame", "obj_id", "area", *centroid_cols, *bbox_cols, *mean_cols, *max_cols]
    sources = ["", "label", "area", *centroid_cols, *bbox_cols, *mean_src, *max_src]
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for t in range(n_frames):
        frame = check_labels(np.asarray(labels[t]), name=f"labels of frame {t}")
        if not frame.any():
            continue
        image = None if movie is None else _frame_image(movie, t, channel_axis)
        table = regionprops_table(frame, intensity_image=image, properties=props)
        n = len(table["label"])
        chunks["frame"].append(np.full(n, t, dtype=np.int64))
        for name, src in zip(names[1:], sources[1:], strict=True):
            chunks[name].append(np.asarray(table[src]))

    dtypes = {"frame": np.int64, "obj_id": np.int64, **{c: np.int64 for c in bbox_cols}}
    out: dict[str, np.ndarray] = {}
    for name in names:
        dtype = dtypes.get(name, np.float64)
        out[name] = (
            np.concatenate(chunks[name]).astype(dtype) if chunks[name] else np.zeros(0, dtype)
        )
    if scores is not None:
        out["score"] = np.array(
            [
                float(scores.get((int(t), int(o)), math.nan))
                for t, o in zip(out["frame"], out["obj_id"], strict=True)
            ],
            dtype=np.float64,
        )
    return out


def _cell(value) -> str | int:
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, (np.integer, np.bool_)):
        return int(value)
    return value


def save_measurements_csv(path: str | os.PathLike, table: Mapping[str, np.ndarray]) -> Path:
    """Write a measurement table (e.g. from :func:`measure`) as CSV, atomically.

    One header row with the column names, then one row per entry. Floats are
    written with full precision; NaN is written as an empty cell.

    Args:
        path: Output ``.csv`` path.
        table: Column name -> 1-D array, all of the same length.

    Returns:
        The output path.

    Raises:
        ValueError: columns of different lengths or not 1-D.
    """
    columns = {name: np.asarray(col) for name, col in table.items()}
    lengths = {col.shape for col in columns.values()}
    if any(len(s) != 1 for s in lengths) or len(lengths) > 1:
        raise ValueError(f"columns must be 1-D and of equal length, got shapes {lengths}")
    n_rows = next(iter(lengths))[0] if lengths else 0
    path = Path(path)
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(columns))
        for i in range(n_rows):
            writer.writerow([_cell(col[i]) for col in columns.values()])
    return path
