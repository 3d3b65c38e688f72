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

Helpers: axes inference and validation in ``_axes.py``, channel selection and the intensity
window in ``_intensity.py``, lazy TIFF reading in ``_tiff_pages.py``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ._axes import (
    _axes_from_tiff,
    _check_axes_sizes,
    _parse_axes,
    _shape_str,
    infer_axes,
    z_as_frames,
)
from ._disk_volume import PageBudget
from ._intensity import (  # noqa: F401 - WINDOW_* moved there, re-exported here
    WINDOW_PERCENTILES,
    WINDOW_SAMPLE_FRAMES,
    WINDOW_SAMPLE_PIXELS,
    Window,
    apply_window,
    estimate_windows,
    parse_limits,
    select_channels,
    used_channels,
)
from ._tiff_pages import DamagedMovieError, PartialMovieWarning, _open_tiff

__all__ = [
    "DamagedMovieError",
    "FrameReadError",
    "FrameSource",
    "PartialMovieWarning",
    "infer_axes",
]


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

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------
# FrameSource
# --------------------------------------------------------------------------------------------


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
        self._tif = None
        self._allow_partial = bool(allow_partial)
        self._closed = False
        self._executor: ThreadPoolExecutor | None = None
        try:
            self._setup(movie, axes, channel, contrast_limits, image_size, pixel_mean, pixel_std)
            self._prefetch_enabled = bool(prefetch)
            self._cache_size = max(1, int(cache_size))
            self._cache: OrderedDict[tuple[int, int], Future | torch.Tensor] = OrderedDict()
            self._roi: tuple[int, int, int, int] | None = None
            self._generation = 0
            self.roi = roi
        except BaseException:
            if self._tif is not None:  # do not leak the file handle of a rejected TIFF
                self._tif.close()
            raise
        self._pending: Future | None = None
        self._last_t: int | None = None
        self.direction: int = 1
        """Prefetch direction: +1 (forward) or -1 (backward); updated by :meth:`model_input`."""

    def _setup(
        self,
        movie: Any,
        axes: str | None,
        channel: int | Sequence[int | None] | None,
        contrast_limits: Any,
        image_size: int,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
    ) -> None:
        meta_axes: str | None = None
        self._source_name = "the movie"
        if isinstance(movie, (str, os.PathLike)):
            self._source_name = os.fspath(movie)
            arr, self._tif, tiff_axes, backend = _open_tiff(movie, self._allow_partial)
            meta_axes = tiff_axes
        elif hasattr(movie, "shape") and hasattr(movie, "dtype") and hasattr(movie, "__getitem__"):
            arr = movie
            mod = type(movie).__module__.split(".")[0]
            if isinstance(movie, np.memmap):
                backend = "memmap"
            elif isinstance(movie, np.ndarray):
                backend = "numpy"
            elif mod in ("dask", "zarr"):
                backend = mod
            else:
                backend = "array"
        else:
            arr = np.asarray(movie)
            backend = "numpy"
        self._movie = arr
        # pages of a memory-mapped movie read so far are handed back now and then, so that
        # reading a long movie does not grow the process's resident memory
        self._page_budget = PageBudget()
        self.backend: str = backend
        """How frames are read: numpy, memmap, dask, zarr, array, tiff-memmap or tiff-pages."""

        shape = tuple(int(n) for n in arr.shape)
        self._shape = shape
        self._dtype = np.dtype(arr.dtype)
        if self._dtype.kind not in "biuf":
            raise ValueError(
                f"Unsupported pixel type {self._dtype}: use bool, integer or float images."
            )

        if axes is not None:
            full = _parse_axes(axes, shape)
        else:
            full = None
            if meta_axes is not None:
                full = _axes_from_tiff(meta_axes, shape)
            if full is None:
                full = infer_axes(shape)
        _check_axes_sizes(full, shape)
        #: the axis played as frames: "T" (time) or "Z" (a z-stack without time)
        self.frame_axis = "Z" if z_as_frames(full, shape) != full else "T"
        full = z_as_frames(full, shape)
        self._full_axes = full
        self._axes = "".join(a for a in full if a in "TCYX")

        self._num_frames = shape[full.index("T")] if "T" in full else 1
        self._height = shape[full.index("Y")]
        self._width = shape[full.index("X")]
        self._num_channels = shape[full.index("C")] if "C" in full else 0
        # Channels-last 3/4-channel data are treated as RGB / RGBA.
        c_last = "C" in full and full.rstrip("1Z").endswith("C")
        # _n_given: entries of a channel tuple
        self._slots, self._composite, self._n_given = select_channels(
            channel, self._num_channels, self._axes, c_last
        )
        # gray: one source channel replicated; rgb: natural RGB(A) sharing one window;
        # composite: channels mapped to R, G, B with one window each.
        if self._composite:
            self._mode = "composite"
        elif len(set(self._slots)) == 1:
            self._mode = "gray"
        else:
            self._mode = "rgb"

        self.image_size = int(image_size)
        if self.image_size < 1:
            raise ValueError(f"image_size must be a positive integer; got {image_size!r}.")
        self._mean = torch.as_tensor(pixel_mean, dtype=torch.float32).reshape(3, 1, 1)
        self._std = torch.as_tensor(pixel_std, dtype=torch.float32).reshape(3, 1, 1)

        self._lock = threading.RLock()  # guards cache, window and generation
        self._io_lock = threading.Lock()  # one read of the underlying storage at a time
        self._windows: list[Window] | None = (
            parse_limits(contrast_limits, self._slots, self._composite, self._n_given)
            if contrast_limits is not None
            else None
        )

    # ---------------------------------------------------------------- channels + window

    @property
    def _used_channels(self) -> list[int]:
        """Distinct source channels feeding the model, in slot order (``[-1]``: no C axis)."""
        return used_channels(self._slots)

    def _estimate_windows(self) -> list[Window]:
        """Percentile window(s) from up to WINDOW_SAMPLE_FRAMES frames spread over time.

        A sampled frame that cannot be read is left out (the error surfaces, naming the frame,
        when that frame is needed), so the frames before it can still be segmented; when no
        sampled frame can be read the first error is raised.
        """
        failed: list[FrameReadError] = []

        def read(t: int) -> np.ndarray:
            try:
                return self._read_for_model(t)
            except FrameReadError as err:
                failed.append(err)
                extra = () if self._mode == "gray" and self._slots[0] >= 0 else (
                    (self._num_channels,) if self._num_channels else ()
                )
                return np.zeros((0, 0, *extra), self._dtype)

        windows = estimate_windows(
            read,
            self._num_frames,
            (self._height, self._width),
            self._dtype,
            self._slots,
            self._composite,
        )
        n_sampled = min(self._num_frames, WINDOW_SAMPLE_FRAMES)
        if failed and len(failed) >= n_sampled:
            raise failed[0]
        return windows

    def _get_windows(self) -> list[Window]:
        with self._lock:
            if self._windows is None:
                self._windows = self._estimate_windows()
            return self._windows

    @property
    def contrast_limits(self) -> Window | dict[int, Window]:
        """The intensity window mapped to ``[0, 1]`` (in the movie's intensity units).

        A single ``(lo, hi)`` tuple when one window serves the whole frame: single-channel
        movies, one selected channel, and RGB(A) movies (one window shared by R, G, B so colours
        are kept). For a ``channel`` tuple (channels composed into RGB) a dict mapping each
        source channel index to its own ``(lo, hi)``. The automatic window is computed once per
        movie (not per frame and not per ROI). Reading this property triggers that computation.
        """
        windows = self._get_windows()
        if self._composite:
            return dict(zip(self._used_channels, windows, strict=True))
        return windows[0]

    # ---------------------------------------------------------------- basic properties

    @property
    def num_frames(self) -> int:
        """Number of time points ``T`` (1 for a single frame)."""
        return self._num_frames

    def __len__(self) -> int:
        return self._num_frames

    @property
    def height(self) -> int:
        """Original frame height ``H`` in pixels (before ROI crop and resizing)."""
        return self._height

    @property
    def width(self) -> int:
        """Original frame width ``W`` in pixels (before ROI crop and resizing)."""
        return self._width

    @property
    def frame_shape(self) -> tuple[int, int]:
        """Original frame size ``(H, W)`` in pixels (the full frame, ignoring the ROI)."""
        return self._height, self._width

    @property
    def region_shape(self) -> tuple[int, int]:
        """Size ``(h, w)`` of the region that is resized for the model: the ROI or the frame."""
        if self._roi is None:
            return self._height, self._width
        y0, x0, y1, x1 = self._roi
        return y1 - y0, x1 - x0

    @property
    def dtype(self) -> np.dtype:
        """Pixel type of the movie as stored."""
        return self._dtype

    @property
    def axes(self) -> str:
        """Axes of the movie after dropping length-1 Z / generic axes, e.g. ``"TYX"``."""
        return self._axes

    @property
    def num_channels(self) -> int:
        """Size of the channel axis (0 when the movie has none)."""
        return self._num_channels

    @property
    def channels(self) -> tuple[int | None, int | None, int | None]:
        """Source channel shown as red, green, blue (``None``: zeros; ``-1``: no C axis)."""
        return tuple(self._slots)  # type: ignore[return-value]

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
            if not (0 <= y0 < y1 <= self._height and 0 <= x0 < x1 <= self._width):
                raise ValueError(
                    f"roi {tuple(vals)} does not fit the frame: need 0 <= y0 < y1 <= "
                    f"{self._height} and 0 <= x0 < x1 <= {self._width}."
                )
            new = (y0, x0, y1, x1)
            if new == (0, 0, self._height, self._width):
                new = None
        with self._lock:
            if new != self._roi:
                self._roi = new
                self._generation += 1
                self._cache.clear()

    @property
    def roi_slices(self) -> tuple[slice, slice]:
        """``(slice(y0, y1), slice(x0, x1))`` of the region fed to the model."""
        y0, x0, y1, x1 = self._roi or (0, 0, self._height, self._width)
        return slice(y0, y1), slice(x0, x1)

    # ---------------------------------------------------------------- reading

    def _check_t(self, t: Any) -> int:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise ValueError(f"frame index must be an integer; got {t!r}.")
        t = int(t)
        if not 0 <= t < self._num_frames:
            raise ValueError(
                f"frame index {t} is out of range for a movie with {self._num_frames} frames "
                f"(valid 0..{self._num_frames - 1})."
            )
        return t

    def _read(self, t: int, channel: int | None = None) -> np.ndarray:
        """Frame ``t`` as ``(H, W)`` or ``(H, W, C)`` (channel ``channel`` only when given)."""
        idx = []
        rest = []
        for a in self._full_axes:
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
                frame = np.asarray(self._movie[tuple(idx)])
                self._page_budget.note(self._movie, frame.nbytes)
        except Exception as exc:  # noqa: BLE001 - decoders and file systems raise many types
            raise FrameReadError(self._source_name, t, exc) from exc
        order = [rest.index("Y"), rest.index("X")] + ([rest.index("C")] if "C" in rest else [])
        return frame.transpose(order)

    def raw(self, t: int) -> np.ndarray:
        """The original frame ``t`` as stored (dtype unchanged, no ROI crop, no windowing).

        Returns:
            ``(H, W)`` for single-channel movies, ``(H, W, C)`` (channels last, whatever the
            stored order) otherwise. A copy: modifying it does not touch the movie.
        """
        t = self._check_t(t)
        return np.array(self._read(t), copy=True)

    def _crop(self, frame: np.ndarray) -> np.ndarray:
        ys, xs = self.roi_slices
        return frame[ys, xs]

    def _uses_pil(self, windows: list[Window]) -> bool:
        return self._dtype == np.uint8 and all(w == (0.0, 255.0) for w in windows)

    def normalized(self, t: int) -> np.ndarray:
        """Frame ``t`` cropped to the ROI and windowed to ``[0, 1]``, at original resolution.

        Returns:
            float32 array ``(h, w, 3)`` (R, G, B) where ``(h, w)`` is :attr:`region_shape`.
        """
        t = self._check_t(t)
        return self._rgb_float(self._crop(self._read_for_model(t)))

    def _read_for_model(self, t: int) -> np.ndarray:
        """Frame ``t`` as needed by the model: (H, W) in gray mode, else (H, W, C)."""
        if self._mode == "gray" and self._slots[0] >= 0:
            return self._read(t, self._slots[0])  # only the needed channel is read
        return self._read(t)

    def _rgb_float(self, frame: np.ndarray) -> np.ndarray:
        """Model-ready frame (h, w) or (h, w, C) -> (h, w, 3) float32 in [0, 1]."""
        windows = self._get_windows()
        if frame.ndim == 2:
            g = apply_window(frame, windows[0])
            return np.repeat(g[:, :, None], 3, axis=2)
        used = self._used_channels
        out = np.zeros(frame.shape[:2] + (3,), dtype=np.float32)
        for k, c in enumerate(self._slots):
            if c is not None:
                out[:, :, k] = apply_window(frame[:, :, c], windows[used.index(c)])
        return out

    def _rgb_uint8(self, frame: np.ndarray) -> np.ndarray:
        """Model-ready uint8 frame (h, w) or (h, w, C) -> (h, w, 3) uint8 (no windowing)."""
        if frame.ndim == 2:
            return np.repeat(frame[:, :, None], 3, axis=2)
        out = np.zeros(frame.shape[:2] + (3,), dtype=np.uint8)
        for k, c in enumerate(self._slots):
            if c is not None:
                out[:, :, k] = frame[:, :, c]
        return out

    def _compute(self, t: int) -> torch.Tensor:
        """Read and preprocess frame ``t`` -> (3, S, S) float32 normalised tensor."""
        return self._prepare(self._crop(self._read_for_model(t)))

    def window_inputs(self, t: int, boxes: Sequence[Sequence[int]]) -> torch.Tensor:
        """Model inputs of square windows of frame ``t`` (the frame is read once).

        Args:
            t: frame index.
            boxes: K windows (y0, x0, y1, x1) in frame pixels (end exclusive), inside the frame.

        Returns:
            (K, 3, S, S) float32 normalised tensor, each window resized like a whole frame.
        """
        frame = self._read_for_model(self._check_t(t))
        return torch.stack([self._prepare(frame[y0:y1, x0:x1]) for y0, x0, y1, x1 in boxes])

    def _prepare(self, frame: np.ndarray) -> torch.Tensor:
        """A (h, w) or (h, w, C) region of a frame -> (3, S, S) float32 normalised tensor."""
        s = self.image_size
        windows = self._get_windows()
        if self._uses_pil(windows):
            from PIL import Image

            rgb = np.ascontiguousarray(self._rgb_uint8(frame))
            # Meta: PIL RGB image resized to (S, S) with PIL's default filter (bicubic).
            small = np.asarray(Image.fromarray(rgb).resize((s, s), Image.Resampling.BICUBIC))
            x = torch.from_numpy(small / 255.0).to(torch.float32).permute(2, 0, 1)  # (3, S, S)
        else:
            gray = frame.ndim == 2
            if gray:
                img = apply_window(frame, windows[0])[None]  # (1, h, w)
            else:
                img = self._rgb_float(frame).transpose(2, 0, 1)  # (3, h, w)
            x = torch.from_numpy(np.ascontiguousarray(img))[None]  # (1, k, h, w)
            if x.shape[-2:] != (s, s):
                x = F.interpolate(
                    x, size=(s, s), mode="bilinear", align_corners=False, antialias=True
                )
            x = x[0]
            if gray:
                x = x.expand(3, s, s)
        return ((x - self._mean) / self._std).contiguous()

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
        with self._lock:
            key = (t, self._generation)
            entry = self._cache.get(key)
            if isinstance(entry, Future) and entry.cancelled():
                del self._cache[key]
                entry = None
            if entry is not None:
                self._cache.move_to_end(key)
        if entry is None:
            result = self._compute(t)
            self._store(key, result)
        elif isinstance(entry, Future):
            try:
                result = entry.result()
            except CancelledError:  # cancelled by a newer prefetch request meanwhile
                result = self._compute(t)
                self._store(key, result)
            except Exception:
                with self._lock:
                    if self._cache.get(key) is entry:
                        del self._cache[key]
                raise
        else:
            result = entry
        if self._prefetch_enabled:
            nxt = t + self.direction
            if 0 <= nxt < self._num_frames:
                self.prefetch(nxt)
        return result.clone()

    def _store(self, key: tuple[int, int], value: Future | torch.Tensor) -> None:
        with self._lock:
            if key[1] != self._generation:
                return
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                _, old = self._cache.popitem(last=False)
                if isinstance(old, Future):
                    old.cancel()

    def prefetch(self, t: int) -> None:
        """Start preparing frame ``t`` in the background thread (no-op if cached or pending).

        At most one prefetch waits in the queue: a new request cancels an older one that has
        not started yet.
        """
        t = self._check_t(t)
        with self._lock:
            if self._closed:
                return
            key = (t, self._generation)
            if key in self._cache:
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frames")
            if self._pending is not None and self._pending.cancel():
                for k, v in list(self._cache.items()):
                    if v is self._pending:
                        del self._cache[k]
            fut = self._executor.submit(self._compute, t)
            self._pending = fut
            self._store(key, fut)

    def drop_cache(self) -> None:
        """Forget the processed frames kept so far (for a movie whose frames were redefined,
        e.g. the plane a frame reads was changed)."""
        with self._lock:
            self._generation += 1
            self._cache.clear()

    def close(self) -> None:
        """Stop the prefetch thread, drop cached frames and close an opened TIFF file."""
        with self._lock:
            self._closed = True
            ex, self._executor = self._executor, None
            self._cache.clear()
        if ex is not None:
            ex.shutdown(wait=True, cancel_futures=True)
        if self._tif is not None:
            self._tif.close()
            self._tif = None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"FrameSource(shape={_shape_str(self._shape)}, axes={self._axes!r}, "
            f"dtype={self._dtype}, backend={self.backend!r}, image_size={self.image_size})"
        )


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
