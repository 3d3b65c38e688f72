"""Turning frames into model input for :class:`~napari_sam2.video.frames.FrameSource`.

:class:`FrameNormaliser` knows which source channels the model sees (one channel replicated to
R, G, B; an RGB frame; or up to three channels mapped to R, G, B), the intensity window of each
(ONE window for the whole movie, estimated on first use or given by the caller), and the model's
input size and pixel statistics. It turns a region of a frame into:

- :meth:`FrameNormaliser.rgb_float`: ``(h, w, 3)`` float32 in ``[0, 1]``;
- :meth:`FrameNormaliser.prepare`: the ``(3, S, S)`` normalised tensor the image encoder takes.

For uint8 movies shown with the window ``(0, 255)`` :meth:`~FrameNormaliser.prepare` reproduces
Meta's video loader exactly (PIL bicubic resize of the 8-bit RGB frame, ``/ 255``, mean / std);
every other case resizes the float ``[0, 1]`` image with torch's antialiased bilinear filter.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ._frame_reader import FrameReader, FrameReadError
from ._intensity import (
    WINDOW_SAMPLE_FRAMES,
    Window,
    apply_window,
    estimate_windows,
    parse_limits,
    select_channels,
    used_channels,
)

__all__ = ["FrameNormaliser"]


class FrameNormaliser:
    """Channel mapping, intensity window, resizing and normalisation of a movie's frames.

    Args:
        reader: the movie (its axes, size, pixel type, and frame reads for the window estimate).
        channel: which channels the model sees (see :class:`~napari_sam2.video.frames.FrameSource`).
        contrast_limits: ``(lo, hi)`` window, or one per entry of a ``channel`` tuple; None
            estimates it from the movie on first use.
        image_size: side ``S`` of the square model input in pixels.
        pixel_mean: per-channel mean subtracted after scaling to ``[0, 1]``.
        pixel_std: per-channel standard deviation divided by after the mean subtraction.

    Raises:
        ValueError: a channel out of range, a bad window, or a non-positive ``image_size``.
    """

    def __init__(
        self,
        reader: FrameReader,
        channel: int | Sequence[int | None] | None,
        contrast_limits: Any,
        image_size: int,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
    ) -> None:
        self._reader = reader
        # n_given: entries of a channel tuple
        self.slots, self.composite, n_given = select_channels(
            channel, reader.num_channels, reader.axes, reader.channels_last
        )
        # gray: one source channel replicated; rgb: natural RGB(A) sharing one window;
        # composite: channels mapped to R, G, B with one window each.
        if self.composite:
            self.mode = "composite"
        elif len(set(self.slots)) == 1:
            self.mode = "gray"
        else:
            self.mode = "rgb"
        self.image_size = int(image_size)
        if self.image_size < 1:
            raise ValueError(f"image_size must be a positive integer; got {image_size!r}.")
        self._mean = torch.as_tensor(pixel_mean, dtype=torch.float32).reshape(3, 1, 1)
        self._std = torch.as_tensor(pixel_std, dtype=torch.float32).reshape(3, 1, 1)
        self._lock = threading.Lock()  # one window estimate at a time
        self._windows: list[Window] | None = (
            parse_limits(contrast_limits, self.slots, self.composite, n_given)
            if contrast_limits is not None
            else None
        )

    # ---------------------------------------------------------------- channels + window

    @property
    def used_channels(self) -> list[int]:
        """Distinct source channels feeding the model, in slot order (``[-1]``: no C axis)."""
        return used_channels(self.slots)

    def read_for_model(self, t: int) -> np.ndarray:
        """Frame ``t`` as the model needs it: ``(H, W)`` in gray mode (only the needed channel is
        read), else ``(H, W, C)``."""
        if self.mode == "gray" and self.slots[0] >= 0:
            return self._reader.read(t, self.slots[0])
        return self._reader.read(t)

    def _estimate_windows(self) -> list[Window]:
        """Percentile window(s) from up to WINDOW_SAMPLE_FRAMES frames spread over time.

        A sampled frame that cannot be read is left out (the error surfaces, naming the frame,
        when that frame is needed), so the frames before it can still be segmented; when no
        sampled frame can be read the first error is raised.
        """
        rd = self._reader
        failed: list[FrameReadError] = []

        def read(t: int) -> np.ndarray:
            try:
                return self.read_for_model(t)
            except FrameReadError as err:
                failed.append(err)
                extra = () if self.mode == "gray" and self.slots[0] >= 0 else (
                    (rd.num_channels,) if rd.num_channels else ()
                )
                return np.zeros((0, 0, *extra), rd.dtype)

        windows = estimate_windows(
            read, rd.num_frames, (rd.height, rd.width), rd.dtype, self.slots, self.composite
        )
        if failed and len(failed) >= min(rd.num_frames, WINDOW_SAMPLE_FRAMES):
            raise failed[0]
        return windows

    def windows(self) -> list[Window]:
        """One ``(lo, hi)`` per used channel (estimated once, on the first call)."""
        with self._lock:
            if self._windows is None:
                self._windows = self._estimate_windows()
            return self._windows

    @property
    def contrast_limits(self) -> Window | dict[int, Window]:
        """One ``(lo, hi)``, or ``{source channel: (lo, hi)}`` for channels composed into RGB."""
        windows = self.windows()
        if self.composite:
            return dict(zip(self.used_channels, windows, strict=True))
        return windows[0]

    # ---------------------------------------------------------------- frames -> model input

    def _uses_pil(self, windows: list[Window]) -> bool:
        return self._reader.dtype == np.uint8 and all(w == (0.0, 255.0) for w in windows)

    def rgb_float(self, frame: np.ndarray) -> np.ndarray:
        """A frame region as read by :meth:`read_for_model`, ``(h, w)`` or ``(h, w, C)``, as
        ``(h, w, 3)`` float32 R, G, B in ``[0, 1]``."""
        windows = self.windows()
        if frame.ndim == 2:
            g = apply_window(frame, windows[0])
            return np.repeat(g[:, :, None], 3, axis=2)
        used = self.used_channels
        out = np.zeros(frame.shape[:2] + (3,), dtype=np.float32)
        for k, c in enumerate(self.slots):
            if c is not None:
                out[:, :, k] = apply_window(frame[:, :, c], windows[used.index(c)])
        return out

    def _rgb_uint8(self, frame: np.ndarray) -> np.ndarray:
        """A uint8 frame region (h, w) or (h, w, C) -> (h, w, 3) uint8 (no windowing)."""
        if frame.ndim == 2:
            return np.repeat(frame[:, :, None], 3, axis=2)
        out = np.zeros(frame.shape[:2] + (3,), dtype=np.uint8)
        for k, c in enumerate(self.slots):
            if c is not None:
                out[:, :, k] = frame[:, :, c]
        return out

    def prepare(self, frame: np.ndarray) -> torch.Tensor:
        """A frame region as read by :meth:`read_for_model`, ``(h, w)`` or ``(h, w, C)``, as the
        ``(3, S, S)`` float32 tensor of the image encoder (squashed to ``S x S``: the aspect
        ratio is not kept, as in SAM 2; normalised with the pixel mean and std)."""
        s = self.image_size
        windows = self.windows()
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
                img = self.rgb_float(frame).transpose(2, 0, 1)  # (3, h, w)
            x = torch.from_numpy(np.ascontiguousarray(img))[None]  # (1, k, h, w)
            if x.shape[-2:] != (s, s):
                x = F.interpolate(
                    x, size=(s, s), mode="bilinear", align_corners=False, antialias=True
                )
            x = x[0]
            if gray:
                x = x.expand(3, s, s)
        return ((x - self._mean) / self._std).contiguous()
