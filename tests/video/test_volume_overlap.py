"""3-D + time: touching cells share out their overlapping masks (deepest mask; the tracked
mask without the pixels neighbours held on the timepoint before)."""

from __future__ import annotations

import numpy as np

from napari_sam2.video._volume_overlap import paint_deepest, without_neighbours
from napari_sam2.video.session import VideoSession
from napari_sam2.video.volumes import _compose, _ObjectSlices


def _disc(shape, centre, r) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= r * r


def test_overlap_goes_to_the_mask_each_pixel_lies_deepest_in():
    """A wide mask spanning two cells loses the cell under a mask centred on it; pixels held
    by other labels are kept, and a lone mask keeps all its free pixels."""
    shape = (40, 60)
    small = _disc(shape, (20, 15), 7)  # centred on the left cell
    wide = _disc(shape, (20, 28), 14)  # covers the left cell and the right one
    lab = np.zeros(shape, np.uint16)
    lab[0:3, :] = 9  # another label's pixels
    paint_deepest(lab, [(2, wide), (1, small)], lab == 0)
    assert (lab[small & ~wide] == 1).all()
    assert (lab[20, 11:17] == 1).all()  # the left cell's middle: deeper in the small mask
    assert (lab[20, 26:40] == 2).all()  # the wide mask's middle stays its own
    assert (lab[0:3] == 9).all()
    assert not (lab[~(small | wide)] % 9).any()  # nothing written outside the masks
    lone = np.zeros(shape, np.uint16)
    paint_deepest(lone, [(3, small)], np.ones(shape, bool))
    assert ((lone == 3) == small).all()
    # depth is measured on the whole mask, not on the pixels that may be written
    lab = np.zeros(shape, np.uint16)
    free = np.ones(shape, bool)
    free[:, 30:] = False
    paint_deepest(lab, [(2, wide), (1, small)], free)
    assert (lab[20, 24:30] == 2).all() and not lab[:, 30:].any()


def test_compose_of_tracked_start_slices_uses_depth_not_start_distance(model):
    """In 3-D + time (start slices from tracking), and for z-stacks whose masks are fitted to
    the image (the default), a cell's pixels go to the mask centred on it, even where a
    neighbour's start slice is nearer; the model's unfitted masks of a z-stack keep the
    nearer-prompt rule."""
    shape, nz = (24, 40), 4
    session = VideoSession(model, np.zeros((nz, *shape), np.float32), axes="ZYX")
    a = _disc(shape, (12, 10), 6)
    b = _disc(shape, (12, 20), 11)  # too wide: lies over cell a too
    found = _ObjectSlices(shape)
    for z in range(nz):
        found.crops.setdefault(1, {})[z] = ((0, 0, *shape), a)
        found.crops.setdefault(2, {})[z] = ((0, 0, *shape), b)
    starts = {1: 0, 2: 3}
    for claims in (False, True):
        _compose(session, found, starts, guard=False, claims=claims)
        lab = session.labels()
        assert all((lab[z][12, 5:12] == 1).all() for z in range(nz))
    _compose(session, found, starts, guard=False, claims=True, fit=False)
    lab = session.labels()
    assert (lab[3][12, 9:12] == 2).all() and (lab[0][12, 5:12] == 1).all()


def test_tracked_mask_loses_the_neighbours_pixels_of_the_timepoint_before():
    shape = (20, 30)
    mask = _disc(shape, (10, 12), 7)
    previous = np.zeros(shape, np.uint16)
    previous[:, 15:] = 2  # the neighbour, on this slice, one timepoint before
    previous[_disc(shape, (10, 10), 4)] = 1  # the object itself
    kept = without_neighbours(mask, previous, 1)
    assert kept.sum() < mask.sum() and not (kept & (previous == 2)).any()
    assert (kept == (mask & (previous != 2))).all()
    assert without_neighbours(mask, np.zeros(shape, np.uint16), 1) is mask
    everything = np.full(shape, 3, np.uint16)  # nothing would be left: the mask is kept
    assert without_neighbours(mask, everything, 1) is mask
