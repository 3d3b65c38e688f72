"""Channel selection and intensity windows for :class:`~napari_sam2.video.frames.FrameSource`.

The model sees three channels (R, G, B). :func:`select_channels` decides which source channel
feeds each of them; :func:`parse_limits` and :func:`estimate_windows` give the intensity window
``(lo, hi)`` of every used source channel (ONE window for the whole movie, so the brightness does
not flicker from frame to frame), and :func:`apply_window` maps intensities to ``[0, 1]``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: Frames sampled over time to estimate the global intensity window.
WINDOW_SAMPLE_FRAMES = 16
#: About this many pixels per sampled frame (per channel) enter the percentile estimate.
WINDOW_SAMPLE_PIXELS = 1 << 15
#: Percentiles (in %) that define the automatic intensity window.
WINDOW_PERCENTILES = (0.5, 99.5)
#: Share of the sampled blocks (see :func:`block_extremes`) whose extremes define the tails:
#: the darkest / brightest 0.01 %.
TAIL_SHARE = 1e-4
#: A tail reaching this many window widths past the percentile window holds objects (sparse
#: cells on a large frame cover under 0.5 % of the pixels, so WINDOW_PERCENTILES lands in the
#: background); the window is widened to include them. Windows that hold structure (dense
#: cells) keep it unless the tail is this far out: widening would compress their contrast.
TAIL_WIDTHS = 3.0
#: Percentiles (in %) of the movie's core: a movie whose core is only noise on a smooth
#: background holds sparse cells at most (under 1 % of the pixels), so the percentile window's
#: content is noise and illumination, which widening only compresses.
CORE_PERCENTILES = (1.0, 99.0)
#: The core is measured after removing a smooth background: each sampled frame is cut into
#: this many tiles across (at least 8 x 8 samples each) and every tile's median is subtracted,
#: so an uneven illumination does not count as structure, while cells (smaller than a tile, or
#: many of them) do.
BACKGROUND_TILES = 16
#: A core at most this many noise sigmas wide is only noise: Gaussian noise alone spans 4.7
#: sigmas between the 1st and 99th percentiles; the margin allows sparse cells' halos and
#: what the tiles leave of a strongly uneven illumination. Dense cells give 6-100 sigmas on the
#: synthetic looks (6.4: a low-contrast brightfield movie whose tails lie inside its window).
CORE_SIGMAS = 8.0
#: With a noise-only core, a tail this many noise sigmas past the window's end holds objects.
#: The tails are 2 x 2 patch values (:func:`block_extremes`): Gaussian noise alone keeps them
#: about 1 sigma inside the window (the window's end is 2.6 sigmas from the mean), and cells
#: reach about 0.75 sigma past their mean, so 2.5 sigmas past the window finds cells down to a
#: signal-to-noise ratio (cell minus background over the noise sigma) of about 5.
TAIL_SIGMAS = 2.5

Window = tuple[float, float]


# --------------------------------------------------------------------------------------------
# Channel selection
# --------------------------------------------------------------------------------------------


def select_channels(
    channel: int | Sequence[int | None] | None, n_c: int, axes: str, c_last: bool
) -> tuple[list[int | None], bool, int]:
    """Source channel shown as each of R, G, B.

    Args:
        channel: the user's ``channel`` argument of ``FrameSource``.
        n_c: size of the movie's channel axis (0 when it has none).
        axes: the movie's axes (for error messages).
        c_last: whether the channel axis is the last one (RGB / RGBA data).

    Returns:
        ``(slots, composite, n_given)``: the source channel for each of R, G, B (``None`` =
        zeros; all three equal ``-1`` means "no channel axis"), whether per-channel windows are
        used, and the number of entries of a ``channel`` tuple (0 otherwise).
    """
    if n_c == 0:
        if channel not in (None, 0, (0,), [0]):
            raise ValueError(
                f"channel={channel!r} was given but the movie has no channel axis "
                f"(axes {axes!r}); use channel=None, or pass axes= naming the C axis."
            )
        return [-1, -1, -1], False, 0

    def check(c: Any) -> int:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
            raise ValueError(f"channel indices must be integers; got {c!r}.")
        if not 0 <= int(c) < n_c:
            raise ValueError(
                f"channel {int(c)} is out of range: the movie has {n_c} channels "
                f"(valid indices 0..{n_c - 1})."
            )
        return int(c)

    if channel is None:
        if n_c == 3 or (n_c == 4 and c_last):
            return [0, 1, 2], False, 0
        if n_c > 1:
            warnings.warn(
                f"The movie has {n_c} channels; using channel 0. Pass channel=<index>, or "
                f"channel=(r, g, b) to map up to three channels to red, green and blue.",
                UserWarning,
                stacklevel=4,  # the caller of FrameSource(...)
            )
        return [0, 0, 0], False, 0
    if isinstance(channel, (int, np.integer)) and not isinstance(channel, bool):
        c = check(channel)
        return [c, c, c], False, 0
    if isinstance(channel, (str, bytes)) or not isinstance(channel, Sequence):
        raise ValueError(
            f"channel must be None, an int or a tuple of up to 3 ints; got {channel!r}."
        )
    if not 1 <= len(channel) <= 3:
        raise ValueError(
            f"channel tuple must have 1 to 3 entries (for red, green, blue); got {channel!r}."
        )
    slots = [None if c is None else check(c) for c in channel]
    n_given = len(slots)
    if all(s is None for s in slots):
        raise ValueError("channel tuple selects no channel; give at least one index.")
    slots += [None] * (3 - len(slots))
    return slots, True, n_given


def used_channels(slots: Sequence[int | None]) -> list[int]:
    """Distinct source channels feeding the model, in slot order (``[-1]``: no C axis)."""
    out: list[int] = []
    for s in slots:
        if s is not None and s not in out:
            out.append(s)
    return out


# --------------------------------------------------------------------------------------------
# Intensity window
# --------------------------------------------------------------------------------------------


def parse_limits(
    limits: Any, slots: Sequence[int | None], composite: bool, n_given: int
) -> list[Window]:
    """Normalise user limits to one window per used channel (see :func:`used_channels`).

    Args:
        limits: ``(lo, hi)``, or (composite only) one ``(lo, hi)`` per channel-tuple entry.
        slots: source channel of R, G, B as returned by :func:`select_channels`.
        composite: whether channels are composed into RGB with one window each.
        n_given: number of entries of the user's channel tuple.

    Returns:
        One ``(lo, hi)`` per entry of ``used_channels(slots)``.
    """
    used = used_channels(slots)

    def pair(p: Any) -> Window:
        try:
            lo, hi = (float(v) for v in p)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"contrast_limits must be (lo, hi) numbers; got {limits!r}.") from exc
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
            raise ValueError(f"contrast_limits must be finite with lo <= hi; got {limits!r}.")
        return lo, hi

    try:
        items = list(limits)
    except TypeError as exc:
        raise ValueError(f"contrast_limits must be (lo, hi); got {limits!r}.") from exc
    if len(items) == 2 and all(np.ndim(v) == 0 for v in items):
        return [pair(items)] * len(used)
    if not composite or len(items) != n_given:
        raise ValueError(
            "contrast_limits must be one (lo, hi) pair"
            + (
                f" or one pair per entry of the channel tuple ({n_given} entries)"
                if composite
                else ""
            )
            + f"; got {limits!r}."
        )
    per: dict[int, Window] = {}
    for c, p in zip(slots, items, strict=False):
        if c is not None:
            per[c] = pair(p)
    return [per[c] for c in used]


def estimate_windows(
    read: Callable[[int], np.ndarray],
    num_frames: int,
    frame_shape: tuple[int, int],
    dtype: np.dtype,
    slots: Sequence[int | None],
    composite: bool,
) -> list[Window]:
    """Percentile window(s) from up to WINDOW_SAMPLE_FRAMES frames spread over time.

    Args:
        read: ``read(t)`` -> frame ``t`` as fed to the model, (H, W) or (H, W, C).
        num_frames: number of frames T.
        frame_shape: (H, W) in pixels.
        dtype: pixel type of the movie.
        slots: source channel of R, G, B as returned by :func:`select_channels`.
        composite: one window per used channel (else one shared window).

    Returns:
        One ``(lo, hi)`` per entry of ``used_channels(slots)``.
    """
    used = used_channels(slots)
    if dtype.kind == "b":
        return [(0.0, 1.0)] * len(used)
    height, width = frame_shape
    n = min(num_frames, WINDOW_SAMPLE_FRAMES)
    ts = np.unique(np.round(np.linspace(0, num_frames - 1, n)).astype(int))
    stride = max(1, math.ceil(math.sqrt(height * width / WINDOW_SAMPLE_PIXELS)))
    # gray: 1 group (the one channel); rgb: 1 group (R, G, B pooled); composite: 1 per channel
    groups: list[list[int]] = [used] if not composite else [[c] for c in used]
    # float32 holds uint8/16, int8/16, float16/32 exactly; wider types need float64
    exact32 = dtype.itemsize <= 2 or dtype == np.float32
    work = np.float32 if exact32 else np.float64
    samples: list[list[np.ndarray]] = [[] for _ in groups]
    tails: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in groups]
    diffs: list[list[np.ndarray]] = [[] for _ in groups]
    cores: list[list[float]] = [[] for _ in groups]
    n_blocks = len(ts) * max(1, height // stride) * max(1, width // stride) * len(groups[0])
    k_tail = max(1, round(n_blocks * TAIL_SHARE))
    for t in ts:
        full = read(int(t))
        frame = full[::stride, ::stride]
        for i, g in enumerate(groups):
            v = frame if frame.ndim == 2 else frame[..., g]
            sample = np.array(v, dtype=work)
            samples[i].append(sample.ravel())
            planes = [sample] if sample.ndim == 2 else np.moveaxis(sample, -1, 0)
            cores[i] += [flat_core(plane) for plane in planes]
            part = full if full.ndim == 2 else full[..., g]
            tails[i].append(block_extremes(part, stride, k_tail, work))
            diffs[i].append(adjacent_differences(part, 2 * stride, work))
    windows = []
    for i in range(len(samples)):
        noise = noise_sigma(np.concatenate(diffs[i]))
        diffs[i] = []
        v = np.concatenate(samples[i])
        samples[i] = []
        if v.dtype.kind == "f":
            v = v[np.isfinite(v)]
        if v.size == 0:
            windows.append((0.0, 1.0))
            continue
        lo, hi = np.percentile(v, WINDOW_PERCENTILES, overwrite_input=True)
        if not hi > lo:  # e.g. sparse bright spots on a flat background
            lo, hi = v.min(), v.max()
        dark = np.concatenate([d for d, _ in tails[i]])
        bright = np.concatenate([b for _, b in tails[i]])
        core = [c for c in cores[i] if math.isfinite(c)]
        lo, hi = widen_for_tails(
            float(lo), float(hi), dark, bright, k_tail, noise=noise,
            core=float(np.median(core)) if core else None,
        )
        windows.append((float(lo), float(hi)))
    if not composite:
        windows = windows * len(used)
    return windows


def block_extremes(
    frame: np.ndarray, stride: int, k: int, work: type
) -> tuple[np.ndarray, np.ndarray]:
    """Darkest and brightest 2 x 2 patch in each ``stride x stride`` block of a frame.

    A patch's value is its brightest pixel for the dark side and its darkest pixel for the bright
    side, so an isolated hot or dead pixel does not count as an object; an object of 2 px or more
    does, however small it is next to the sampling stride.

    Args:
        frame: (H, W) or (H, W, k) intensities.
        stride: block side in pixels (the sampling stride of :func:`estimate_windows`).
        k: how many of the darkest / brightest block values to keep.
        work: float dtype of the result.

    Returns:
        ``(dark, bright)``: the ``k`` darkest and ``k`` brightest block values (fewer when the
        frame has fewer blocks), 1-D, unsorted; NaN blocks are left out.
    """
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        v = np.asarray(frame, dtype=work).ravel()
        return _extreme(v, k, False), _extreme(v, k, True)
    a, b = frame[:-1, :-1], frame[1:, :-1]
    c, d = frame[:-1, 1:], frame[1:, 1:]
    out = []
    for pick, reduce in ((np.maximum, np.min), (np.minimum, np.max)):
        patch = pick(a, b)  # one frame-sized temporary at a time
        pick(patch, c, out=patch)
        pick(patch, d, out=patch)
        h, w = patch.shape[0] // stride * stride, patch.shape[1] // stride * stride
        if h == 0 or w == 0:
            v = np.asarray(patch, dtype=work).ravel()
        else:
            blocks = patch[:h, :w].reshape(
                h // stride, stride, w // stride, stride, *patch.shape[2:]
            )
            v = np.asarray(reduce(blocks, axis=(1, 3)), dtype=work).ravel()
            del blocks
        del patch
        out.append(_extreme(v, k, reduce is np.max))
    return out[0], out[1]


def adjacent_differences(frame: np.ndarray, step: int, work: type) -> np.ndarray:
    """Differences of horizontally adjacent pixels on a ``step x step`` grid of a frame.

    Args:
        frame: (H, W) or (H, W, k) intensities.
        step: grid spacing in pixels (:func:`estimate_windows` uses twice its sampling stride:
            a quarter as many differences as sampled pixels, plenty for a median).
        work: float dtype of the result.

    Returns:
        1-D ``frame[y, x + 1] - frame[y, x]`` for every ``step``-th row and column; empty for
        frames narrower than 2 px.
    """
    if frame.ndim < 2 or frame.shape[0] == 0 or frame.shape[1] < 2:
        return np.zeros(0, work)
    right = np.asarray(frame[::step, 1::step], dtype=work)  # may be a view of the movie
    left = np.asarray(frame[::step, : frame.shape[1] - 1 : step], dtype=work)
    return np.subtract(right, left).ravel()


def flat_core(plane: np.ndarray) -> float:
    """Width of a sampled frame's :data:`CORE_PERCENTILES` once its smooth background is removed.

    The frame is cut into :data:`BACKGROUND_TILES` tiles across (at least 8 x 8 samples each);
    each tile's median is subtracted, so an illumination gradient or vignetting leaves only
    noise, while cells keep their contrast (sparse ones are not the tile's median; dense ones
    fill some tiles and not others).

    Args:
        plane: (h, w) float samples of one frame and channel (NaN allowed; empty: NaN).

    Returns:
        The core's width in intensity units; NaN when the frame has no finite sample.
    """
    h, w = plane.shape
    if h == 0 or w == 0:
        return math.nan
    side = max(8, math.ceil(max(h, w) / BACKGROUND_TILES))
    nh, nw = math.ceil(h / side), math.ceil(w / side)
    tiles = np.full((nh * side, nw * side), np.nan, plane.dtype)
    tiles[:h, :w] = plane
    tiles = tiles.reshape(nh, side, nw, side)
    finite = np.isfinite(tiles)
    if not finite.any():
        return math.nan
    with warnings.catch_warnings():  # an all-NaN tile (a damaged region) has no median
        warnings.simplefilter("ignore", RuntimeWarning)
        tiles -= np.nanmedian(tiles, axis=(1, 3), keepdims=True)
    c_lo, c_hi = np.percentile(tiles[finite], CORE_PERCENTILES)
    return float(c_hi - c_lo)


def noise_sigma(diffs: np.ndarray) -> float:
    """Robust standard deviation of pixel noise from differences of adjacent pixels.

    Neighbouring pixels share the signal (cells and illumination change little from one pixel
    to the next) but not the noise, so their difference is noise with ``sqrt(2)`` sigma; the
    median absolute deviation ignores the few differences across cell edges.

    Args:
        diffs: 1-D differences from :func:`adjacent_differences` (intensity units).

    Returns:
        Noise sigma in intensity units; 0.0 when unknown (no finite differences, or noise
        below the intensity step, as in 8-bit movies with almost no noise).
    """
    d = diffs[np.isfinite(diffs)] if diffs.dtype.kind == "f" else diffs
    if d.size == 0:
        return 0.0
    mad = float(np.median(np.abs(d - np.median(d))))
    return 1.4826 * mad / math.sqrt(2.0)  # MAD -> sigma of a Gaussian; difference -> pixel


def _extreme(v: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """The ``k`` largest (or smallest) finite values of 1-D ``v``, unsorted."""
    if v.dtype.kind == "f":
        v = v[np.isfinite(v)]
    if v.size <= k:
        return v
    return np.partition(v, v.size - k)[v.size - k:] if largest else np.partition(v, k - 1)[:k]


def widen_for_tails(
    lo: float,
    hi: float,
    dark: np.ndarray,
    bright: np.ndarray,
    k: int,
    *,
    noise: float = 0.0,
    core: float | None = None,
) -> Window:
    """The percentile window ``(lo, hi)`` widened to sparse objects outside it.

    When cells cover under 0.5 % of a movie's pixels (a few small nuclei on a large frame, two
    bacteria on a large field), the percentile window is the background's noise: the cells
    saturate (or go black) and the noise fills the model's whole input range. An end moves to
    the ``k``-th brightest (darkest) block when that tail lies far enough past it:

    - the movie's core (:func:`flat_core`: its :data:`CORE_PERCENTILES` once a smooth
      background is subtracted) is only noise (at most :data:`CORE_SIGMAS` noise sigmas wide):
      more than :data:`TAIL_SIGMAS` noise sigmas past the end, so cells at a moderate
      signal-to-noise ratio are found; compressing noise and illumination loses nothing;
    - otherwise (dense cells, a textured background, or the noise is unknown): more than
      :data:`TAIL_WIDTHS` window widths past the end, so a few very bright cells (mitoses) do
      not compress the contrast of all the others.

    Args:
        lo, hi: the percentile window.
        dark, bright: the darkest / brightest block values of all sampled frames, from
            :func:`block_extremes` (intensity units).
        k: the rank that defines the tail (:data:`TAIL_SHARE` of the sampled blocks).
        noise: the pixel noise sigma from :func:`noise_sigma` (intensity units); 0 = unknown.
        core: the movie's core width, the median of :func:`flat_core` over the sampled
            frames (intensity units; default: the width of ``(lo, hi)``).

    Returns:
        ``(lo, hi)``.
    """
    width = hi - lo
    if width <= 0 or dark.size == 0 or bright.size == 0:
        return lo, hi
    k_dark, k_bright = min(k, dark.size), min(k, bright.size)
    bottom = float(np.partition(dark, k_dark - 1)[k_dark - 1])
    top = float(np.partition(bright, bright.size - k_bright)[bright.size - k_bright])
    core = width if core is None else core
    noise_only = noise > 0 and core <= CORE_SIGMAS * noise
    reach = TAIL_SIGMAS * noise if noise_only else TAIL_WIDTHS * width
    if top > hi + reach:
        hi = top
    if bottom < lo - reach:
        lo = bottom
    return lo, hi


def apply_window(x: np.ndarray, window: Window) -> np.ndarray:
    """Map ``x`` to float32 ``[0, 1]`` with ``window``; NaN/-inf -> lo, +inf -> hi.

    Args:
        x: image of any shape and real dtype (not modified).
        window: ``(lo, hi)`` in the image's intensity units; ``lo == hi`` gives a step at lo.

    Returns:
        float32 array of the same shape.
    """
    lo, hi = window
    work = np.float64 if x.dtype == np.float64 else np.float32
    x = x.astype(work, copy=True)
    if x.dtype.kind == "f":
        np.nan_to_num(x, copy=False, nan=lo, posinf=hi, neginf=lo)
    if hi > lo:
        x -= lo
        x *= 1.0 / (hi - lo)
        np.clip(x, 0.0, 1.0, out=x)
    else:  # constant window: a step at lo (no division by zero)
        x = (x > lo).astype(work)
    return x.astype(np.float32, copy=False)
