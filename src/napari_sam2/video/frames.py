"""Lazy frame access for the video engine: read, window, crop, resize and normalise frames.

:class:`FrameSource` wraps a movie (numpy array, ``np.memmap``, dask array, zarr array, or the path
of a TIFF file) and hands the model one frame at a time as a ``(3, S, S)`` float32 tensor, where
``S`` is the model's ``image_size``. The movie is never loaded as a whole: every read indexes a
single time point (``movie[t, ...]``), TIFF files are memory-mapped when their data are stored
contiguously and uncompressed, and are otherwise decoded page by page.

Processing of frame ``t`` (``model_input``):

1. read frame ``t`` (``(H, W)`` or ``(H, W, C)``), optionally crop it to the region of interest;
2. pick the channels shown to the model (one channel replicated to R, G, B; an RGB frame; or up to
   three channels mapped to R, G, B);
3. map intensities to ``[0, 1]`` with ONE window for the whole movie (so the brightness does not
   flicker from frame to frame): the 0.5 and 99.5 percentiles of a sample of frames spread over
   time, or the ``contrast_limits`` given by the caller;
4. squash to ``(S, S)`` (the aspect ratio is not kept, as in SAM 2) and normalise with the
   model's pixel mean / std.

For uint8 movies shown with the window ``(0, 255)`` step 3 is the identity and step 4 reproduces
Meta's video loader exactly (PIL bicubic resize of the 8-bit RGB frame, ``/ 255``, mean / std).
Every other case resizes the float ``[0, 1]`` image with torch's antialiased bilinear filter.

A :class:`FrameSource` owns three parts: a :class:`~._frame_reader.FrameReader` (the movie, its
axes, reads of one frame; ``_frame_reader.py`` with ``_axes.py`` and ``_tiff_pages.py``), a
:class:`~._normaliser.FrameNormaliser` (steps 2-4; ``_normaliser.py`` with ``_intensity.py``)
and a :class:`~._frame_cache.FrameCache` (prepared frames and the prefetch thread). It keeps the
region of interest and the prefetch direction itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ._axes import infer_axes
from ._frame_cache import FrameCache
from ._frame_reader import FrameReader, FrameReadError
from ._intensity import Window
from ._normaliser import FrameNormaliser
from ._tiff_pages import DamagedMovieError, PartialMovieWarning

__all__ = [
    "DamagedMovieError",
    "FrameReadError",
    "FrameSource",
    "PartialMovieWarning",
    "frame_source_for",
    "infer_axes",
]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class FrameSource:
    """Lazily read, window, crop, resize and normalise the frames of a movie for SAM 2.

    Args:
        movie: numpy array, ``np.memmap``, dask array, zarr array (anything with ``shape``,
            ``dtype`` and numpy-style indexing) or the path (``str`` / ``Path``) of a TIFF file.
        axes: one letter per dimension, case-insensitive: ``"TYX"``, ``"TCYX"``, ``"TYXC"``
            (channels last, e.g. RGB / RGBA), ``"YX"`` or ``"YXC"`` (one frame); any order of
            ``T, Z, C, Y, X`` is accepted. A z-stack without time (``"ZYX"``, ``"CZYX"``) is
            played along z (slices are the frames, :attr:`frame_axis` is ``"Z"``); with a T
            axis, a ``Z`` axis must have length 1. ``None`` infers it:
            from the TIFF series metadata when present, else from the shape (:func:`infer_axes`).
        channel: which channels the model sees. ``None``: RGB for 3-channel (or channels-last
            RGBA) movies, channel 0 (with a warning) for other multi-channel movies. An ``int``:
            that channel, replicated to R, G, B. A tuple of up to 3 indices (``None`` allowed)
            mapped to R, G, B; missing slots are zero.
        contrast_limits: ``(lo, hi)`` intensity window mapped to ``[0, 1]``, or one ``(lo, hi)``
            pair per entry of a ``channel`` tuple. ``None`` estimates the window from the movie
            (see :attr:`contrast_limits`).
        image_size: side ``S`` of the square model input in pixels.
        pixel_mean: per-channel mean subtracted after scaling to ``[0, 1]``.
        pixel_std: per-channel standard deviation divided by after the mean subtraction.
        roi: optional region of interest ``(y0, x0, y1, x1)`` in original pixels (end
            exclusive); frames are cropped to it before resizing. Settable later.
        prefetch: read the next frame in a background thread after each :meth:`model_input`.
        cache_size: how many processed frames are kept (bounded; at least 1).
        allow_partial: for a TIFF holding fewer complete frames than its metadata promise
            (a truncated copy): use the complete frames 0..k-1 with a
            :class:`PartialMovieWarning` instead of raising :class:`DamagedMovieError`.

    Raises:
        ValueError: bad axes, an unsupported layout, a channel out of range, a bad window or ROI.
        DamagedMovieError: (a ValueError) a TIFF that is cut off or whose pages lie outside
            the file; the message names the file and the first bad frame.
        FileNotFoundError: ``movie`` is a path that does not exist.

    A frame that cannot be read or decoded later (damaged compressed data) raises
    :class:`FrameReadError` naming the movie and the frame, when that frame is needed.
    """

    def __init__(
        self,
        movie: Any,
        axes: str | None = None,
        channel: int | Sequence[int | None] | None = None,
        contrast_limits: Sequence[float] | Sequence[Sequence[float]] | None = None,
        image_size: int = 1024,
        pixel_mean: Sequence[float] = _IMAGENET_MEAN,
        pixel_std: Sequence[float] = _IMAGENET_STD,
        roi: Sequence[int] | None = None,
        prefetch: bool = True,
        cache_size: int = 2,
        allow_partial: bool = False,
    ) -> None:
        self._reader = FrameReader(movie, axes, bool(allow_partial))
        try:
            self._normaliser = FrameNormaliser(
                self._reader, channel, contrast_limits, image_size, pixel_mean, pixel_std
            )
            self._cache = FrameCache(self._compute, cache_size)
            self._prefetch_enabled = bool(prefetch)
            self._roi: tuple[int, int, int, int] | None = None
            self.roi = roi
        except BaseException:
            self._reader.close()  # do not leak the file handle of a rejected TIFF
            raise
        self._last_t: int | None = None
        self.direction: int = 1
        """Prefetch direction: +1 (forward) or -1 (backward); updated by :meth:`model_input`."""

    # ---------------------------------------------------------------- what the parts know

    @property
    def backend(self) -> str:
        """How frames are read: numpy, memmap, dask, zarr, array, tiff-memmap or tiff-pages."""
        return self._reader.backend

    @property
    def frame_axis(self) -> str:
        """The axis played as frames: ``"T"`` (time) or ``"Z"`` (a z-stack without time)."""
        return self._reader.frame_axis

    @property
    def image_size(self) -> int:
        """Side ``S`` of the square model input in pixels."""
        return self._normaliser.image_size

    @property
    def contrast_limits(self) -> Window | dict[int, Window]:
        """The intensity window mapped to ``[0, 1]`` (in the movie's intensity units).

        A single ``(lo, hi)`` tuple when one window serves the whole frame: single-channel
        movies, one selected channel, and RGB(A) movies (one window shared by R, G, B so colours
        are kept). For a ``channel`` tuple (channels composed into RGB) a dict mapping each
        source channel index to its own ``(lo, hi)``. The automatic window is computed once per
        movie (not per frame and not per ROI). Reading this property triggers that computation.
        """
        return self._normaliser.contrast_limits

    # ---------------------------------------------------------------- basic properties

    @property
    def num_frames(self) -> int:
        """Number of time points ``T`` (1 for a single frame)."""
        return self._reader.num_frames

    def __len__(self) -> int:
        return self._reader.num_frames

    @property
    def height(self) -> int:
        """Original frame height ``H`` in pixels (before ROI crop and resizing)."""
        return self._reader.height

    @property
    def width(self) -> int:
        """Original frame width ``W`` in pixels (before ROI crop and resizing)."""
        return self._reader.width

    @property
    def frame_shape(self) -> tuple[int, int]:
        """Original frame size ``(H, W)`` in pixels (the full frame, ignoring the ROI)."""
        return self._reader.height, self._reader.width

    @property
    def region_shape(self) -> tuple[int, int]:
        """Size ``(h, w)`` of the region that is resized for the model: the ROI or the frame."""
        if self._roi is None:
            return self._reader.height, self._reader.width
        y0, x0, y1, x1 = self._roi
        return y1 - y0, x1 - x0

    @property
    def dtype(self) -> np.dtype:
        """Pixel type of the movie as stored."""
        return self._reader.dtype

    @property
    def axes(self) -> str:
        """Axes of the movie after dropping length-1 Z / generic axes, e.g. ``"TYX"``."""
        return self._reader.axes

    @property
    def num_channels(self) -> int:
        """Size of the channel axis (0 when the movie has none)."""
        return self._reader.num_channels

    @property
    def channels(self) -> tuple[int | None, int | None, int | None]:
        """Source channel shown as red, green, blue (``None``: zeros; ``-1``: no C axis)."""
        return tuple(self._normaliser.slots)  # type: ignore[return-value]

    @property
    def roi(self) -> tuple[int, int, int, int] | None:
        """Region of interest ``(y0, x0, y1, x1)`` in original pixels (end exclusive) or None.

        Setting it validates the box and clears the cache of processed frames.
        """
        return self._roi

    @roi.setter
    def roi(self, value: Sequence[int] | None) -> None:
        if value is None:
            new = None
        else:
            try:
                vals = [int(v) for v in value]
            except (TypeError, ValueError) as exc:
                raise ValueError(f"roi must be (y0, x0, y1, x1) integers; got {value!r}.") from exc
            if len(vals) != 4:
                raise ValueError(f"roi must be (y0, x0, y1, x1); got {value!r}.")
            y0, x0, y1, x1 = vals
            if not (0 <= y0 < y1 <= self._reader.height and 0 <= x0 < x1 <= self._reader.width):
                raise ValueError(
                    f"roi {tuple(vals)} does not fit the frame: need 0 <= y0 < y1 <= "
                    f"{self._reader.height} and 0 <= x0 < x1 <= {self._reader.width}."
                )
            new = (y0, x0, y1, x1)
            if new == (0, 0, self._reader.height, self._reader.width):
                new = None
        if new != self._roi:
            self._roi = new
            self._cache.invalidate()

    @property
    def roi_slices(self) -> tuple[slice, slice]:
        """``(slice(y0, y1), slice(x0, x1))`` of the region fed to the model."""
        y0, x0, y1, x1 = self._roi or (0, 0, self._reader.height, self._reader.width)
        return slice(y0, y1), slice(x0, x1)

    # ---------------------------------------------------------------- reading

    def _check_t(self, t: Any) -> int:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise ValueError(f"frame index must be an integer; got {t!r}.")
        t = int(t)
        n = self._reader.num_frames
        if not 0 <= t < n:
            raise ValueError(
                f"frame index {t} is out of range for a movie with {n} frames "
                f"(valid 0..{n - 1})."
            )
        return t

    def raw(self, t: int) -> np.ndarray:
        """The original frame ``t`` as stored (dtype unchanged, no ROI crop, no windowing).

        Returns:
            ``(H, W)`` for single-channel movies, ``(H, W, C)`` (channels last, whatever the
            stored order) otherwise. A copy: modifying it does not touch the movie.
        """
        t = self._check_t(t)
        return np.array(self._reader.read(t), copy=True)

    def model_frame(self, t: int) -> np.ndarray:
        """Frame ``t`` with the channel(s) the model reads, whole (no ROI crop), not windowed.

        Returns:
            ``(H, W)`` when one channel is shown, else ``(H, W, C)``; stored dtype. It may
            share memory with the movie: copy it before editing (or use :meth:`raw`).
        """
        return self._normaliser.read_for_model(self._check_t(t))

    def _crop(self, frame: np.ndarray) -> np.ndarray:
        ys, xs = self.roi_slices
        return frame[ys, xs]

    def normalized(self, t: int) -> np.ndarray:
        """Frame ``t`` cropped to the ROI and windowed to ``[0, 1]``, at original resolution.

        Returns:
            float32 array ``(h, w, 3)`` (R, G, B) where ``(h, w)`` is :attr:`region_shape`.
        """
        t = self._check_t(t)
        return self._normaliser.rgb_float(self._crop(self.model_frame(t)))

    def _compute(self, t: int) -> torch.Tensor:
        """Read and preprocess frame ``t`` -> (3, S, S) float32 normalised tensor."""
        return self._normaliser.prepare(self._crop(self.model_frame(t)))

    def window_inputs(self, t: int, boxes: Sequence[Sequence[int]]) -> torch.Tensor:
        """Model inputs of square windows of frame ``t`` (the frame is read once).

        Args:
            t: frame index.
            boxes: K windows (y0, x0, y1, x1) in frame pixels (end exclusive), inside the frame.

        Returns:
            (K, 3, S, S) float32 normalised tensor, each window resized like a whole frame.
        """
        frame = self.model_frame(t)
        prepare = self._normaliser.prepare
        return torch.stack([prepare(frame[y0:y1, x0:x1]) for y0, x0, y1, x1 in boxes])

    # ---------------------------------------------------------------- model input + prefetch

    def model_input(self, t: int, direction: int | None = None) -> torch.Tensor:
        """Preprocessed frame ``t`` for the image encoder, and prefetch of the next frame.

        Args:
            t: frame index in ``[0, num_frames)``.
            direction: +1 / -1 to prefetch ``t + 1`` / ``t - 1``; ``None`` follows the order of
                the calls (backward after a call with a larger ``t``).

        Returns:
            float32 tensor ``(3, S, S)`` on the CPU, resized to ``image_size`` and normalised
            with ``pixel_mean`` / ``pixel_std``. A fresh tensor the caller may modify.
        """
        t = self._check_t(t)
        if direction is not None:
            self.direction = 1 if direction >= 0 else -1
        elif self._last_t is not None and t != self._last_t:
            self.direction = 1 if t > self._last_t else -1
        self._last_t = t
        result = self._cache.get(t)
        if self._prefetch_enabled:
            nxt = t + self.direction
            if 0 <= nxt < self._reader.num_frames:
                self._cache.prefetch(nxt)
        return result.clone()

    def prefetch(self, t: int) -> None:
        """Start preparing frame ``t`` in the background thread (no-op if cached or pending).

        At most one prefetch waits in the queue: a new request cancels an older one that has
        not started yet.
        """
        self._cache.prefetch(self._check_t(t))

    def drop_cache(self) -> None:
        """Forget the processed frames kept so far (for a movie whose frames were redefined,
        e.g. the plane a frame reads was changed)."""
        self._cache.invalidate()

    def close(self) -> None:
        """Stop the prefetch thread, drop cached frames and close an opened TIFF file."""
        self._cache.close()
        self._reader.close()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FrameSource({self._reader.describe()}, image_size={self.image_size})"


def frame_source_for(movie: Any, config: Any, **kwargs: Any) -> FrameSource:
    """A :class:`FrameSource` sized and normalised for a model ``config`` (a ``SAM2Config``):
    ``image_size``, ``pixel_mean`` and ``pixel_std`` come from the config; other keyword
    arguments (``axes``, ``channel``, ``contrast_limits``, ``roi``, ``prefetch``...) pass through.
    """
    return FrameSource(
        movie,
        image_size=config.image_size,
        pixel_mean=config.pixel_mean,
        pixel_std=config.pixel_std,
        **kwargs,
    )
