"""3-D + time: the boundary between two touching labels goes back onto their cells."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_sam2.train.zstack import Nucleus, render_nuclei
from napari_sam2.video import volume_time
from napari_sam2.video._volume_touching import reshare_touching, touching_pairs
from napari_sam2.video.volume_time import VolumeTimeSession

SHAPE = (16, 48, 72)


def _pair() -> tuple[np.ndarray, np.ndarray]:
    """(image, truth) of two touching nuclei of different sizes (y-x radii 11 and 8)."""
    nuclei = [
        Nucleus(1, np.array([8.0, 24.0, 24.0]), np.array([5.0, 11.0, 11.0]), 0.8),
        Nucleus(2, np.array([7.0, 24.0, 40.0]), np.array([4.0, 8.0, 8.0]), 0.7),
    ]
    return render_nuclei(SHAPE, nuclei, np.random.default_rng(0), 0.03)


def _held(labels: np.ndarray, truth: np.ndarray) -> list[float]:
    """Share of each true cell under its own label."""
    return [float((labels[truth == k] == k).mean()) for k in (1, 2)]


def _drifted(truth: np.ndarray, into: int) -> np.ndarray:
    """The labels as a fill leaves them after drifting: the masks a little wider than the
    cells (as the model's), and label 1 reaching ``into`` voxels over cell 2 along x."""
    wide = ndimage.binary_dilation(truth > 0, iterations=1)
    boundary = 32 + into  # cell 2 starts at x = 32
    x = np.arange(SHAPE[2])
    return np.where(wide & (x < boundary), 1, np.where(wide, 2, 0)).astype(np.uint16)


def test_drifted_boundary_goes_back_onto_the_cells():
    """Label 1 holds a quarter of cell 2 (the boundary drifted), or cell 2's label a quarter of
    cell 1; shared out again by the cells' centres in their own radii, each label holds its own
    cell, whichever way and how far the boundary had drifted."""
    image, truth = _pair()
    shared = []
    for into in (6, -4, 0):
        labels = _drifted(truth, into)
        union = labels > 0
        if into:
            assert min(_held(labels, truth)) < 0.75
        reshare_touching(labels, truth, [1, 2], image)
        assert min(_held(labels, truth)) > 0.98
        np.testing.assert_array_equal(labels > 0, union)  # only the two's voxels change hands
        shared.append(labels)
    assert (shared[0] != shared[1]).sum() <= 2 and (shared[0] != shared[2]).sum() <= 2


def test_boundary_on_the_cells_stays():
    """Shared out once, the labels are where the rule leaves them: a second time moves none."""
    image, truth = _pair()
    labels = _drifted(truth, 0)
    reshare_touching(labels, truth, [1, 2], image)
    again = labels.copy()
    assert reshare_touching(labels, truth, [1, 2], image) == {}
    np.testing.assert_array_equal(labels, again)


def test_lost_labels_and_labels_not_followed_are_left_alone():
    image, truth = _pair()
    labels = _drifted(truth, 5)
    kept = labels.copy()
    # label 2 not followed to this timepoint (e.g. prompted there)
    assert reshare_touching(labels, truth, [1], image) == {}
    # label 2 held a sliver at the timepoint before: a label that lost its cell
    sliver = np.where(truth == 2, 0, truth).astype(np.uint16)
    sliver[7, 24, 40:43] = 2
    assert reshare_touching(labels, sliver, [1, 2], image) == {}
    np.testing.assert_array_equal(labels, kept)


def test_touching_pairs():
    labels = np.zeros((3, 4, 9), np.uint16)
    labels[:, :, 0:3], labels[:, :, 3:5], labels[:, :, 6:9] = 1, 2, 3
    assert touching_pairs(labels, [1, 2, 3]) == [(1, 2)]  # 3 is a voxel away
    labels[1, 1, 5] = 3
    assert touching_pairs(labels, [1, 2, 3]) == [(1, 2), (2, 3)]
    assert touching_pairs(labels, [1, 3]) == []


def _drifting_fill(truth: np.ndarray):
    """A stand-in for the fill along z whose boundary has drifted 6 voxels into cell 2."""

    def fill(session, starts, *args, **kwargs):
        lab = session.labels()
        drifted = _drifted(truth, 6)
        lab[np.isin(lab, list(starts))] = 0
        keep = np.isin(drifted, list(starts))
        lab[keep] = drifted[keep]
        yield 0

    return fill


def _run(model, monkeypatch, calls: list) -> np.ndarray:
    image, truth = _pair()
    movie = np.stack([image] * 3)
    session = VolumeTimeSession(model, movie, axes="TZYX", zoom="off", divisions=True)
    session.add_points(0, 8, 1, [(24, 22)], [1])
    session.add_points(0, 7, 2, [(24, 42)], [1])
    session.labels()[0] = truth  # both cells right at t = 0
    monkeypatch.setattr(volume_time, "propagate_along_z", _drifting_fill(truth))
    share, divide = volume_time.reshare_touching, volume_time.daughter_masks
    monkeypatch.setattr(  # the order of the division search and the sharing
        volume_time, "reshare_touching", lambda *a: calls.append("share") or share(*a)
    )
    monkeypatch.setattr(
        volume_time, "daughter_masks", lambda *a, **k: calls.append("divide") or divide(*a, **k)
    )
    assert list(session.propagate("forward")) == [0, 1, 2]
    labels = session.labels().copy()
    session.close()
    return labels


def test_session_shares_touching_labels_after_the_divisions(model, monkeypatch):
    """Followed through time, a fill whose boundary drifted into cell 2 (a quarter of it under
    label 1) is shared out again at every timepoint, after the division search (which sees the
    masks as filled: a dividing cell reaches past its own radii)."""
    _, truth = _pair()
    assert _held(_drifted(truth, 6), truth)[1] < 0.75
    calls: list[str] = []
    labels = _run(model, monkeypatch, calls)
    for t in (1, 2):
        assert min(_held(labels[t], truth)) > 0.98
    assert calls == ["divide", "divide", "share"] * 2
