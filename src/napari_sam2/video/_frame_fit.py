"""The fit of a 2-D movie's written masks to the image, frame by frame as they are written.

The bundled ``micro`` model draws masks of small fluorescent cells too wide (a mask of nearly
one size at its input whatever the cell's size). With ``fit_masks=True`` every object, with
``"auto"`` only a small object seen through a magnifying zoom window that stands out from its
surroundings (the rule: :func:`~._autofit.fits_in_auto`), is fitted: the object's
intensity level is set from its mask on the frame where its prompt is decoded (again on every
new prompt), by :func:`~._volume_fit.fit_level` on that frame's image; on every frame written
(prompted or tracked) its mask is cut to the level by :func:`~._volume_fit.fit_slice`, which
only removes pixels (and keeps the mask as drawn where it already follows the image). Objects
without a clear level (:func:`~._volume_fit.fit_level` gives None) keep the model's
masks.

Only the output is fitted: the cut pixels' logits are lowered to 0 in the
:class:`~._sparse.MaskCrop` handed to :meth:`~._label_volume.LabelVolume.write`, whose rules
(other objects and manual edits kept, highest logit wins) stay in charge; the memory bank keeps
the model's own masks. Work and memory are per frame: one smoothed frame at a time, each
object's fit on a rectangle around its mask.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from ._autofit import check_fit_masks, fits_in_auto, magnifies
from ._sparse import MaskCrop
from ._volume_fit import ImageFit, fit_level, fit_slice, margin_radius, smooth
from .frames import FrameSource

__all__ = ["FrameFit", "frame_image"]


def frame_image(frames: FrameSource, t: int) -> np.ndarray:
    """Frame ``t`` as the model sees it (windowed to [0, 1], channels averaged), full size.

    Args:
        frames: the movie.
        t: frame index.

    Returns:
        (H, W) float32 intensities; 0 outside the region of interest.
    """
    out = np.zeros((frames.height, frames.width), np.float32)
    ys, xs = frames.roi_slices
    out[ys, xs] = frames.normalized(t).mean(axis=2)
    return out


def _region(crop: MaskCrop, mask: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice]:
    """The crop's rectangle widened by the margin :func:`~._volume_fit.slice_level` reads
    around a mask (its radius plus a pixel), clipped to the frame."""
    pad = int(math.ceil(margin_radius(np.count_nonzero(mask)))) + 2
    y0, x0, y1, x1 = crop.box
    return (
        slice(max(y0 - pad, 0), min(y1 + pad, shape[0])),
        slice(max(x0 - pad, 0), min(x1 + pad, shape[1])),
    )


class FrameFit:
    """Each object's :class:`~._volume_fit.ImageFit` and the cut of its masks on each frame.

    Args:
        frames: the movie the session reads (its image is what the masks are fitted to).
        mode: True fits every object, ``"auto"`` the objects :func:`~._autofit.fits_in_auto`
            picks from their prompt windows and masks, False none (every crop as the model made it).
        image_size: the model's input side in pixels (a window's magnification).

    Attributes:
        mode: ``"auto"``, True or False.
        enabled: whether any mask may be fitted (``mode`` is not False).
        fits: object id -> its fit (objects without a clear level, or not picked under
            ``"auto"``, are absent).
    """

    def __init__(
        self, frames: FrameSource, mode: str | bool = False, image_size: int = 1024
    ) -> None:
        self.frames = frames
        self.mode = check_fit_masks(mode)
        self.enabled = self.mode is not False
        self.image_size = int(image_size)
        self.fits: dict[int, ImageFit] = {}
        self._image: tuple[tuple, np.ndarray] | None = None

    def image(self, t: int) -> np.ndarray:
        """(H, W) float32 smoothed image of frame t (:func:`~._volume_fit.smooth`); the last
        frame's is kept."""
        key = (t, self.frames.roi)
        if self._image is None or self._image[0] != key:
            self._image = (key, smooth(frame_image(self.frames, t)))
        return self._image[1]

    def set_level(
        self, t: int, obj_id: int, crop: MaskCrop | None, window: Sequence[int] | None = None
    ) -> None:
        """Set an object's fit from its mask (the crop's positive logits) on its prompt frame t,
        where it was segmented in ``window`` (frame px; None: the whole frame / ROI); an empty
        mask, no clear level, or under ``"auto"`` an object the rule does not pick
        (:func:`~._autofit.fits_in_auto`) leaves the object unfitted."""
        if not self.enabled:
            return
        self.fits.pop(obj_id, None)
        auto = self.mode == "auto"
        if auto and not magnifies(window, self.image_size):  # no image work for the others
            return
        if crop is None or not (crop.logits > 0).any():
            return
        mask, img, _ = self._local(t, crop)
        if auto and not fits_in_auto(window, self.image_size, mask, img):
            return
        fit = fit_level(mask, img)
        if fit is not None:
            self.fits[obj_id] = fit

    def cut(
        self, t: int, ids: Sequence[int], crops: Iterable[MaskCrop | None]
    ) -> Iterator[MaskCrop | None]:
        """The crops of ``ids`` on frame t (one per id, in order) with each fitted object's
        pixels beyond its level removed (logits lowered to 0); a generator, one crop at a
        time. Without fitting (``enabled`` False) the crops pass unchanged."""
        for obj_id, crop in zip(ids, crops):
            fit = self.fits.get(obj_id) if self.enabled else None
            if fit is None or crop is None or not (crop.logits > 0).any():
                yield crop
                continue
            mask, img, (dy, dx) = self._local(t, crop)
            h, w = crop.logits.shape
            kept = fit_slice(fit, mask, img, (dy, dx, dy + h, dx + w))
            if kept is None:
                yield crop
            else:
                logits = np.where(kept, crop.logits, 0.0).astype(crop.logits.dtype)
                yield MaskCrop(crop.y0, crop.x0, logits, crop.step)

    def _local(self, t: int, crop: MaskCrop) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """The object's (h, w) bool mask and smoothed image on the rectangle around the crop,
        and the crop's (y, x) offset in that rectangle."""
        inside = crop.logits > 0
        ys, xs = _region(crop, inside, (self.frames.height, self.frames.width))
        mask = np.zeros((ys.stop - ys.start, xs.stop - xs.start), bool)
        dy, dx = crop.y0 - ys.start, crop.x0 - xs.start
        h, w = inside.shape
        mask[dy : dy + h, dx : dx + w] = inside
        return mask, self.image(t)[ys, xs], (dy, dx)
