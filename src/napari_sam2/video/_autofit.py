"""Which objects' masks ``fit_masks="auto"`` fits to the image: the one rule.

The bundled ``micro`` model draws masks about one frame pixel too wide around small cells,
whatever the zoom (docs/benchmarks.md, "Automatic zoom"): on an 8-px nucleus that is a large
part of the mask, on a cell seen at about its trained size it is not, and there cutting the
mask to the image (:mod:`._frame_fit`) removes real cell area. So under ``"auto"`` an object is
fitted only when its zoom window (:mod:`.windows`) magnifies the frame by at least
:data:`AUTO_MAGNIFICATION` at the model's input: a window is sized so that its object spans a
fixed share of the model's input, so a strong magnification means a small object. Objects
without a window (large enough on the whole frame, or ``zoom="off"``) are never fitted, so
``zoom="off"`` with ``"auto"`` gives exactly the model's masks.

The decision is made with the object's image level, on each frame the object is prompted on,
from its window there; tracked frames keep their window's side, so it holds until the object is
prompted again (a new box or mask that re-sizes the window decides again).

Torch-free (imported by :mod:`.segment_options`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "AUTO_MAGNIFICATION",
    "FIT_MODES",
    "check_fit_masks",
    "fits_in_auto",
    "magnification",
]

#: the values ``fit_masks`` takes
FIT_MODES = ("auto", True, False)
#: under ``fit_masks="auto"`` objects whose window shows a frame pixel as at least this many
#: pixels of the model's input are fitted (micro: cells under ~19 px wide; chosen on validation
#: movies, docs/benchmarks.md "Automatic zoom")
AUTO_MAGNIFICATION = 3.0


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


def fits_in_auto(window: Sequence[int] | None, image_size: int) -> bool:
    """Whether ``fit_masks="auto"`` fits an object prompted in ``window``: it has a window that
    magnifies the frame at least :data:`AUTO_MAGNIFICATION` times at the model's input."""
    mag = magnification(window, image_size)
    return mag is not None and mag >= AUTO_MAGNIFICATION
