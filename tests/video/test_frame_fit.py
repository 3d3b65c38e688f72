"""The fit of 2-D masks to the image as they are written (``VideoSession(fit_masks=)``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import VideoSession, load_model
from napari_sam2.video._frame_fit import FrameFit
from napari_sam2.video._sparse import MaskCrop
from napari_sam2.video.frames import frame_source_for

CENTRES = [(24, 24), (30, 70), (70, 48)]
RADIUS = 4


def disc_movie(t: int = 4, size: int = 96, radius: float = RADIUS):
    """(T, size, size) uint16 movie of small bright discs drifting down on a dark noisy
    background, and its (T, size, size) ground-truth labels (ids 1..3)."""
    yy, xx = np.mgrid[:size, :size]
    rng = np.random.default_rng(0)
    movie = rng.normal(100, 5, (t, size, size))
    truth = np.zeros((t, size, size), np.uint16)
    for k in range(t):
        for i, (cy, cx) in enumerate(CENTRES):
            disc = (yy - cy - k) ** 2 + (xx - cx) ** 2 < radius**2
            truth[k][disc] = i + 1
            movie[k][disc] += 1000
    return movie.astype(np.uint16), truth


def wide_masks(size: int = 96) -> dict[int, np.ndarray]:
    """Mask prompts of the discs on frame 0, 2.2 times too wide."""
    yy, xx = np.mgrid[:size, :size]
    return {
        i + 1: (yy - cy) ** 2 + (xx - cx) ** 2 < (2.2 * RADIUS) ** 2
        for i, (cy, cx) in enumerate(CENTRES)
    }


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture(scope="module")
def micro():
    torch.set_num_threads(1)
    return load_model("micro", device="cpu")


def _frames(movie: np.ndarray):
    """The movie's frame source, as the bundled model reads it."""
    return frame_source_for(movie, load_model("micro", device="cpu").config, axes="TYX")


def _wide_crop(cy: int, cx: int, radius: float, size: int = 96) -> MaskCrop:
    """Logits of a disc of ``radius`` around (cy, cx), positive inside, on a crop around it."""
    pad = int(radius) + 3
    y0, x0 = cy - pad, cx - pad
    yy, xx = np.mgrid[y0 : cy + pad + 1, x0 : cx + pad + 1]
    logits = (radius - np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)).astype(np.float32)
    return MaskCrop(y0, x0, logits)


def test_off_passes_the_crops_unchanged():
    movie, _ = disc_movie()
    fit = FrameFit(_frames(movie), False)
    crops = [_wide_crop(24, 24, 9.0), None]
    fit.set_level(0, 1, crops[0])
    assert fit.fits == {}
    out = list(fit.cut(0, [1, 2], crops))
    assert out[0] is crops[0] and out[1] is None


def test_a_too_wide_mask_shrinks_to_its_disc_and_never_grows():
    """A synthetic logit stand-in: a mask 2.2 times the disc's radius is cut to the disc on
    its prompt frame and on a later frame (the disc has moved down by 3 px)."""
    movie, truth = disc_movie()
    fit = FrameFit(_frames(movie), True)
    first = _wide_crop(24, 24, 2.2 * RADIUS)
    fit.set_level(0, 1, first)
    assert 1 in fit.fits and fit.fits[1].bright
    for t, crop in ((0, first), (3, _wide_crop(27, 24, 2.2 * RADIUS))):
        (cut,) = fit.cut(t, [1], [crop])
        before, after = np.zeros((96, 96), bool), np.zeros((96, 96), bool)
        before[crop.slices] = crop.logits > 0
        after[cut.slices] = cut.logits > 0
        assert not (after & ~before).any()  # only removes pixels
        gt = truth[t] == 1
        assert iou(after, gt) > 0.7 and iou(before, gt) < 0.3
        np.testing.assert_array_equal(cut.logits[cut.logits > 0], crop.logits[cut.logits > 0])


def test_objects_without_a_level_are_left_alone():
    """On a flat image there is no level: the object keeps the model's mask; a new prompt with
    an empty mask drops the object's earlier fit."""
    movie, _ = disc_movie()
    flat = np.full_like(movie, 500)
    fit = FrameFit(_frames(flat), True)
    crop = _wide_crop(24, 24, 2.2 * RADIUS)
    fit.set_level(0, 1, crop)
    assert 1 not in fit.fits
    assert next(fit.cut(1, [1], [crop])) is crop
    fit = FrameFit(_frames(movie), True)
    fit.set_level(0, 1, crop)
    assert 1 in fit.fits
    fit.set_level(2, 1, MaskCrop(0, 0, np.full((4, 4), -1.0, np.float32)))
    assert 1 not in fit.fits


def _run(micro, movie, **kw) -> VideoSession:
    session = VideoSession(micro, movie, axes="TYX", **kw)
    session.add_masks(0, wide_masks())
    list(session.propagate())
    return session


def test_session_fit_masks_shrinks_the_written_labels_to_the_discs(micro):
    """The bundled model keeps masks prompted too wide too wide; ``fit_masks=True`` cuts the
    written labels of every frame to the discs (never adding a pixel), the default leaves them
    as the model drew them (equal to ``fit_masks=False``), and the memory banks hold the
    model's own masks either way."""
    movie, truth = disc_movie()
    default = _run(micro, movie)
    off = _run(micro, movie, fit_masks=False)
    fitted = _run(micro, movie, fit_masks=True)
    raw, cut = default.labels(), fitted.labels()
    np.testing.assert_array_equal(off.labels(), raw)
    for o in (1, 2, 3):
        assert not ((cut == o) & (raw != o)).any()
        assert iou(cut == o, truth == o) > iou(raw == o, truth == o) + 0.2
        for t in range(len(movie)):
            a = default._objects[o].bank.get(t)
            b = fitted._objects[o].bank.get(t)
            torch.testing.assert_close(a.mask_logits, b.mask_logits, rtol=0, atol=0)
    assert set(fitted.fit.fits) == {1, 2, 3} and not default.fit.fits


def test_fit_masks_option_defaults_per_dimension_and_refusals():
    """``fit_masks=None`` (the default) fits 3-D data and 2-D movies' magnified small objects
    ("auto"); True with tiles or a value other than "auto"/True/False/None is refused, naming
    the values that work."""
    from napari_sam2.video.segment_options import SegmentOptions, TrackOptions

    assert TrackOptions().fits(True) is True and TrackOptions().fits(False) == "auto"
    assert TrackOptions(fit_masks="auto").fits(True) is True
    assert TrackOptions(fit_masks="auto").fits(False) == "auto"
    assert TrackOptions(fit_masks=True).fits(False) is True
    assert TrackOptions(fit_masks=np.bool_(False)).fits(True) is False
    with pytest.raises(ValueError, match="tile cannot be combined with fit_masks"):
        SegmentOptions.from_keywords(tile=48, fit_masks=True)
    SegmentOptions.from_keywords(tile=48, fit_masks="auto")  # the default: tiles keep masks
    for bad in ("yes", "on", 1, 0.5):
        with pytest.raises(ValueError, match=r"fit_masks must be 'auto' .*True .*False"):
            SegmentOptions.from_keywords(fit_masks=bad)
