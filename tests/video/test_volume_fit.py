"""Masks along z fitted to the image (napari_sam2.video._volume_fit)."""

from __future__ import annotations

import numpy as np

from conftest import clicked_zstack_labels
from napari_sam2.train.zstack import make_zstack
from napari_sam2.video._volume_fit import MIN_KEPT, ImageFit, fit_level, smooth
from napari_sam2.video.volumes import _ObjectSlices


def _disc(shape, centre, r) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= r * r


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def test_fit_cuts_a_too_wide_mask_to_the_bright_object():
    """A mask twice the radius of a bright disc is cut to the disc; the level lies between the
    disc's and the background's intensities."""
    shape = (48, 48)
    cell = _disc(shape, (24, 24), 6)
    image = np.where(cell, 0.8, 0.1).astype(np.float32)
    image += np.random.default_rng(0).normal(0, 0.02, shape).astype(np.float32)
    wide = _disc(shape, (24, 25), 12)
    fit = fit_level(wide, smooth(image))
    assert fit is not None and fit.bright and 0.1 < fit.level < 0.8
    cut = fit.apply(wide, smooth(image))
    assert _iou(cut, cell) > 0.85
    assert not (cut & ~wide).any()  # only removes pixels


def test_fit_follows_dark_objects_and_keeps_one_piece():
    """A dark cell on a bright background keeps its darker side; of two dark pieces under
    one mask the larger is kept."""
    shape = (48, 48)
    cell, speck = _disc(shape, (20, 20), 6), _disc(shape, (29, 27), 2)
    image = np.where(cell | speck, 0.2, 0.9).astype(np.float32)
    mask = _disc(shape, (22, 22), 10)
    fit = fit_level(mask, smooth(image))
    assert fit is not None and not fit.bright
    cut = fit.apply(mask, smooth(image))
    assert _iou(cut, cell) > 0.85 and not (cut & speck).any()


def test_fit_leaves_objects_without_a_level_alone():
    """A flat slice, or a mask whose fitted part would keep under MIN_KEPT of it, gives no
    fit; the object keeps the model's masks."""
    shape = (40, 40)
    mask = _disc(shape, (20, 20), 8)
    assert fit_level(mask, np.full(shape, 0.5, np.float32)) is None
    assert fit_level(np.zeros(shape, bool), np.zeros(shape, np.float32)) is None
    dot = _disc(shape, (20, 20), 1)  # a bright dot under a wide mask: too little kept
    image = np.where(dot, 1.0, 0.0).astype(np.float32)
    assert fit_level(mask, image) is None
    assert MIN_KEPT * mask.sum() > dot.sum()
    assert ImageFit(0.5, True).apply(mask, np.zeros(shape, np.float32)).sum() == 0


def test_fit_to_image_shrinks_tips_and_empties_slices_past_the_cell():
    """One mask size on every slice (as the model draws it) over a ball whose sections shrink
    and vanish: after the fit each slice's mask follows the section, and slices past the ball
    are empty (the z guard then ends the object there)."""
    shape, nz = (40, 40), 7
    radii = [0, 3, 6, 8, 6, 3, 0]
    image = np.full((nz, *shape), 0.1, np.float32)
    for z, r in enumerate(radii):
        if r:
            image[z][_disc(shape, (20, 20), r)] = 0.8
    wide = _disc(shape, (20, 20), 12)
    found = _ObjectSlices(shape)
    for z in range(nz):
        found.crops.setdefault(1, {})[z] = ((0, 0, *shape), wide.copy())
    found.fit_to_image({1: 3}, nz, lambda z: image[z])
    for z, r in enumerate(radii):
        area = found.mask(1, z).sum()
        if r:
            assert 0.6 * np.pi * r * r < area < 1.6 * np.pi * r * r, (z, area)
        else:
            assert area == 0


def test_fitted_zstack_masks_follow_small_nuclei_with_the_bundled_model():
    """Nuclei of y-x radius 8-10 voxels on 64-px slices: the bundled model's masks are far
    wider than the nuclei; fitted to the image, the 3-D IoU of each is higher."""
    from napari_sam2 import load_model

    micro = load_model("micro", device="cpu")
    stack, nuclei = make_zstack((16, 64, 64), count=2, radius=(8.0, 10.0), seed=5)
    labels = {fit: clicked_zstack_labels(micro, stack.image, nuclei, fit=fit)
              for fit in (False, True)}
    for n in nuclei:
        truth = stack.labels == n.obj_id
        before, after = (_iou(labels[f] == n.obj_id, truth) for f in (False, True))
        assert after > before + 0.05 and after > 0.6, (n.obj_id, before, after)


def test_fit_keeps_masks_that_follow_the_image_and_dim_sections():
    """A mask that already follows its cell is kept as drawn (KEEP_AS_IS), and a dimmer,
    out-of-focus section keeps its pixels (the slice's own level, nearer the background)."""
    shape, nz = (40, 40), 3
    cell = _disc(shape, (20, 20), 8)
    image = np.full((nz, *shape), 0.1, np.float32)
    image[0][cell] = image[1][cell] = 0.9
    image[2][cell] = 0.3  # out of focus: dimmer than the start slice's level
    near = _disc(shape, (20, 20), 8.5)  # half a pixel wider than the cell all round
    found = _ObjectSlices(shape)
    for z in range(nz):
        found.crops.setdefault(1, {})[z] = ((0, 0, *shape), near.copy())
    fit = fit_level(near, smooth(image[0]))
    assert fit is not None and fit.level > 0.3
    found.fit_to_image({1: 0}, nz, lambda z: image[z])
    for z in range(nz):
        assert (found.mask(1, z) == near).all()  # the fitted part keeps >= KEEP_AS_IS of it
    wide = _disc(shape, (20, 20), 14)
    found.crops[1][2] = ((0, 0, *shape), wide)
    found.fit_to_image({1: 0}, nz, lambda z: image[z])
    assert _iou(found.mask(1, 2), cell) > 0.8  # cut to the dim section, not emptied


def test_fit_keeps_both_halves_of_a_dividing_cell():
    """Two daughters under one wide mask are both kept (pieces of at least PIECE_SHARE of the
    mask), so the 3-D mask falls apart where division detection looks for it."""
    shape = (40, 60)
    left, right = _disc(shape, (20, 19), 9), _disc(shape, (20, 41), 9)
    image = np.where(left | right, 0.9, 0.1).astype(np.float32)
    wide = np.zeros(shape, bool)
    wide[10:31, 9:52] = True  # each daughter is over a quarter of it
    fit = fit_level(wide, smooth(image))
    assert fit is not None
    cut = fit.apply(wide, smooth(image))
    assert _iou(cut, left | right) > 0.8 and (cut & left).any() and (cut & right).any()
