"""Masks along z fitted to the image: a mask far wider than the object keeps only the pixels
as bright (or dark) as the object.

The bundled ``micro`` model draws a mask of nearly one size at its input whatever the
object's size: small nuclei (y-x radius 8-12 voxels on 128-px slices) get masks 1.6-2.5 times
their section, and the mask hardly shrinks towards a nucleus' tips (a section of 60 voxels
gets a mask of 290), so a z-stack's 3-D masks were 1.5-2 times the nuclei's volume
(docs/3d_measurements.md). The image does show where the object ends.

Each object's level is set on its start slice (the prompted or tracked slice) by
:func:`slice_level`: :data:`LEVEL_SHARE` of the way from the background (the median of a margin
around the mask as wide as its radius) to Otsu's threshold over mask and margin. On every
slice the level is that one, or the slice's own where that lies nearer the background (a
dimmer, out-of-focus section), and the mask keeps its pixels on the object's side of the
level (brighter for a bright object, darker for a dark one; the image smoothed with a
Gaussian of :data:`SMOOTH_SIGMA` pixels): its largest connected piece and any other of at
least :data:`PIECE_SHARE` of the mask, holes filled. Where
that keeps at least :data:`KEEP_AS_IS` of the mask, the model's mask is kept as it is; where
nothing is left, the object ends there (the z guard's empty-mask rule). The fit only removes
pixels; an object whose start mask would keep less than :data:`MIN_KEPT` of itself (no clear
level: a flat or textured object) is left as the model drew it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "KEEP_AS_IS",
    "LEVEL_SHARE",
    "MIN_KEPT",
    "PIECE_SHARE",
    "SMOOTH_SIGMA",
    "ImageFit",
    "fit_level",
    "fit_slice",
    "margin_radius",
    "slice_level",
    "smooth",
]

#: Gaussian smoothing (pixels) of a slice before its pixels are compared with the level
#: (texture and noise inside a nucleus would otherwise punch holes into the fitted mask).
SMOOTH_SIGMA = 1.0
#: an object is fitted only if its fitted start mask keeps at least this share of the model's
MIN_KEPT = 0.25
#: the fitted mask keeps its largest piece and the pieces of at least this share of the
#: model's mask (the two halves of a dividing cell, which division detection looks for);
#: smaller specks are dropped
PIECE_SHARE = 0.25
#: the level lies this share of the way from the background (median of the margin) to Otsu's
#: threshold: a blurred edge is fainter than Otsu's level between object and background.
#: Synthetic stacks of seeds 2000-2009, mean 3-D IoU: 0.7 / 0.8 / 0.9 give 0.820 / 0.842 /
#: 0.848 (0.784 / 0.806 / 0.813 with overlaps to the nearer start slice); the higher the
#: level, the more of a real cell's dim rim it cuts where the model's mask is too wide
LEVEL_SHARE = 0.8
#: on a slice where the pixels beyond the level are at least this share of the model's mask,
#: the mask already follows the image and is kept as the model drew it (on the z-stacks of
#: Fluo-N3DH-CHO the model's masks are right and a level cuts off the cells' dim rims)
KEEP_AS_IS = 0.9


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
            (h, w) bool: the mask's pixels beyond the level, the largest 8-connected piece
            and those of at least :data:`PIECE_SHARE` of ``mask``, holes filled (empty when
            none is).
        """
        keep = mask & ((image > self.level) if self.bright else (image < self.level))
        lab, n = ndimage.label(keep, structure=np.ones((3, 3), bool))
        if n > 1:
            sizes = np.bincount(lab.ravel(), minlength=n + 1)
            sizes[0] = 0
            wanted = sizes >= PIECE_SHARE * np.count_nonzero(mask)
            wanted[int(np.argmax(sizes))] = True
            keep = wanted[lab]
        return ndimage.binary_fill_holes(keep) & mask if n else keep

    def on_slice(self, mask: np.ndarray, image: np.ndarray) -> ImageFit:
        """The fit for another slice: the start slice's level, or the slice's own level
        (:func:`slice_level` of ``mask`` there) where that lies nearer the background (a
        dimmer, out-of-focus section keeps its pixels).

        Args:
            mask: (H, W) bool mask of the object on that slice.
            image: (H, W) smoothed intensities of the slice.

        Returns:
            The fit to apply on that slice.
        """
        own = slice_level(mask, image)
        if own is None or own.bright != self.bright:
            return self
        level = min(self.level, own.level) if self.bright else max(self.level, own.level)
        return ImageFit(level, self.bright)


