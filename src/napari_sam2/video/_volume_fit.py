"""Masks along z fitted to the image: each slice's mask keeps only the pixels as bright as the
object on its start slice.

The bundled ``micro`` model draws a mask of nearly one size at its input whatever the
object's size: small nuclei (y-x radius 8-12 voxels on 128-px slices) get masks 1.6-2.5 times
their section, and the mask hardly shrinks towards a nucleus' tips (a section of 60 voxels
gets a mask of 290), so a z-stack's 3-D masks were 1.5-2 times the nuclei's volume
(docs/3d.md). The image does show where the object ends. Each object's intensity level is
chosen once, on its start slice (the prompted or tracked slice): :data:`LEVEL_SHARE` of the way
from the background to Otsu's threshold over its mask and a margin around it as wide as the
mask's radius (the object and its background); on every
slice its mask then keeps the pixels on the object's side of that level (brighter for a bright
object, darker for a dark one; the image smoothed with a Gaussian of
:data:`SMOOTH_SIGMA` pixels), the largest connected piece, holes filled. A slice where nothing
is left ends the object there (the z guard's empty-mask rule), so a tip that fades below the
level ends the mask too. The fit only removes pixels; objects whose start mask would keep less
than :data:`MIN_KEPT` of itself (no clear level: a flat or textured object) are left as the
model drew them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["LEVEL_SHARE", "SMOOTH_SIGMA", "MIN_KEPT", "ImageFit", "fit_level", "smooth"]

#: Gaussian smoothing (pixels) of a slice before its pixels are compared with the level
#: (texture and noise inside a nucleus would otherwise punch holes into the fitted mask).
SMOOTH_SIGMA = 1.0
#: an object is fitted only if its fitted start mask keeps at least this share of the model's
MIN_KEPT = 0.25
#: the level lies this share of the way from the background (median of the margin) to Otsu's
#: threshold: a blurred edge is fainter than Otsu's level between object and background, and
#: a nucleus' tips are dimmer than its middle (0.75-0.85 equally good on synthetic stacks of
#: seeds 2000-2009: mean 3-D IoU 0.820-0.825; Otsu's level itself 0.788)
LEVEL_SHARE = 0.8


@dataclass(frozen=True)
class ImageFit:
    """An object's intensity level (the slice images' units) and side of it (``bright``)."""

    level: float
    bright: bool

    def apply(self, mask: np.ndarray, image: np.ndarray) -> np.ndarray:
        """The part of ``mask`` on the object's side of the level.

        Args:
            mask: (h, w) bool mask (any rectangle of a slice).
            image: (h, w) smoothed intensities of the same rectangle (:func:`smooth`).

        Returns:
            (h, w) bool: the largest 8-connected piece of the mask's pixels beyond the level,
            holes filled (empty when none is).
        """
        keep = mask & ((image > self.level) if self.bright else (image < self.level))
        lab, n = ndimage.label(keep, structure=np.ones((3, 3), bool))
        if n > 1:
            sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
            keep = lab == 1 + int(np.argmax(sizes))
        return ndimage.binary_fill_holes(keep) & mask if n else keep


def smooth(image: np.ndarray) -> np.ndarray:
    """A slice smoothed with a Gaussian of :data:`SMOOTH_SIGMA` pixels (float32)."""
    return ndimage.gaussian_filter(np.asarray(image, np.float32), SMOOTH_SIGMA)


def fit_level(mask: np.ndarray, image: np.ndarray) -> ImageFit | None:
    """An object's level from its mask on its start slice.

    Args:
        mask: (H, W) bool mask on the start slice.
        image: (H, W) smoothed intensities of that slice (:func:`smooth`).

    Returns:
        The fit, or None where the object has no level to fit to: an empty mask, no contrast
        between the mask and its margin, or a fitted start mask under :data:`MIN_KEPT` of the
        model's.
    """
    from skimage.filters import threshold_otsu

    n = int(mask.sum())
    if not n:
        return None
    radius = max(3.0, float(np.sqrt(n / np.pi)))
    ys, xs = np.nonzero(mask)
    pad = int(np.ceil(radius)) + 1
    y0, x0 = max(ys.min() - pad, 0), max(xs.min() - pad, 0)
    y1, x1 = min(ys.max() + pad + 1, mask.shape[0]), min(xs.max() + pad + 1, mask.shape[1])
    m, img = mask[y0:y1, x0:x1], image[y0:y1, x0:x1]
    region = ndimage.distance_transform_edt(~m) <= radius
    margin = region & ~m
    if not margin.any():
        return None
    inside, outside = float(img[m].mean()), float(img[margin].mean())
    values = img[region]
    if inside == outside or values.min() == values.max():
        return None
    background = float(np.median(img[margin]))
    level = background + LEVEL_SHARE * (float(threshold_otsu(values)) - background)
    fit = ImageFit(level, inside > outside)
    if fit.apply(m, img).sum() < MIN_KEPT * n:
        return None
    return fit

