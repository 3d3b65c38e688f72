"""Which objects' masks ``fit_masks="auto"`` fits to the image: the one rule.

The bundled ``micro`` model draws masks about one frame pixel too wide around small cells,
whatever the zoom (docs/benchmarks.md, "Automatic zoom"): on an 8-px nucleus that is a large
part of the mask, on a cell seen at about its trained size it is not, and there cutting the
mask to the image (:mod:`._frame_fit`) removes real cell area. Under ``"auto"`` an object is
fitted when both hold (:func:`fits_in_auto`):

* its zoom window (:mod:`.windows`) magnifies the frame at least :data:`AUTO_MAGNIFICATION`
  times at the model's input (:func:`magnification`): a window is sized so that its object
  spans a fixed share of the model's input, so a strong magnification means a small object;
* it stands out from its surroundings as a whole (:func:`background_share`): at most
  :data:`MAX_BACKGROUND_SHARE` of its mask's pixels lie on the background's side of the median
  of the margin around it, as with a stained nucleus. Brightfield relief (bright and dark
  sides) and cells with a dark nucleus have parts on both sides, and a level cuts real cell
  area there, so they keep the model's masks.

Objects without a window (large enough on the whole frame, or ``zoom="off"``) are never
fitted, so ``zoom="off"`` with ``"auto"`` gives exactly the model's masks.

The decision is made with the object's image level, on each frame the object is prompted on,
from its window and mask there; tracked frames keep their window's side, so it holds until the
object is prompted again (a new prompt decides again, from the window it runs in then: a box or
mask that re-sizes the window can turn the fit on or off).

Torch-free (imported by :mod:`.segment_options`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._volume_fit import margin_of

__all__ = [
    "AUTO_MAGNIFICATION",
    "FIT_MODES",
    "MAX_BACKGROUND_SHARE",
    "background_share",
    "check_fit_masks",
    "fits_in_auto",
    "magnification",
    "magnifies",
]

#: the values ``fit_masks`` takes
FIT_MODES = ("auto", True, False)
#: under ``fit_masks="auto"`` objects whose window shows a frame pixel as at least this many
#: pixels of the model's input may be fitted (micro: cells under ~19 px wide; chosen on
#: validation movies, docs/benchmarks.md "Automatic zoom": 2.5 cost brightfield 0.01)
AUTO_MAGNIFICATION = 3.0
#: ... and whose mask has at most this share of its pixels on the background's side of its
#: margin's median (validation: 0.03 cost small brightfield cells 0.02, 0.01 gave the
#: same as 0.02 elsewhere but less on small phase-contrast cells)
MAX_BACKGROUND_SHARE = 0.02


def check_fit_masks(value: object) -> str | bool:
    """``fit_masks`` checked: ``"auto"``, True or False (numpy booleans become bool).

    Raises:
        ValueError: any other value, naming the three that work.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value == "auto":
        return "auto"
    raise ValueError(
        f"fit_masks must be 'auto' (fit the masks of small objects seen through magnifying "
        f"windows), True (fit every object) or False (the model's masks), got {value!r}"
    )


def magnification(window: Sequence[int] | None, image_size: int) -> float | None:
    """Model-input pixels per frame pixel in an object's window, or None without one.

    Args:
        window: (y0, x0, y1, x1) square window in frame pixels, or None (whole frame / ROI).
        image_size: the model's square input side in pixels.
    """
    if window is None:
        return None
    return float(image_size) / float(window[2] - window[0])


def magnifies(window: Sequence[int] | None, image_size: int) -> bool:
    """Whether an object's window magnifies the frame at least :data:`AUTO_MAGNIFICATION`
    times at the model's input (False without a window)."""
    mag = magnification(window, image_size)
    return mag is not None and mag >= AUTO_MAGNIFICATION


def background_share(mask: np.ndarray, image: np.ndarray) -> float | None:
    """Share of a mask's pixels on the background's side of the median of its margin.

    The margin is the ring around the mask as wide as its radius
    (:func:`~._volume_fit.margin_of`, as the fit's level reads it); the object's side is
    brighter when its mean lies above that median, else darker.

    Args:
        mask: (h, w) bool mask of the object on a rectangle around it (with room for the
            margin; its edges clip it).
        image: (h, w) smoothed intensities of that rectangle (:func:`~._volume_fit.smooth`).

    Returns:
        The share in [0, 1], or None for an empty mask or no margin.
    """
    n = int(np.count_nonzero(mask))
    if not n:
        return None
    margin = margin_of(mask, n)
    if not margin.any():
        return None
    background = float(np.median(image[margin]))
    inside = image[mask]
    if float(inside.mean()) > background:
        return float(np.mean(inside < background))
    return float(np.mean(inside > background))


def fits_in_auto(
    window: Sequence[int] | None, image_size: int, mask: np.ndarray, image: np.ndarray
) -> bool:
    """Whether ``fit_masks="auto"`` fits an object prompted in ``window`` whose mask there is
    ``mask`` on the smoothed ``image`` (both (h, w), a rectangle around it): its window
    magnifies enough (:func:`magnifies`) and it stands out as a whole
    (:func:`background_share` at most :data:`MAX_BACKGROUND_SHARE`)."""
    if not magnifies(window, image_size):
        return False
    share = background_share(mask, image)
    return share is not None and share <= MAX_BACKGROUND_SHARE
