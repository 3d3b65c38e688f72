"""3-D + time: a cell whose voxels a touching neighbour's fill took gets them back."""

from __future__ import annotations

import numpy as np

from napari_sam2.video import volume_time
from napari_sam2.video._volume_identity import give_back_stolen
from napari_sam2.video.volume_time import VolumeTimeSession


def _ball(shape, centre, r) -> np.ndarray:
    """An ellipsoid half as deep along z as wide in y-x (the synthetic nuclei's shape)."""
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    dz, dy, dx = (zz - centre[0]) / (r / 2), (yy - centre[1]) / r, (xx - centre[2]) / r
    return dz**2 + dy**2 + dx**2 <= 1


SHAPE = (8, 32, 48)


def _touching() -> tuple[np.ndarray, np.ndarray]:
    a = _ball(SHAPE, (4, 16, 14), 9)
    b = _ball(SHAPE, (4, 16, 32), 9) & ~a
    return a, b


def test_a_robbed_cell_gets_its_voxels_back():
    a, b = _touching()
    previous = np.where(a, 1, np.where(b, 2, 0)).astype(np.uint16)
    sliver = b & (np.arange(SHAPE[2]) >= 38)  # what the robbed cell kept
    labels = np.where((a | b) & ~sliver, 1, np.where(sliver, 2, 0)).astype(np.uint16)
    given = give_back_stolen(labels, previous, [1, 2])
    assert given == {2: int((b & ~sliver).sum())}
    np.testing.assert_array_equal(labels, previous)  # each cell whole again
    # objects not followed to this timepoint (e.g. prompted there) change nothing
    labels = np.where((a | b) & ~sliver, 1, np.where(sliver, 2, 0)).astype(np.uint16)
    assert give_back_stolen(labels, previous, [1]) == {}


def test_moved_cells_and_trimmed_overreach_are_left_alone():
    a, b = _touching()
    previous = np.where(a, 1, np.where(b, 2, 0)).astype(np.uint16)
    moved = np.roll(previous, 2, axis=2)  # both cells 2 voxels to the right
    labels = moved.copy()
    assert give_back_stolen(labels, previous, [1, 2]) == {}
    np.testing.assert_array_equal(labels, moved)
    # cell 1 reached over cell 2 at the timepoint before; now cell 2 holds its own again
    over = a | (b & (np.arange(SHAPE[2]) < 30))
    previous = np.where(over, 1, np.where(b, 2, 0)).astype(np.uint16)
    labels = np.where(a, 1, np.where(b, 2, 0)).astype(np.uint16)
    before = labels.copy()
    assert give_back_stolen(labels, previous, [1, 2]) == {}
    np.testing.assert_array_equal(labels, before)


def _steal_fill(a: np.ndarray, b: np.ndarray):
    """A stand-in for the fill along z in which cell 1's mask spans both touching cells."""
    sliver = b & (np.arange(SHAPE[2]) >= 38)

    def fill(session, starts, *args, **kwargs):
        lab = session.labels()
        lab[np.isin(lab, list(starts))] = 0
        if 1 in starts:
            lab[(a | b) & ~sliver] = 1
        if 2 in starts:
            lab[sliver] = 2
        yield 0

    return fill


def _run(model, monkeypatch, rule: bool) -> np.ndarray:
    a, b = _touching()
    t = 3
    movie = np.zeros((t, *SHAPE), np.float32)
    movie[:, a | b] = 1.0
    session = VolumeTimeSession(model, movie, axes="TZYX", zoom="off")
    session.add_points(0, 4, 1, [(16, 14)], [1])
    session.add_points(0, 4, 2, [(16, 32)], [1])
    session.labels()[0] = np.where(a, 1, np.where(b, 2, 0))  # both cells right at t = 0
    monkeypatch.setattr(volume_time, "propagate_along_z", _steal_fill(a, b))
    if not rule:  # neither identity rule after the fill
        monkeypatch.setattr(volume_time, "give_back_stolen", lambda *args: {})
        monkeypatch.setattr(volume_time, "reshare_touching", lambda *args: {})
    assert list(session.propagate("forward")) == [0, 1, 2]
    labels = session.labels().copy()
    session.close()
    return labels


def test_touching_cells_keep_their_identities_through_time(model, monkeypatch):
    """Two touching nuclei, the fill of one reaching over the other at every timepoint: the
    other keeps its label (its voxels of the timepoint before go back to it); without the rule
    its label is down to a sliver from t = 1 on."""
    a, b = _touching()
    labels = _run(model, monkeypatch, rule=True)
    for t in range(3):
        assert (labels[t][b] == 2).mean() > 0.9 and (labels[t][a] == 1).all()
    monkeypatch.undo()
    stolen = _run(model, monkeypatch, rule=False)
    assert (stolen[1][b] == 1).mean() > 0.7 and (stolen[2][b] == 2).mean() < 0.3


def test_zstacks_never_run_the_rule(model, monkeypatch):
    """The rules need a timepoint before: a z-stack's fill along z runs neither the steals nor
    the sharing of touching labels."""
    from napari_sam2.video.session import VideoSession
    from napari_sam2.video.volumes import propagate_along_z

    def refuse(*args, **kwargs):
        raise AssertionError("an identity rule ran without time")

    monkeypatch.setattr(volume_time, "give_back_stolen", refuse)
    monkeypatch.setattr(volume_time, "reshare_touching", refuse)
    a, b = _touching()
    stack = np.where(a | b, 1.0, 0.0).astype(np.float32)
    session = VideoSession(model, stack, axes="ZYX")
    session.add_points(4, 1, [(16, 14)], [1])
    session.add_points(4, 2, [(16, 32)], [1])
    assert list(propagate_along_z(session, {1: 4, 2: 4}))
    assert set(np.unique(session.labels())) <= {0, 1, 2}


