"""``fit_masks="auto"``: only objects seen through magnifying zoom windows are fitted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import VideoSession, load_model
from napari_sam2.video._autofit import (
    AUTO_MAGNIFICATION,
    background_share,
    check_fit_masks,
    magnification,
    magnifies,
)
from napari_sam2.video._frame_fit import FrameFit
from napari_sam2.video._sparse import MaskCrop
from napari_sam2.video.frames import frame_source_for

SIZE = 256
SMALL = (60, 60, 4.0)  # (y, x, radius): an 8-px nucleus, run in a magnifying window
LARGE = (170, 160, 22.0)  # a 44-px nucleus, large enough on the whole frame


@pytest.fixture(scope="module")
def micro():
    torch.set_num_threads(1)
    return load_model("micro", device="cpu")


def _disc(cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r**2


def two_nuclei(frames: int = 4):
    """(T, 256, 256) uint16 movie: a small and a large bright disc drifting down on a noisy
    background; (T, 256, 256) truth labels (1 small, 2 large)."""
    rng = np.random.default_rng(3)
    movie = rng.normal(100, 5, (frames, SIZE, SIZE))
    truth = np.zeros((frames, SIZE, SIZE), np.uint16)
    for t in range(frames):
        for i, (cy, cx, r) in enumerate((SMALL, LARGE)):
            disc = _disc(cy + t, cx, r)
            truth[t][disc] = i + 1
            movie[t][disc] += 800
    return movie.astype(np.uint16), truth


def _run(model, movie, **kw) -> VideoSession:
    """Mask prompts on frame 0: the small disc's 1.5x too wide, the large one's exact."""
    session = VideoSession(model, movie, axes="TYX", **kw)
    cy, cx, r = SMALL
    ly, lx, lr = LARGE
    session.add_masks(0, {1: _disc(cy, cx, 1.5 * r), 2: _disc(ly, lx, lr)})
    list(session.propagate())
    return session


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_auto_fits_the_magnified_object_only(micro):
    """The small disc runs in a window that magnifies it >= AUTO_MAGNIFICATION and is fitted as
    with ``fit_masks=True`` (only pixels removed, closer to the disc); the large one has no
    window and its labels are bit-identical to ``fit_masks=False``."""
    movie, truth = two_nuclei()
    off = _run(micro, movie, fit_masks=False)
    auto = _run(micro, movie, fit_masks="auto")
    on = _run(micro, movie, fit_masks=True)
    size = micro.config.image_size
    assert magnification(auto.window(1, 0), size) >= AUTO_MAGNIFICATION
    assert auto.window(2, 0) is None and auto.window(2, 3) is None
    assert set(auto.fit.fits) == {1} and set(on.fit.fits) == {1, 2}
    a, o, f = auto.labels(), off.labels(), on.labels()
    np.testing.assert_array_equal(a == 2, o == 2)
    np.testing.assert_array_equal(a == 1, f == 1)
    assert not ((a == 1) & (o != 1)).any()  # the fit only removes pixels
    assert (a == 1).sum() < (o == 1).sum()
    assert _iou(a == 1, truth == 1) > _iou(o == 1, truth == 1)
    for t in range(len(movie)):  # the memory banks keep the model's own masks
        torch.testing.assert_close(auto._objects[1].bank.get(t).mask_logits,
                                   off._objects[1].bank.get(t).mask_logits, rtol=0, atol=0)


def test_zoom_off_with_auto_is_the_models_masks(micro):
    """Without windows nothing is magnified: zoom off + "auto" equals zoom off + False."""
    movie, _ = two_nuclei(3)
    off = _run(micro, movie, zoom="off", fit_masks=False)
    auto = _run(micro, movie, zoom="off", fit_masks="auto")
    np.testing.assert_array_equal(auto.labels(), off.labels())
    assert auto.fit.fits == {} and auto.window(1, 0) is None


def test_the_decision_follows_the_prompt_window():
    """Each prompt decides again from its window: a magnifying window sets a fit, a later
    prompt in a window that magnifies too little (or on the whole frame) drops it."""
    movie, _ = two_nuclei(2)
    frames = frame_source_for(movie, load_model("micro", device="cpu").config, axes="TYX")
    fit = FrameFit(frames, "auto", image_size=256)
    cy, cx, r = SMALL
    pad = 10
    yy, xx = np.mgrid[cy - pad : cy + pad + 1, cx - pad : cx + pad + 1]
    logits = (1.5 * r - np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)).astype(np.float32)
    crop = MaskCrop(cy - pad, cx - pad, logits)
    side_in = int(256 / AUTO_MAGNIFICATION)  # magnification just >= the threshold
    side_out = int(256 / AUTO_MAGNIFICATION) + 2
    fit.set_level(0, 1, crop, (30, 30, 30 + side_in, 30 + side_in))
    assert 1 in fit.fits
    (cut,) = fit.cut(1, [1], [crop])
    assert (cut.logits > 0).sum() < (crop.logits > 0).sum()
    fit.set_level(1, 1, crop, (30, 30, 30 + side_out, 30 + side_out))
    assert 1 not in fit.fits and next(fit.cut(1, [1], [crop])) is crop
    fit.set_level(1, 1, crop, (30, 30, 30 + side_in, 30 + side_in))
    fit.set_level(1, 1, crop, None)
    assert 1 not in fit.fits
    assert magnifies((0, 0, side_in, side_in), 256)
    assert not magnifies((0, 0, side_out, side_out), 256) and not magnifies(None, 256)


def relief_movie() -> np.ndarray:
    """(2, 256, 256) uint16: the small disc of :func:`two_nuclei` as brightfield relief, its
    upper half brighter and its lower half darker than the background."""
    yy, _ = np.mgrid[:SIZE, :SIZE]
    movie = np.random.default_rng(4).normal(1000, 5, (2, SIZE, SIZE))
    cy, cx, r = SMALL
    disc = _disc(cy, cx, r)
    for t in range(2):
        movie[t][disc & (yy < cy)] += 400
        movie[t][disc & (yy >= cy)] -= 400
    return movie.astype(np.uint16)


def test_auto_leaves_objects_with_parts_on_both_sides_of_the_background():
    """A magnified relief object (bright and dark halves) is not fitted under "auto" (half
    its mask lies on the background's side), though ``fit_masks=True`` fits it; a bright
    disc's mask has no pixel on the background's side."""
    cfg = load_model("micro", device="cpu").config
    cy, cx, r = SMALL
    pad = 10
    yy, xx = np.mgrid[cy - pad : cy + pad + 1, cx - pad : cx + pad + 1]
    logits = (r + 0.5 - np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)).astype(np.float32)
    crop = MaskCrop(cy - pad, cx - pad, logits)
    window = (30, 30, 30 + int(256 / AUTO_MAGNIFICATION), 30 + int(256 / AUTO_MAGNIFICATION))
    relief = frame_source_for(relief_movie(), cfg, axes="TYX")
    auto, every = FrameFit(relief, "auto", 256), FrameFit(relief, True, 256)
    auto.set_level(0, 1, crop, window)
    every.set_level(0, 1, crop, window)
    assert auto.fits == {} and 1 in every.fits
    mask, img, _ = auto._local(0, crop)
    assert background_share(mask, img) > 0.3
    bright = FrameFit(frame_source_for(two_nuclei(2)[0], cfg, axes="TYX"), "auto", 256)
    mask, img, _ = bright._local(0, crop)
    assert background_share(mask, img) == 0.0
    bright.set_level(0, 1, crop, window)
    assert 1 in bright.fits


def test_fit_masks_values_are_checked_with_the_fix(micro):
    assert check_fit_masks(np.bool_(True)) is True and check_fit_masks("auto") == "auto"
    for bad in ("yes", "Auto", 1, None, 0.5):
        with pytest.raises(ValueError, match=r"fit_masks must be 'auto' .*True .*False"):
            check_fit_masks(bad)
    with pytest.raises(ValueError, match="fit_masks must be 'auto'"):
        VideoSession(micro, np.zeros((2, 32, 32), np.uint8), axes="TYX", fit_masks="on")
