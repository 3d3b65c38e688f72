"""Divisions whose mother's label followed one daughter: the sister, opposite across the
mother's centre, is found whoever's label holds her."""

from __future__ import annotations

import numpy as np

from napari_sam2.train.zstack import Nucleus, render_nuclei
from napari_sam2.video.volume_divisions import daughter_masks

SHAPE = (16, 48, 64)


def _render(nuclei, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return render_nuclei(SHAPE, nuclei, np.random.default_rng(seed), 0.03)


def _mother() -> np.ndarray:
    """(Z, Y, X) bool mask of the mother at the timepoint before."""
    return (
        _render([Nucleus(1, np.array([8.0, 24.0, 32.0]), np.array([5.0, 10.0, 10.0]), 0.8)])[1] == 1
    )


def _daughters(sister: bool = True) -> list[Nucleus]:
    """Daughters of 0.8 of the mother's radii, 9 voxels either side of her centre along x
    (only the first without ``sister``)."""
    r = np.array([4.0, 8.0, 8.0])
    shifts = (1, -1) if sister else (1,)
    return [
        Nucleus(k, np.array([8.0, 24.0, 32.0 + s * 9.0]), r, 0.8) for k, s in zip((2, 3), shifts)
    ]


def test_sister_under_a_neighbours_label_is_found():
    """The mask follows one daughter only (the other is another label's): the division is
    found, and the second part holds most of the sister."""
    mother = _mother()
    image, truth = _render(_daughters())
    mask = truth == 2
    parts = daughter_masks(mask, int(mother.sum()), image=image, mother=mother)
    assert parts is not None
    sister = truth == 3
    held = [np.count_nonzero(p & sister) / np.count_nonzero(sister) for p in parts]
    assert max(held) > 0.6 and min(held) < 0.1
    assert not (parts[0] & parts[1]).any()


def test_no_sister_in_the_image_no_division():
    """The same mask with background where the sister would be: no division (the part found
    there does not stand above the background)."""
    mother = _mother()
    image, truth = _render(_daughters(sister=False))
    mask = truth == 2
    assert daughter_masks(mask, int(mother.sum()), image=image, mother=mother) is None


def test_a_cell_that_moved_a_little_does_not_divide():
    """A mask as large as the mother's and centred near her centre: no sister is sought,
    even with a bright cell beside it."""
    mother = _mother()
    cell = Nucleus(2, np.array([8.0, 24.0, 34.0]), np.array([5.0, 10.0, 10.0]), 0.8)
    beside = Nucleus(3, np.array([8.0, 24.0, 12.0]), np.array([4.0, 8.0, 8.0]), 0.8)
    image, truth = _render([cell, beside])
    assert daughter_masks(truth == 2, int(mother.sum()), image=image, mother=mother) is None