def test_overlaps_go_to_the_cell_that_held_them_unless_clearly_deeper():
    """Where two masks overlap, the object that held a pixel at the timepoint before counts
    HELD_BONUS pixels deeper; without ``held`` the deepest mask wins as before."""
    from napari_sam2.video._volume_overlap import HELD_BONUS, paint_deepest

    yy, xx = np.mgrid[:40, :60]
    left = (yy - 20) ** 2 + (xx - 20) ** 2 <= 100  # cell 1, radius 10
    wide = (yy - 20) ** 2 + (xx - 30) ** 2 <= 196  # cell 2's mask reaching over cell 1
    held = np.where(left, 1, 0).astype(np.uint16)
    free = np.ones(left.shape, bool)
    plain, kept = np.zeros(left.shape, np.uint16), np.zeros(left.shape, np.uint16)
    paint_deepest(plain, [(1, left), (2, wide)], free)
    paint_deepest(kept, [(1, left), (2, wide)], free, held)
    assert (plain[20, 23:25] == 2).all()  # deeper in the wide mask ...
    assert (kept[20, 23:25] == 1).all()  # ... by less than the bonus: cell 1 keeps them
    assert (kept[20, 26:30] == 2).all()  # clearly deeper: the wide mask's
    assert HELD_BONUS > 0 and (kept[~left] == plain[~left]).all()
    lone = np.zeros(left.shape, np.uint16)  # a pixel held but outside the mask stays free
    paint_deepest(lone, [(1, left & (xx < 20))], free, held)
    assert (lone == 1).sum() == (left & (xx < 20)).sum()


def test_prompted_timepoint_is_followed_from_the_slice_clicked(model):
    a, b = _touching()
    movie = np.zeros((2, *SHAPE), np.float32)
    movie[:, a | b] = 1.0
    session = VolumeTimeSession(model, movie, axes="TZYX", zoom="off")
    mask = session.add_points(0, 3, 1, [(16, 14)], [1])
    assert mask[3].any() and session._tracks[1].centre[0] == 3
    session.close()


def test_with_the_timepoint_before_no_cell_is_ended_by_its_neighbours_mask():
    """The share-rise rule ends the cell whose neighbour's mask lies on it, not the neighbour:
    with the labels of the timepoint before the overlap is shared out instead."""
    from napari_sam2.video.volumes import _guard, _ObjectSlices

    shape, nz = (24, 32), 6
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    own = (yy - 12) ** 2 + (xx - 12) ** 2 <= 25
    path = {z: (yy - 12) ** 2 + (xx - x) ** 2 <= 25 for z, x in enumerate((24, 24, 24, 19, 14, 12))}
    image = np.zeros((nz, *shape), np.float32)
    image[:, own] = 1.0
    for z, m in path.items():
        image[z][m] = 1.0

    def found():
        out = _ObjectSlices(shape)
        for obj_id, per_slice in ((1, {z: own for z in range(nz)}), (3, path)):
            for z, m in per_slice.items():
                out.crops.setdefault(obj_id, {})[z] = ((0, 0, *shape), m)
        return out

    shared = found()
    _guard(shared, {1: 2, 3: 1}, nz, lambda z: image[z], claims=False)
    assert sorted(shared.crops[3]) == [0, 1, 2, 3]  # the share rise ends cell 3
    kept = found()
    _guard(kept, {1: 2, 3: 1}, nz, lambda z: image[z], False, neighbour_rule=False)
    assert sorted(kept.crops[3]) == sorted(kept.crops[1]) == list(range(nz))


def test_fills_of_stacked_cells_end_on_the_voxels_the_other_held():
    """Two cells stacked along z, each mask going on through the other's slices (the model's
    masks do not shrink): with the labels of the timepoint before, each ends on the first
    slice where its mask lies mostly on the other's voxels; a touching neighbour beside it,
    whose mask lies only partly on the other's voxels, is not ended."""
    from napari_sam2.video._volume_identity import MAX_HELD_SHARE, held_by_others
    from napari_sam2.video.volumes import _guard, _ObjectSlices

    shape, nz = (24, 40), 8
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    disc = (yy - 12) ** 2 + (xx - 12) ** 2 <= 25
    beside = (yy - 12) ** 2 + (xx - 19) ** 2 <= 25  # cell 3, overlapping cell 1's disc
    image = np.zeros((nz, *shape), np.float32)
    image[:, disc | beside] = 1.0
    previous = np.zeros((nz, *shape), np.uint16)
    previous[:4][:, disc] = 1  # cell 1 below, cell 2 above
    previous[4:][:, disc] = 2
    previous[:, beside & ~disc] = 3
    share = held_by_others(beside, previous[2], 3)
    assert 0 < share < MAX_HELD_SHARE  # the neighbour's mask lies partly on cell 1
    found = _ObjectSlices(shape)
    for obj_id, m in ((1, disc), (2, disc), (3, beside)):
        for z in range(nz):
            found.crops.setdefault(obj_id, {})[z] = ((0, 0, *shape), m)
    starts = {1: 1, 2: 6, 3: 3}
    _guard(found, starts, nz, lambda z: image[z], claims=False, previous=previous)
    assert sorted(found.crops[1]) == [0, 1, 2, 3]
    assert sorted(found.crops[2]) == [4, 5, 6, 7]
    assert sorted(found.crops[3]) == list(range(nz))
    assert held_by_others(np.zeros(shape, bool), previous[0], 1) == 0.0
