"""Blob scale around a click, the fallback size estimate for zoom windows (:mod:`._click_size`).

A click says where an object is, not how large. The size is the blob scale around the click:
the smallest diameter d (a geometric series, 2^(1/4) apart) at which the scale-normalised
Laplacian of Gaussian, ``sigma^2 |LoG_sigma|`` with ``sigma = d / (2 sqrt 2)`` (the scale at
which it peaks on a disc of diameter d), taken as its maximum within ``sigma / 2`` of the
click, has a peak over scale at least 0.6 times its strongest value (touching cells also
respond at the scale of their cluster). Either polarity
counts (bright nuclei, dark phase-contrast bodies). For speed each scale is computed on a crop
of 3 d around the click, block-averaged so that sigma is 2-4 pixels there: every scale costs
the same few hundred pixels, whatever the frame size.

This is the fallback of :mod:`._click_size`, which first asks the model itself (decoding the
click at several zoom levels) and uses this estimate only when the model is not confident.
On bright nuclei the estimate is within 0.75-1.1x of the true diameter on 8 of 10 synthetic
cells; a click on a touching cluster can double it (``cell_diameter`` or a box then sets it).
On cytoplasm-stained cells it finds the dark nucleus, 0.2-0.4x of the cell.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["blob_diameter", "blob_diameters", "diameters_between"]

#: ratio between consecutive diameters tried
STEP = 2 ** 0.25
#: measured diameter / LoG-peak diameter: real cells are blurred, textured and elongated, so
#: the response peaks below the ideal disc's scale (median 0.65-0.84, all 0.78, on synthetic
#: nuclei 8-80 px and phase-contrast cells, 10 cells each)
CALIBRATION = 1.25
#: a scale-space peak counts when it reaches this share of the strongest response
PEAK_SHARE = 0.6
#: responses within this share of the peak's are on its plateau (:func:`blob_diameters`)
PLATEAU = 0.95


def diameters_between(d_min: float, d_max: float) -> np.ndarray:
    """Diameters tried, from ``d_min`` to at least ``d_max`` (px), :data:`STEP` apart."""
    n = max(1, int(math.ceil(math.log(max(d_max, d_min) / d_min) / math.log(STEP))) + 1)
    return d_min * STEP ** np.arange(n)


def blob_diameter(
    image: np.ndarray, centre: tuple[float, float], d_min: float, d_max: float
) -> float:
    """Diameter (px) of the blob under a click, by scale-normalised LoG.

    Args:
        image: (H, W) or (H, W, C) frame (channels are averaged), any dtype.
        centre: (y, x) click in pixels.
        d_min, d_max: diameters to try, in pixels (``d_min`` > 0).

    Returns:
        The chosen diameter times :data:`CALIBRATION`, in pixels.
    """
    return blob_diameters(image, centre, d_min, d_max)[0]


def blob_diameters(
    image: np.ndarray, centre: tuple[float, float], d_min: float, d_max: float
) -> tuple[float, float]:
    """The blob's diameter (:func:`blob_diameter`) and the upper end of its peak (px).

    The response over scale is often flat around its peak (a plateau within :data:`PLATEAU`
    of the peak's value over 2-3 steps): any scale on it is as likely to be the object's.

    Args:
        image: (H, W) or (H, W, C) frame (channels are averaged), any dtype.
        centre: (y, x) click in pixels.
        d_min, d_max: diameters to try, in pixels (``d_min`` > 0).

    Returns:
        (the chosen diameter, the largest diameter above it whose response stays within
        :data:`PLATEAU` of the chosen one's all the way), both times :data:`CALIBRATION`.
    """
    img = np.asarray(image)
    h, w = img.shape[:2]
    cy, cx = int(round(centre[0])), int(round(centre[1]))
    tried, values = [], []
    for d in diameters_between(d_min, d_max):
        sigma = d / (2 * math.sqrt(2))
        f = max(1, int(sigma // 2))  # block size: sigma is 2-4 px after averaging
        half = int(math.ceil(1.5 * d / f)) * f
        y0, x0 = max(0, cy - half), max(0, cx - half)
        y1, x1 = min(h, cy + half + f), min(w, cx + half + f)
        crop = img[y0:y1, x0:x1].astype(np.float32)
        if crop.ndim == 3:
            crop = crop.mean(axis=2)
        ny, nx = crop.shape[0] // f, crop.shape[1] // f
        if ny < 3 or nx < 3:
            break
        small = crop[: ny * f, : nx * f].reshape(ny, f, nx, f).mean(axis=(1, 3))
        s = sigma / f
        resp = np.abs(ndimage.gaussian_laplace(small, s, mode="reflect")) * s * s
        py, px = (cy - y0) / f, (cx - x0) / f
        r = max(1, int(round(s / 2)))
        ya, yb = max(0, int(py) - r), min(ny, int(py) + r + 1)
        xa, xb = max(0, int(px) - r), min(nx, int(px) + r + 1)
        tried.append(float(d))
        values.append(float(resp[ya:yb, xa:xb].max()) if yb > ya and xb > xa else 0.0)
    if not tried:
        return float(d_min) * CALIBRATION, float(d_min) * CALIBRATION
    v = np.asarray(values)
    # the smallest scale that peaks at least PEAK_SHARE as strongly as the strongest: a click
    # on a cell among touching cells also peaks at the cluster's scale
    padded = np.concatenate([[-1.0], v, [-1.0]])
    peaks = np.flatnonzero((v >= padded[:-2]) & (v >= padded[2:]) & (v >= PEAK_SHARE * v.max()))
    best = int(peaks[0]) if peaks.size else int(np.argmax(v))
    top = best
    while top + 1 < len(v) and v[top + 1] >= PLATEAU * v[best]:
        top += 1
    return tried[best] * CALIBRATION, tried[top] * CALIBRATION
