"""The one rule for keeping automatically found cells (video/found_cells.py)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.video.found_cells import new_cell_labels


def _box(y0, x0, y1, x1, shape=(20, 20)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_new_cells_keep_free_pixels_best_first():
    labelled = np.zeros((20, 20), np.uint16)
    labelled[0:4, 0:4] = 7  # a prompted object
    masks = [
        _box(10, 10, 16, 16),  # new: kept as 1
        _box(0, 0, 4, 5),      # 16 of 20 pixels already labelled: dropped
        _box(12, 12, 18, 18),  # 16 of 36 taken by candidate 1: kept as 2 with its 20 free pixels
        _box(10, 10, 15, 15),  # inside candidate 1: dropped
        _box(18, 0, 20, 3),    # new but only 6 pixels: below min_area, dropped
        np.zeros((20, 20), bool),  # empty: dropped
    ]
    out = new_cell_labels(labelled, masks, min_area=8)
    assert out.dtype == np.uint32 and set(np.unique(out).tolist()) == {0, 1, 2}
    assert np.count_nonzero(out == 1) == 36 and np.count_nonzero(out == 2) == 20
    assert not out[labelled != 0].any()  # labelled pixels are never given again


def test_half_taken_is_the_limit():
    labelled = np.zeros((10, 10), np.uint8)
    labelled[0:5, 0:2] = 1  # 10 pixels
    half = _box(0, 0, 5, 4, (10, 10))  # 20 pixels, 10 labelled: exactly half taken, kept
    assert new_cell_labels(labelled, [half], min_area=1).max() == 1
    more = _box(0, 0, 5, 3, (10, 10))  # 15 pixels, 10 labelled: dropped
    assert new_cell_labels(labelled, [more], min_area=1).max() == 0
    assert new_cell_labels(labelled, [more], min_area=1, max_taken=0.7).max() == 1


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="candidate mask is 4 x 4 px but the frame is 5 x 5"):
        new_cell_labels(np.zeros((5, 5)), [np.ones((4, 4), bool)])
    with pytest.raises(ValueError, match="max_taken"):
        new_cell_labels(np.zeros((5, 5)), [], max_taken=1.5)
