"""Frame-size masks of many objects without a frame-size tensor per object.

An object's low-resolution logits (S/4 x S/4) are upsampled to the frame bilinearly (the values
of ``F.interpolate(..., mode="bilinear", align_corners=False)``), but only over the rectangle of
the frame where they can be positive: an upsampled pixel mixes the 2 x 2 low-resolution pixels
around it, so it is positive only next to a positive one. The objects of a frame then compete
for pixels on their rectangles, objects of different zoom windows weighted by their
magnification (:func:`contest_factor`). Cost and memory go from N x H x W (every object at frame
size) to the objects' own areas: 200 cells on 2048 x 2048 frames ran at 21 s and 6.3 GB per frame
with full-frame logits (``benchmarks/bench_many_cells.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: how strongly a finer object's logits are preferred at a shared boundary: they are weighted by
#: their relative magnification to this power (``docs/benchmarks.md``, "Automatic zoom")
MAGNIFICATION_POWER = 0.5

__all__ = ["MaskCrop", "CropUpsampler", "composite", "contest_factor", "crop_to_box"]


@dataclass
class MaskCrop:
    """One object's logits on the frame rectangle where they can be positive.

    Attributes:
        y0, x0: top-left corner in frame pixels.
        logits: (h, w) float32 logits of frame pixels [y0:y0+h, x0:x0+w] (CPU).
        step: frame pixels per low-resolution logit pixel (the geometric mean of the two
            axes): the scale the object was segmented at. An object in a window magnified k
            times has a step k times smaller than on the whole frame.
    """

    y0: int
    x0: int
    logits: np.ndarray
    step: float = 1.0

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1), end exclusive."""
        h, w = self.logits.shape
        return self.y0, self.x0, self.y0 + h, self.x0 + w

    @property
    def slices(self) -> tuple[slice, slice]:
        y0, x0, y1, x1 = self.box
        return slice(y0, y1), slice(x0, x1)


