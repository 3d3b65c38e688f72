"""3-D + time: the objects prompted on one timepoint are filled along z together.

A cell's fill from its clicked slice must not take a neighbour stacked above or below it that
has a click of its own, and the labels must not depend on the order of the clicks.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.pipeline import segment_movie
from napari_sam2.video import volume_time
from napari_sam2.video.volume_time import VolumeTimeSession

SHAPE = (8, 32, 48)


def _cells() -> dict[int, np.ndarray]:
    """Three cells: 1 and 2 stacked along z (same y-x), 3 beside them."""
    zz, yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]

    def ball(z, y, x, r):
        return ((zz - z) / (r / 3)) ** 2 + ((yy - y) / r) ** 2 + ((xx - x) / r) ** 2 <= 1

    return {1: ball(2, 16, 14, 8), 2: ball(5, 16, 14, 8), 3: ball(4, 16, 34, 8)}


CLICKS = {1: (2, 16, 14), 2: (5, 16, 14), 3: (4, 16, 34)}  # obj -> (z, y, x)


def _movie(frames: int = 2) -> np.ndarray:
    vol = np.full(SHAPE, 100.0, np.float32)
    for m in _cells().values():
        vol[m] = 1000.0
    return np.stack([np.roll(vol, t, axis=2) for t in range(frames)])


def _clicked(model, order, fill: str = "each") -> tuple[np.ndarray, np.ndarray]:
    """Labels at t = 0 after the clicks and after following them forward; ``fill``: "each"
    click fills, "once" (one ``fill_z`` after the clicks) or "propagate" (its first step)."""
    session = VolumeTimeSession(model, _movie(), axes="TZYX")
    try:
        for obj in order:
            z, y, x = CLICKS[obj]
            session.add_points(0, z, obj, [(y, x)], [1], fill_z=fill == "each")
        if fill == "once":
            assert sorted(session.fill_z(0)) == [1, 2, 3]
        if fill == "propagate":
            steps = session.propagate("forward")
            assert next(steps) == 0
            first = session.labels()[0].copy()
            list(steps)
            return first, session.labels().copy()
        first = session.labels()[0].copy()
        list(session.propagate("forward"))
        return first, session.labels().copy()
    finally:
        session.close()


def test_click_order_does_not_change_labels(model):
    """Clicks in id order, reversed, all before one fill, or all before propagating (which
    fills the prompted timepoint first): the same labels at the prompted timepoint and after
    following the cells through time (the random model's masks overlap
    everywhere, so every contested voxel is decided by the rules, not by who came first)."""
    first, labels = _clicked(model, [1, 2, 3])
    assert set(np.unique(first)) >= {1, 2, 3}
    for order, fill in (([3, 2, 1], "each"), ([2, 3, 1], "once"), ([2, 1, 3], "propagate")):
        other_first, other = _clicked(model, order, fill)
        np.testing.assert_array_equal(other_first, first)
        np.testing.assert_array_equal(other, labels)


def test_segment_movie_ignores_the_prompt_order(model):
    prompts = [{"frame": 0, "z": z, "y": y, "x": x, "obj_id": o} for o, (z, y, x) in CLICKS.items()]
    a = segment_movie(_movie(), prompts, axes="TZYX", model=model, direction="forward")
    b = segment_movie(_movie(), prompts[::-1], axes="TZYX", model=model, direction="forward")
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a[0])) >= {1, 2, 3}


def test_each_prompt_fills_every_object_prompted_there(model, monkeypatch):
    """One fill per prompted timepoint with the z-stack's prompt rules: every object prompted
    there from its clicked slice, none of them alone."""
    calls = []
    real = volume_time.propagate_along_z

    def spy(session, starts, *args, **kwargs):
        calls.append((dict(starts), kwargs.get("claims", True)))
        yield from real(session, starts, *args, **kwargs)

    monkeypatch.setattr(volume_time, "propagate_along_z", spy)
    session = VolumeTimeSession(model, _movie(), axes="TZYX")
    for obj in (2, 1):
        z, y, x = CLICKS[obj]
        session.add_points(0, z, obj, [(y, x)], [1])
    assert calls == [({2: 5}, True), ({1: 2, 2: 5}, True)]
    # a correction click on object 1 fills both again, object 1 from its new slice
    session.add_points(0, 1, 1, [(16, 14)], [1])
    assert calls[-1] == ({1: 1, 2: 5}, True)
    # another timepoint's z-session replaces this one; the prompts of t = 0 come back with it
    session.add_points(1, 4, 3, [(16, 35)], [1])
    assert calls[-1] == ({3: 4}, True)
    assert session.fill_z(0) == [1, 2] and calls[-1] == ({1: 1, 2: 5}, True)
    session.close()


def test_an_empty_prompt_is_dropped_and_the_others_kept(model, monkeypatch):
    session = VolumeTimeSession(model, _movie(), axes="TZYX")
    z, y, x = CLICKS[1]
    session.add_points(0, z, 1, [(y, x)], [1])
    kept = session.labels()[0].copy()

    real = volume_time.propagate_along_z

    def without_2(session_, starts, *args, **kwargs):  # object 2's prompt finds nothing
        yield from real(session_, starts, *args, **kwargs)
        lab = session_.labels()
        lab[lab == 2] = 0

    monkeypatch.setattr(volume_time, "propagate_along_z", without_2)
    with pytest.raises(ValueError, match="empty mask for object 2"):
        session.add_points(0, 5, 2, [(16, 14)], [1])
    assert 0 not in session._tracks[2].prompts and 2 not in session._z_session(0).obj_ids
    np.testing.assert_array_equal(session.labels()[0], kept)  # as if never clicked
    monkeypatch.undo()
    assert session.fill_z(0) == [1]
    np.testing.assert_array_equal(session.labels()[0], kept)
    session.close()


def test_stacked_nuclei_clicked_at_t0_keep_their_voxels():
    """Validation movie seed 2003, t = 0, the bundled model: nucleus 1's fill along z went on
    into nucleus 2 stacked above it and took 1,646 of its 2,402 voxels when each click was
    filled alone; filled together, every nucleus keeps most of its own voxels."""
    from napari_sam2 import load_model
    from napari_sam2.train.zstack import make_zstack_movie

    micro = load_model("micro", device="cpu")
    mv = make_zstack_movie(frames=20, count=4, seed=2003)
    truth = mv.labels[0]
    session = VolumeTimeSession(micro, mv.image[:1], axes="TZYX")
    for obj in (1, 2, 3, 4):
        m = truth == obj
        z = int(np.argmax(m.reshape(len(m), -1).sum(1)))
        ys, xs = np.nonzero(m[z])
        k = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
        session.add_points(0, z, obj, [(int(ys[k]), int(xs[k]))], [1], fill_z=False)
    session.fill_z(0)
    labels = session.labels()[0]
    session.close()
    for obj in (1, 2, 3, 4):
        own = truth == obj
        assert (labels[own] == obj).mean() > 0.75, obj
