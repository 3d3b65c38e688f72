"""Simulated user prompts for training: a first click or box on a target mask, and corrective
clicks on the error regions of a prediction (SAM 2's interactive training recipe).

Coordinates are (x, y) in model-input pixels of the ``(S, S)`` target masks.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["corrective_click", "jittered_box", "sample_click"]

def sample_click(
    mask: np.ndarray, rng: np.random.Generator, interior: bool = True
) -> tuple[float, float] | None:
    """A click inside a mask.

    Args:
        mask: (S, S) bool mask.
        rng: random generator.
        interior: weight pixels by their distance to the mask's edge (clicks near the centre
            are likelier), else uniform.

    Returns:
        (x, y) in pixels, or None for an empty mask.
    """
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    if interior:
        dist = ndimage.distance_transform_edt(mask)[ys, xs]
        p = dist / dist.sum() if dist.sum() > 0 else None
        k = rng.choice(len(ys), p=p)
    else:
        k = rng.integers(len(ys))
    return float(xs[k]), float(ys[k])


def jittered_box(
    mask: np.ndarray, rng: np.random.Generator, jitter: float = 0.1
) -> tuple[float, float, float, float]:
    """The bounding box of a non-empty mask with Gaussian noise on each side.

    Args:
        mask: (S, S) bool mask with at least one pixel.
        rng: random generator.
        jitter: standard deviation of each side's noise, as a fraction of the box's width
            (x sides) or height (y sides).

    Returns:
        (x0, y0, x1, y1) in pixels, clipped to the mask's square.
    """
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    h, w = y1 - y0 + 1, x1 - x0 + 1
    n = rng.normal(0, jitter, 4) * np.array([w, h, w, h])
    s = mask.shape[0] - 1
    return (
        float(np.clip(x0 + n[0], 0, s)),
        float(np.clip(y0 + n[1], 0, s)),
        float(np.clip(x1 + n[2], 0, s)),
        float(np.clip(y1 + n[3], 0, s)),
    )


def corrective_click(
    pred: np.ndarray, target: np.ndarray, rng: np.random.Generator
) -> tuple[tuple[float, float], int] | None:
    """A corrective click in the largest error region of a prediction.

    Args:
        pred: (S, S) bool predicted mask.
        target: (S, S) bool true mask.
        rng: random generator.

    Returns:
        ((x, y) in pixels, label): label 1 (positive) on a missed region, 0 (negative) on a
        false detection; None when the prediction is perfect.
    """
    err = pred != target
    if not err.any():
        return None
    lab, n = ndimage.label(err)
    sizes = np.bincount(lab.ravel())[1:]
    region = lab == (int(np.argmax(sizes)) + 1)
    xy = sample_click(region, rng)
    positive = bool(target[region].mean() > 0.5)
    return xy, 1 if positive else 0
