"""Reading single frames of a movie for :class:`~napari_sam2.video.frames.FrameSource`.

:class:`FrameReader` opens what holds the movie (a numpy array, ``np.memmap``, dask or zarr
array, any array-like, or the path of a TIFF file), works out its axes, and reads ONE frame at a
time (``movie[t, ...]``), returned as ``(H, W)`` or ``(H, W, C)``. TIFF files are memory-mapped
when their data are stored contiguously and uncompressed, and are otherwise decoded page by page
(``_tiff_pages.py``). A frame that cannot be read raises :class:`FrameReadError` naming the movie
and the frame.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from ._axes import (
    _axes_from_tiff,
    _check_axes_sizes,
    _parse_axes,
    _shape_str,
    infer_axes,
    z_as_frames,
)
from ._disk_volume import PageBudget
from ._tiff_pages import _open_tiff

__all__ = ["FrameReadError", "FrameReader"]


class FrameReadError(OSError):
    """A frame of a movie could not be read or decoded (damaged data, a failing disk or
    network share). The message names the movie and the frame.

    Attributes:
        frame: the frame index t.
        source: the movie's path, or "the movie" for an in-memory array.
    """

    def __init__(self, source: str, frame: int, cause: BaseException) -> None:
        super().__init__(
            f"could not read frame {frame} of {source}: {type(cause).__name__}: {cause}"
        )
        self.frame = frame
        self.source = source


def _open(movie: Any, allow_partial: bool) -> tuple[Any, Any, str | None, str, str]:
    """``(array, open TIFF or None, TIFF series axes or None, backend, name for messages)``."""
    if isinstance(movie, (str, os.PathLike)):
        arr, tif, tiff_axes, backend = _open_tiff(movie, allow_partial)
        return arr, tif, tiff_axes, backend, os.fspath(movie)
    if hasattr(movie, "shape") and hasattr(movie, "dtype") and hasattr(movie, "__getitem__"):
        mod = type(movie).__module__.split(".")[0]
        if isinstance(movie, np.memmap):
            backend = "memmap"
        elif isinstance(movie, np.ndarray):
            backend = "numpy"
        elif mod in ("dask", "zarr"):
            backend = mod
        else:
            backend = "array"
        return movie, None, None, backend, "the movie"
    return np.asarray(movie), None, None, "numpy", "the movie"


class FrameReader:
    """One movie, its axes, and reads of one frame at a time.

    Args:
        movie: numpy array, ``np.memmap``, dask array, zarr array (anything with ``shape``,
            ``dtype`` and numpy-style indexing) or the path of a TIFF file.
        axes: one letter per dimension (see :class:`~napari_sam2.video.frames.FrameSource`), or
            None to take them from the TIFF metadata, else from the shape.
        allow_partial: accept a truncated TIFF (its complete frames only, with a warning).

    Raises:
        ValueError: bad axes, an unsupported pixel type, or a damaged TIFF.
        FileNotFoundError: ``movie`` is a path that does not exist.

    Attributes:
        movie: the array frames are indexed from.
        backend: how frames are read: numpy, memmap, dask, zarr, array, tiff-memmap or
            tiff-pages.
        source_name: the movie's path, or "the movie", for messages.
        shape: the stored shape.
        dtype: the stored pixel type.
        full_axes: one letter per stored dimension (a z-stack without time played as ``T``).
        axes: ``full_axes`` without length-1 Z / generic axes, e.g. ``"TYX"``.
        frame_axis: the axis played as frames: ``"T"`` (time) or ``"Z"`` (a z-stack).
        num_frames, height, width: ``T`` (1 for a single frame), ``H``, ``W`` in pixels.
        num_channels: size of the channel axis (0 when there is none).
        channels_last: the channel axis is the last one (RGB / RGBA data).
        page_budget: hands pages of a memory-mapped movie back now and then, so that reading
            a long movie does not grow the process's resident memory.
    """

    def __init__(self, movie: Any, axes: str | None = None, allow_partial: bool = False) -> None:
        arr, self._tif, tiff_axes, self.backend, self.source_name = _open(movie, allow_partial)
        try:
            self._describe(arr, axes, tiff_axes)
        except BaseException:
            self.close()  # do not leak the file handle of a rejected TIFF
            raise
        self.movie = arr
        self.page_budget = PageBudget()
        self._io_lock = threading.Lock()  # one read of the underlying storage at a time

    def _describe(self, arr: Any, axes: str | None, tiff_axes: str | None) -> None:
        shape = tuple(int(n) for n in arr.shape)
        self.shape = shape
        self.dtype = np.dtype(arr.dtype)
        if self.dtype.kind not in "biuf":
            raise ValueError(
                f"Unsupported pixel type {self.dtype}: use bool, integer or float images."
            )
        if axes is not None:
            full = _parse_axes(axes, shape)
        else:
            full = _axes_from_tiff(tiff_axes, shape) if tiff_axes is not None else None
            if full is None:
                full = infer_axes(shape)
        _check_axes_sizes(full, shape)
        played = z_as_frames(full, shape)
        self.frame_axis = "Z" if played != full else "T"
        self.full_axes = played
        self.axes = "".join(a for a in played if a in "TCYX")
        self.num_frames = shape[played.index("T")] if "T" in played else 1
        self.height = shape[played.index("Y")]
        self.width = shape[played.index("X")]
        self.num_channels = shape[played.index("C")] if "C" in played else 0
        self.channels_last = "C" in played and played.rstrip("1Z").endswith("C")

    def read(self, t: int, channel: int | None = None) -> np.ndarray:
        """Frame ``t`` as stored (dtype unchanged; a view where the storage allows).

        Args:
            t: frame index, already checked to be in range.
            channel: read this channel only, or None for all.

        Returns:
            ``(H, W)``, or ``(H, W, C)`` (channels last whatever the stored order) when the movie
            has a channel axis and ``channel`` is None.

        Raises:
            FrameReadError: the storage or the decoder failed; names the movie and the frame.
        """
        idx: list[int | slice] = []
        rest = []
        for a in self.full_axes:
            if a == "T":
                idx.append(t)
            elif a in "Z1":
                idx.append(0)
            elif a == "C" and channel is not None:
                idx.append(channel)
            else:
                idx.append(slice(None))
                rest.append(a)
        try:
            with self._io_lock:
                frame = np.asarray(self.movie[tuple(idx)])
                self.page_budget.note(self.movie, frame.nbytes)
        except Exception as exc:  # noqa: BLE001 - decoders and file systems raise many types
            raise FrameReadError(self.source_name, t, exc) from exc
        order = [rest.index("Y"), rest.index("X")] + ([rest.index("C")] if "C" in rest else [])
        return frame.transpose(order)

    def close(self) -> None:
        """Close an opened TIFF file (arrays need no closing)."""
        if self._tif is not None:
            self._tif.close()
            self._tif = None

    def describe(self) -> str:
        """``shape=..., axes=..., dtype=..., backend=...`` for a repr."""
        return (
            f"shape={_shape_str(self.shape)}, axes={self.axes!r}, dtype={self.dtype}, "
            f"backend={self.backend!r}"
        )
