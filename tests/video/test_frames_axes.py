"""Tests for :mod:`napari_sam2.video.frames`: movie axes and channel selection."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from frames_reference import expected_float as _expected_float
from frames_reference import random_movie as _movie

from napari_sam2.video.frames import FrameSource, infer_axes

# ------------------------------------------------------------------------- axes


@pytest.mark.parametrize(
    "shape, axes",
    [
        ((20, 30), "YX"),
        ((3, 20, 30), "TYX"),
        ((4, 20, 30), "TYX"),
        ((20, 30, 3), "YXC"),
        ((20, 30, 4), "YXC"),
        ((5, 20, 30, 3), "TYXC"),
        ((5, 2, 20, 30), "TCYX"),
        ((1, 5, 20, 30), "1TYX"),
    ],
)
def test_infer_axes(shape, axes):
    assert infer_axes(shape) == axes


@pytest.mark.parametrize("shape", [(5, 6, 20, 30), (5, 20, 30, 7), (2, 3, 4, 20, 30)])
def test_infer_axes_ambiguous(shape):
    with pytest.raises(ValueError, match=r"\(" + ", ".join(map(str, shape)) + r"\)"):
        infer_axes(shape)
    with pytest.raises(ValueError, match="Pass axes="):
        FrameSource(np.zeros(shape, np.uint8))


@pytest.mark.parametrize(
    "axes, shape, expect",
    [
        ("YX", (20, 30), (1, 20, 30, 0)),
        ("yxc", (20, 30, 3), (1, 20, 30, 3)),
        ("TYX", (4, 20, 30), (4, 20, 30, 0)),
        ("tcyx", (4, 2, 20, 30), (4, 20, 30, 2)),
        ("TYXC", (4, 20, 30, 3), (4, 20, 30, 3)),
        ("CYX", (2, 20, 30), (1, 20, 30, 2)),
        ("YXT", (20, 30, 4), (4, 20, 30, 0)),
        ("TZYX", (4, 1, 20, 30), (4, 20, 30, 0)),
    ],
)
def test_explicit_axes(axes, shape, expect):
    data = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = FrameSource(
            data,
            axes=axes,
            channel=0 if "c" in axes.lower() else None,
            image_size=8,
            prefetch=False,
        )
    assert (src.num_frames, src.height, src.width, src.num_channels) == expect
    raw = src.raw(src.num_frames - 1)
    assert raw.shape == ((20, 30, expect[3]) if expect[3] else (20, 30))
    # raw is channel-last and agrees with the stored data
    ax = axes.upper()
    full = data[(slice(None),) * ax.index("Z") + (0,)] if "Z" in ax else data
    ax = ax.replace("Z", "")
    if "T" not in ax:
        full, ax = full[None], "T" + ax
    full = full.transpose([ax.index(a) for a in "TYXC" if a in ax])
    np.testing.assert_array_equal(raw, full[-1])
    assert src.model_input(0).shape == (3, 8, 8)


def test_one_frame_yx_is_a_one_frame_movie():
    src = FrameSource(_movie(t=1)[0], image_size=8, prefetch=False)
    assert src.axes == "YX" and src.num_frames == 1
    with pytest.raises(ValueError, match="valid 0..0"):
        src.model_input(1)


@pytest.mark.parametrize("axes", ["TXY?", "TYYX", "TZX", "TQYX"])
def test_bad_axes_strings(axes):
    with pytest.raises(ValueError, match="Invalid axes"):
        FrameSource(np.zeros((2, 3, 4, 5)), axes=axes)


def test_axes_length_mismatch_and_z():
    with pytest.raises(ValueError, match="3 letters but the movie has 4 dimensions"):
        FrameSource(np.zeros((2, 3, 8, 8)), axes="TYX")
    with pytest.raises(ValueError, match="Z axis with 3 planes"):
        FrameSource(np.zeros((2, 3, 8, 8)), axes="TZYX")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        FrameSource(np.zeros(5))
    with pytest.raises(ValueError, match="Unsupported pixel type"):
        FrameSource(np.zeros((2, 8, 8), np.complex64))


# ------------------------------------------------------------------------- channels


def test_multichannel_default_uses_channel_zero_with_warning():
    data = np.random.default_rng(4).random((3, 4, 16, 18)).astype(np.float32)
    with pytest.warns(UserWarning, match="4 channels; using channel 0") as rec:
        src = FrameSource(data, axes="TCYX", image_size=8, prefetch=False)
    assert rec[0].filename == __file__  # points at the caller
    ref = FrameSource(data[:, 0], image_size=8, prefetch=False)
    assert src.channels == (0, 0, 0)
    assert src.contrast_limits == ref.contrast_limits
    torch.testing.assert_close(src.model_input(1), ref.model_input(1), atol=0, rtol=0)


def test_single_channel_index():
    data = np.random.default_rng(5).random((3, 4, 16, 18)).astype(np.float32)
    src = FrameSource(data, axes="TCYX", channel=2, image_size=8, prefetch=False)
    ref = FrameSource(data[:, 2], image_size=8, prefetch=False)
    torch.testing.assert_close(src.model_input(0), ref.model_input(0), atol=0, rtol=0)
    # channel-last storage gives the same result
    last = FrameSource(
        data.transpose(0, 2, 3, 1), axes="TYXC", channel=2, image_size=8, prefetch=False
    )
    torch.testing.assert_close(last.model_input(0), ref.model_input(0), atol=0, rtol=0)


def test_channel_tuple_maps_to_rgb_with_per_channel_windows():
    rng = np.random.default_rng(6)
    data = np.stack(
        [rng.random((2, 16, 18)) * 10, rng.random((2, 16, 18)), rng.random((2, 16, 18)) * 1000],
        axis=1,
    )  # (T, C=3, Y, X)
    src = FrameSource(data, axes="TCYX", channel=(2, None, 0), image_size=8, prefetch=False)
    lims = src.contrast_limits
    assert set(lims) == {0, 2}
    assert lims[2][1] > 100 and lims[0][1] < 11  # each channel has its own window
    img = src.normalized(1)
    assert img.shape == (16, 18, 3) and img.dtype == np.float32
    assert np.all(img[..., 1] == 0)
    lo, hi = lims[2]
    np.testing.assert_allclose(img[..., 0], np.clip((data[1, 2] - lo) / (hi - lo), 0, 1), atol=1e-6)
    torch.testing.assert_close(src.model_input(1), _expected_float(img, 8), atol=1e-6, rtol=0)
    # a shorter tuple leaves the missing slots zero
    two = FrameSource(data, axes="TCYX", channel=(1,), image_size=8, prefetch=False)
    n = two.normalized(0)
    assert n[..., 0].max() > 0 and np.all(n[..., 1:] == 0)
    # per-channel limits may be given explicitly
    given = FrameSource(
        data,
        axes="TCYX",
        channel=(2, None, 0),
        contrast_limits=[(0, 500), None, (0, 5)],
        image_size=8,
    )
    assert given.contrast_limits == {2: (0.0, 500.0), 0: (0.0, 5.0)}


def test_rgb_shares_one_window_and_does_not_warn():
    rng = np.random.default_rng(7)
    data = rng.integers(0, 4000, (3, 16, 18, 3)).astype(np.uint16)
    data[..., 2] //= 4  # a dimmer blue keeps its relative dimness
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        src = FrameSource(data, image_size=8, prefetch=False)
    assert src.axes == "TYXC" and src.channels == (0, 1, 2)
    lo, hi = src.contrast_limits
    img = src.normalized(0)
    np.testing.assert_allclose(img, np.clip((data[0] - lo) / (hi - lo), 0, 1), atol=1e-6)
    # RGBA: alpha is dropped
    rgba = np.concatenate([data, np.full(data.shape[:3] + (1,), 7, np.uint16)], axis=-1)
    src4 = FrameSource(rgba, image_size=8, prefetch=False)
    assert src4.channels == (0, 1, 2) and src4.contrast_limits == (lo, hi)
    torch.testing.assert_close(src4.model_input(2), src.model_input(2), atol=0, rtol=0)


@pytest.mark.parametrize("channel", [4, -1, (0, 9), (0, 1, 2, 3), "0", 1.0, (None,)])
def test_bad_channels(channel):
    data = np.zeros((2, 4, 8, 8), np.float32)
    with pytest.raises(ValueError, match="channel"):
        FrameSource(data, axes="TCYX", channel=channel)


def test_bad_channel_message_names_valid_range():
    with pytest.raises(ValueError, match=r"valid indices 0\.\.3"):
        FrameSource(np.zeros((2, 4, 8, 8)), axes="TCYX", channel=4)
    with pytest.raises(ValueError, match="no channel axis"):
        FrameSource(np.zeros((2, 8, 8)), channel=1)