def crop_to_box(mask: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """A (H, W) bool mask as its bounding rectangle (y0, x0, y1, x1), end exclusive (all zero
    for an empty mask), and a copy of the mask inside it."""
    m = np.asarray(mask, dtype=bool)
    ys, xs = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    if not ys.size:
        return (0, 0, 0, 0), np.zeros((0, 0), bool)
    y0, x0, y1, x1 = int(ys[0]), int(xs[0]), int(ys[-1]) + 1, int(xs[-1]) + 1
    return (y0, x0, y1, x1), m[y0:y1, x0:x1].copy()


class _Axis:
    """Bilinear (align_corners=False) resampling of n_in samples to n_out along one axis, as
    PyTorch computes it: output i mixes sources i0[i] and i1[i] with weights w0[i], w1[i]."""

    def __init__(self, n_in: int, n_out: int, device) -> None:
        # in float32 like PyTorch's CPU kernel, so that the weights agree to the last bit
        scale = np.float32(n_in / n_out)
        src = np.maximum((np.arange(n_out, dtype=np.float32) + 0.5) * scale - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        w1 = (src - i0).astype(np.float32)
        self.n_in = n_in
        self.first = i0  # non-decreasing
        self.i0 = torch.from_numpy(i0).to(device)
        self.i1 = torch.from_numpy(np.minimum(i0 + 1, n_in - 1)).to(device)
        self.w0 = torch.from_numpy(1.0 - w1).to(device)
        self.w1 = torch.from_numpy(w1).to(device)

    def span(self, first: int, last: int) -> tuple[int, int, int]:
        """Outputs [lo, hi) that read source samples first..last, and the first source a
        they read."""
        lo = int(np.searchsorted(self.first, first - 1, side="left"))
        hi = int(np.searchsorted(self.first, last, side="right"))
        return lo, hi, int(self.first[lo])


class CropUpsampler:
    """Upsample (N, 1, h, w) logits onto a frame rectangle, object by object, cropped.

    Args:
        low_hw: (h, w) of the low-resolution logits.
        roi: (y0, x0, y1, x1) frame rectangle the logits cover (the whole frame or a ROI).
        device: device of the logits.
    """

    #: a crop larger than this share of the rectangle is cut from a whole upsampling instead
    #: (PyTorch's vectorised kernel beats the gathers there)
    whole_frame_share = 0.25

    def __init__(self, low_hw: tuple[int, int], roi: tuple[int, int, int, int], device) -> None:
        self.low_hw = tuple(low_hw)
        self.roi = tuple(roi)
        y0, x0, y1, x1 = roi
        self.step = float(np.sqrt((y1 - y0) / low_hw[0] * (x1 - x0) / low_hw[1]))
        self._rows = _Axis(low_hw[0], y1 - y0, device)
        self._cols = _Axis(low_hw[1], x1 - x0, device)

    def __call__(self, low: torch.Tensor) -> Iterator[MaskCrop | None]:
        """One :class:`MaskCrop` per object, in order (None: no positive logit, an empty
        mask); a generator, so that only one object's frame-size logits exist at a time."""
        low = low.float()[:, 0]
        pos = low > 0
        rows, cols = pos.any(2).cpu().numpy(), pos.any(1).cpu().numpy()
        ra, ca = self._rows, self._cols
        for k in range(low.shape[0]):
            r, c = np.flatnonzero(rows[k]), np.flatnonzero(cols[k])
            if not r.size:
                yield None
                continue
            r0, r1, a = ra.span(int(r[0]), int(r[-1]))
            c0, c1, p = ca.span(int(c[0]), int(c[-1]))
            if (r1 - r0) * (c1 - c0) > self.whole_frame_share * len(ra.first) * len(ca.first):
                # spread out (e.g. specks far apart): PyTorch's kernel on the whole rectangle
                full = F.interpolate(
                    low[k][None, None],
                    size=(len(ra.first), len(ca.first)),
                    mode="bilinear",
                    align_corners=False,
                )[0, 0, r0:r1, c0:c1]
                yield MaskCrop(self.roi[0] + r0, self.roi[1] + c0, full.cpu().numpy(), self.step)
                continue
            src = low[k, a:, p:]
            # columns, then rows: PyTorch's order of operations
            j0, j1 = ca.i0[c0:c1] - p, ca.i1[c0:c1] - p
            tmp = src[:, j0] * ca.w0[c0:c1] + src[:, j1] * ca.w1[c0:c1]
            i0, i1 = ra.i0[r0:r1] - a, ra.i1[r0:r1] - a
            crop = tmp[i0] * ra.w0[r0:r1, None] + tmp[i1] * ra.w1[r0:r1, None]
            yield MaskCrop(self.roi[0] + r0, self.roi[1] + c0, crop.cpu().numpy(), self.step)


def contest_factor(step: float, reference: float) -> float:
    """The factor an object's logits are multiplied by in the competition of :func:`composite`
    (1.0 exactly when its step equals the ``reference`` step): its magnification relative to
    the reference, ``reference / step``, to the power :data:`MAGNIFICATION_POWER`.

    Where an object segmented in a zoom window touches one segmented on the whole frame, the
    windowed mask resolves the shared boundary at k times finer frame pixels (its window is
    magnified k times), while the whole-frame mask is smooth there (bilinear from logits
    several frame pixels apart) and usually reaches too far into its neighbour. Weighting
    logits by magnification lets the finer mask decide the boundary where both are positive;
    the square root (:data:`MAGNIFICATION_POWER`) keeps a windowed mask that has itself grown
    into its neighbour from taking all of the neighbour's pixels.
    (Dividing instead, which makes the logits a signed distance in frame pixels, hands the
    boundary to the coarse mask and was measured worse; ``docs/benchmarks.md``.)

    Args:
        step: the object's frame pixels per low-resolution logit pixel.
        reference: the step the competition is measured in.
    """
    if step == reference:
        return 1.0
    return (float(reference) / float(step)) ** MAGNIFICATION_POWER


def composite(
    crops: Iterable[MaskCrop | None], shape: tuple[int, int]
) -> tuple[np.ndarray, list[tuple[tuple[int, int, int, int], np.ndarray] | None]]:
    """Let the objects compete for pixels: the highest positive logit wins (the first object
    on ties), compared on a common scale (:func:`contest_factor`, relative to the first
    object's step) when the objects were segmented at different scales (zoom windows). Each
    object's own mask stays its logits > 0; with equal steps the logits compare as they are.

    Args:
        crops: one crop (or None) per object, consumed once.
        shape: (H, W) of the frame.

    Returns:
        (H, W) int32 index of each pixel's winning object (-1: none), and per object its box
        (y0, x0, y1, x1) with its own mask (logits > 0) inside, or None.
    """
    best = np.zeros(shape, np.float32)
    winner = np.full(shape, -1, np.int32)
    masks: list[tuple[tuple[int, int, int, int], np.ndarray] | None] = []
    reference: float | None = None
    for k, crop in enumerate(crops):
        if crop is None:
            masks.append(None)
            continue
        if reference is None:
            reference = crop.step
        factor = contest_factor(crop.step, reference)
        key = crop.logits if factor == 1.0 else crop.logits * np.float32(factor)
        sl = crop.slices
        better = key > best[sl]
        np.copyto(best[sl], key, where=better)
        np.copyto(winner[sl], k, where=better)
        masks.append((crop.box, crop.logits > 0))
    return winner, masks
