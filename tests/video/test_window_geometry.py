"""Geometry of object windows (automatic zoom): a window's crop, its model input and its masks
map back onto the frame without a shift or a widening, at any magnification.

Pixel i of the frame covers [i, i + 1) (its centre is i + 0.5); a window (y0, x0, y1, x1) of
side L is resized to the model's S x S input, so its input pixel j is centred at frame
x0 + (j + 0.5) L / S, and so are the low-resolution mask's pixels at L / (S / 4) frame px each.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2.video._sparse import CropUpsampler
from napari_sam2.video.frames import FrameSource
from napari_sam2.video.windows import remap_logits

S = 256  # the micro model's input side
LOW = S // 4  # its low-resolution mask side
FRAME = 300
CENTRE = (150.3, 147.6)  # (y, x) frame px, off the pixel grid
MAGNIFICATIONS = (1, 2, 4, 6, 8)


def window_for(mag: float, shift: tuple[int, int] = (0, 0)) -> tuple[int, int, int, int]:
    """A square window of side S / mag around CENTRE, moved by ``shift`` (y, x) frame px."""
    side = int(round(S / mag))
    y0 = int(CENTRE[0] - side / 2) + shift[0]
    x0 = int(CENTRE[1] - side / 2) + shift[1]
    return (y0, x0, y0 + side, x0 + side)


def disc_logits(window, radius: float) -> torch.Tensor:
    """(1, 1, LOW, LOW) signed-distance logits (frame px, positive inside) of the disc of
    ``radius`` around CENTRE, sampled at the centres of the window's low-resolution pixels:
    what a model that found the disc exactly would return."""
    y0, x0, y1, x1 = window
    ys = y0 + (np.arange(LOW) + 0.5) * (y1 - y0) / LOW
    xs = x0 + (np.arange(LOW) + 0.5) * (x1 - x0) / LOW
    d = np.hypot(ys[:, None] - CENTRE[0], xs[None, :] - CENTRE[1])
    return torch.from_numpy((radius - d).astype(np.float32))[None, None]


def frame_mask(logits: torch.Tensor, window) -> np.ndarray:
    """The (FRAME, FRAME) mask the session writes for logits over ``window``."""
    crop = next(CropUpsampler(tuple(logits.shape[-2:]), window, "cpu")(logits))
    out = np.zeros((FRAME, FRAME), bool)
    assert crop is not None
    out[crop.slices] = crop.logits > 0
    return out


def true_disc(radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:FRAME, :FRAME] + 0.5
    return np.hypot(yy - CENTRE[0], xx - CENTRE[1]) < radius


def centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([ys.mean() + 0.5, xs.mean() + 0.5])


def check_same_disc(mask: np.ndarray, radius: float) -> None:
    truth = true_disc(radius)
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou >= 0.95, f"IoU {iou:.3f}"
    assert abs(mask.sum() / truth.sum() - 1) <= 0.04  # no widening or shrinking
    assert np.abs(centroid(mask) - centroid(truth)).max() <= 0.15  # no shift


@pytest.mark.parametrize("mag", MAGNIFICATIONS)
def test_a_disc_found_in_a_window_is_written_back_unchanged(mag):
    window = window_for(mag)
    radius = 0.12 * (window[2] - window[0])  # the target size of micro's range
    check_same_disc(frame_mask(disc_logits(window, radius), window), radius)


@pytest.mark.parametrize("mag", MAGNIFICATIONS)
def test_a_mask_remapped_into_a_moved_window_is_the_same_disc(mag):
    first = window_for(mag)
    radius = 0.12 * (first[2] - first[0])
    moved = window_for(mag, shift=(5, -7))  # the window follows its object
    for dst in (moved, window_for(mag * 1.5, shift=(3, 2))):  # and a re-sized window
        check_same_disc(frame_mask(remap_logits(disc_logits(first, radius), first, dst), dst),
                        radius)


@pytest.mark.parametrize("mag", MAGNIFICATIONS)
def test_a_window_input_shows_the_disc_where_it_is_on_the_frame(mag):
    """The window's crop resized to the model's input keeps the disc's centre and size: its
    intensity centroid and second moment, mapped back with the pixel-centre convention."""
    yy, xx = np.mgrid[:FRAME, :FRAME] + 0.5
    radius = 6.0
    frame = np.clip(radius - np.hypot(yy - CENTRE[0], xx - CENTRE[1]) + 0.5, 0, 1)
    src = FrameSource(frame[None].astype(np.float32), axes="TYX", contrast_limits=(0.0, 1.0),
                      image_size=S, pixel_mean=(0, 0, 0), pixel_std=(1, 1, 1), prefetch=False)
    window = window_for(mag)
    y0, x0, y1, x1 = window
    img = src.window_inputs(0, [window])[0, 0].numpy().astype(np.float64)  # (S, S)
    scale = (y1 - y0) / S  # frame px per input px
    ys = y0 + (np.arange(S) + 0.5) * scale
    xs = x0 + (np.arange(S) + 0.5) * scale
    w = img / img.sum()
    cy, cx = (w.sum(1) * ys).sum(), (w.sum(0) * xs).sum()
    assert abs(cy - CENTRE[0]) <= 0.05 and abs(cx - CENTRE[1]) <= 0.05
    spread = (w.sum(1) * (ys - cy) ** 2).sum()
    fy = frame / frame.sum()
    truth = (fy.sum(1) * (yy[:, 0] - CENTRE[0]) ** 2).sum()
    # interpolation blurs a little (about the variance of a 1-px triangle kernel, 1/6 px^2):
    # the disc's equivalent radius grows by under 1.5 %, a small fraction of a pixel
    assert truth - 0.02 <= spread <= truth + 0.25
