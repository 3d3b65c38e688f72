"""Divisions of 3-D cells through time: the split rule and the session's bookkeeping."""

from __future__ import annotations

import numpy as np

from napari_sam2.video.volume_divisions import daughter_masks
from napari_sam2.video.volume_time import VolumeTimeSession


def _ball(shape, centre, r) -> np.ndarray:
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    return ((zz - centre[0]) * 2) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= r * r


def test_daughter_masks_needs_two_large_pieces():
    shape = (5, 32, 40)
    a, b = _ball(shape, (2, 16, 10), 6), _ball(shape, (2, 16, 30), 5)
    parts = daughter_masks(a | b, int(a.sum() + b.sum()))
    assert parts is not None
    np.testing.assert_array_equal(parts[0], a)  # the larger piece first
    np.testing.assert_array_equal(parts[1], b)
    speck = np.zeros(shape, bool)
    speck[2, 2, 2] = True
    assert daughter_masks(a | speck, int(a.sum())) is None  # a fragment is no daughter
    assert daughter_masks(a, int(a.sum())) is None  # one piece
    touching = a | _ball(shape, (2, 16, 20), 5)
    assert daughter_masks(touching, int(touching.sum())) is None  # still connected


def test_session_splits_a_cell_into_two_daughters(model):
    """A cell whose 3-D mask at t falls apart ends at t - 1; its pieces get new ids, are
    recorded in the lineage, and are followed from t on as their own objects."""
    t, shape = 3, (5, 32, 40)
    one = _ball(shape, (2, 16, 20), 7)
    a, b = _ball(shape, (2, 16, 9), 5), _ball(shape, (2, 16, 31), 5)
    movie = np.zeros((t, *shape), np.float32)
    movie[0][one] = 1.0
    movie[1:, a | b] = 1.0
    session = VolumeTimeSession(model, movie, axes="TZYX", zoom="off", divisions=True)
    session.add_points(0, 2, 1, [(16, 20)], [1])
    lab = session.labels()
    lab[0] = np.where(one, 1, 0)
    lab[1] = np.where(a | b, 1, 0)
    mother = session._tracks[1]
    mother.centre[0] = 2
    session._divide(1, mother)
    assert session.lineage == {2: 1, 3: 1}
    assert set(np.unique(lab[1])) == {0, 2, 3} and (lab[1] == 2).sum() == a.sum()
    assert mother.ended == 0
    for obj_id in (2, 3):
        tr = session._tracks[obj_id]
        assert tr.born and tr.prompted == {1} and tr.centre[1] == 2
        assert tr.time.prompted_frames(obj_id) == [1]
    ran = list(session.propagate("forward"))  # the daughters go on; the mother stops at 0
    assert ran == [0, 1, 2]
    assert 1 not in lab[1:] and session._tracks[1].ended == 0
    session.close()