def smooth(image: np.ndarray) -> np.ndarray:
    """A slice smoothed with a Gaussian of :data:`SMOOTH_SIGMA` pixels (float32)."""
    return ndimage.gaussian_filter(np.asarray(image, np.float32), SMOOTH_SIGMA)


def margin_radius(pixels: int) -> float:
    """Width (pixels) of the margin :func:`slice_level` reads around a mask of ``pixels``
    pixels: the radius of a disc of that area, at least 3."""
    return max(3.0, float(np.sqrt(pixels / np.pi)))


def margin_of(mask: np.ndarray, pixels: int | None = None) -> np.ndarray:
    """The margin around a mask: the pixels outside it within :func:`margin_radius` of it.

    Args:
        mask: (H, W) bool mask (on a rectangle with room for the margin; its edges clip it).
        pixels: the mask's pixel count (None: counted here).

    Returns:
        (H, W) bool margin.
    """
    n = int(np.count_nonzero(mask)) if pixels is None else pixels
    return (ndimage.distance_transform_edt(~mask) <= margin_radius(n)) & ~mask


def slice_level(mask: np.ndarray, image: np.ndarray) -> ImageFit | None:
    """The level of a mask on one slice: :data:`LEVEL_SHARE` of the way from the median of a
    margin around the mask (as wide as its radius) to Otsu's threshold over the mask and margin.

    Args:
        mask: (H, W) bool mask.
        image: (H, W) smoothed intensities of the slice (:func:`smooth`).

    Returns:
        The level and the object's side of it (brighter or darker than its margin), or None for
        an empty mask or no contrast.
    """
    from skimage.filters import threshold_otsu

    n = int(mask.sum())
    if not n:
        return None
    radius = margin_radius(n)
    ys, xs = np.nonzero(mask)
    pad = int(np.ceil(radius)) + 1
    y0, x0 = max(ys.min() - pad, 0), max(xs.min() - pad, 0)
    y1, x1 = min(ys.max() + pad + 1, mask.shape[0]), min(xs.max() + pad + 1, mask.shape[1])
    m, img = mask[y0:y1, x0:x1], image[y0:y1, x0:x1]
    margin = margin_of(m, n)
    region = margin | m
    if not margin.any():
        return None
    inside, outside = float(img[m].mean()), float(img[margin].mean())
    values = img[region]
    if inside == outside or values.min() == values.max():
        return None
    background = float(np.median(img[margin]))
    level = background + LEVEL_SHARE * (float(threshold_otsu(values)) - background)
    return ImageFit(level, inside > outside)


def fit_level(mask: np.ndarray, image: np.ndarray) -> ImageFit | None:
    """An object's level from its mask on its start slice (:func:`slice_level`).

    Args:
        mask: (H, W) bool mask on the start slice.
        image: (H, W) smoothed intensities of that slice (:func:`smooth`).

    Returns:
        The fit, or None where the object has no level to fit to: an empty mask, no contrast
        between the mask and its margin, or a fitted start mask under :data:`MIN_KEPT` of the
        model's.
    """
    fit = slice_level(mask, image)
    if fit is None:
        return None
    n = int(mask.sum())
    if fit.apply(mask, image).sum() < MIN_KEPT * n:
        return None
    return fit


def fit_slice(
    fit: ImageFit, mask: np.ndarray, image: np.ndarray, box: tuple[int, int, int, int]
) -> np.ndarray | None:
    """An object's mask on a slice fitted to the image (:meth:`ImageFit.on_slice`).

    Args:
        fit: the object's fit from its start slice (:func:`fit_level`).
        mask: (H, W) bool mask of the object on the slice.
        image: (H, W) smoothed intensities of the slice (:func:`smooth`).
        box: (y0, x0, y1, x1) rectangle holding the mask (frame pixels, end exclusive).

    Returns:
        The fitted mask's crop of ``box``, or None where the model's mask is kept
        (the fitted part would keep at least :data:`KEEP_AS_IS` of it).
    """
    y0, x0, y1, x1 = box
    crop = mask[y0:y1, x0:x1]
    cut = fit.on_slice(mask, image).apply(crop, image[y0:y1, x0:x1])
    if np.count_nonzero(cut) >= KEEP_AS_IS * np.count_nonzero(crop):
        return None
    return cut
