"""3-D + time: a cell is followed on a slice that holds it, not on a wide tip past its end."""

from __future__ import annotations

import numpy as np

from napari_sam2.video import volume_time
from napari_sam2.video.volume_time import VolumeTimeSession
from napari_sam2.video.volumes import CENTRE_SHARE, central_slice

SHAPE = (8, 32, 32)  # Z, Y, X
CELL_SLICES = range(2, 7)  # the cell spans slices 2..6


def _cell() -> np.ndarray:
    """(Z, Y, X) bool: a cylinder of radius 7 on slices 2..6."""
    yy, xx = np.mgrid[: SHAPE[1], : SHAPE[2]]
    disc = (yy - 16) ** 2 + (xx - 16) ** 2 <= 49
    cell = np.zeros(SHAPE, bool)
    cell[CELL_SLICES.start : CELL_SLICES.stop] = disc
    return cell


def test_central_slice_is_near_the_centroid_not_a_wide_tip():
    # a fill's slice areas measured on the lone cell of bench_3d_memory.py (t = 189): the
    # model's mask hardly shrinks, so its widest slice is a tip past the cell's end (slice 1)
    areas = [0, 187, 176, 162, 159, 151, 131, 83, 0, 0]
    m = np.zeros((len(areas), 16, 16), bool)
    for z, a in enumerate(areas):
        m[z].flat[:a] = True
    assert central_slice(m, share=1.0) == 1  # the widest slice
    assert central_slice(m) == 4  # nearest the centroid (3.6) among the wide slices
    # a slice much narrower than the widest is never picked, even at the centroid
    m = np.zeros((5, 16, 16), bool)
    m[0].flat[:200], m[2].flat[: int(200 * CENTRE_SHARE) - 1], m[4].flat[:200] = True, True, True
    assert central_slice(m) in (0, 4)
    assert central_slice(np.zeros((3, 4, 4), bool)) is None


def _tip_fill(movie: np.ndarray, cell: np.ndarray, tips: list[int]):
    """A stand-in for the fill along z: from a start slice on the cell, the cell's voxels and a
    mask on slice 0 (past the cell's end) wider than any of the cell's slices, as the model's
    masks do not shrink towards the tips; from a start slice without the cell, nothing (the
    object is gone). ``tips`` records the timepoints filled."""
    tip = np.zeros(SHAPE[1:], bool)
    tip[9:22, 9:22] = True  # 169 pixels; the cell 149 per slice

    def fill(session, starts, *args, **kwargs):
        lab = session.labels()
        lab[np.isin(lab, list(starts))] = 0
        for obj_id, z in starts.items():
            if cell[z].any() and movie[z][cell[z]].mean() > 0.5:
                lab[cell] = obj_id
                lab[0][tip] = obj_id
                tips.append(z)
        yield 0

    return fill


def _run(model, monkeypatch, share: float) -> tuple[np.ndarray, dict]:
    cell = _cell()
    movie = np.zeros((5, *SHAPE), np.float32)
    movie[:, cell] = 1.0
    session = VolumeTimeSession(model, movie, axes="TZYX", zoom="off", fit=False)
    session.add_points(0, 4, 1, [(16, 16)], [1])
    session.labels()[0] = np.where(cell, 1, 0)
    session.labels()[0][0, 9:22, 9:22] = 1
    starts: list[int] = []
    monkeypatch.setattr(volume_time, "propagate_along_z", _tip_fill(movie[0], cell, starts))
    monkeypatch.setattr(volume_time, "central_slice", lambda m: central_slice(m, share))
    assert list(session.propagate("forward")) == list(range(5))
    centres = dict(session._tracks[1].centre)
    labels = session.labels().copy()
    session.close()
    return labels, centres


def test_a_cell_whose_widest_slice_is_past_its_end_keeps_a_mask(model, monkeypatch):
    """Each timepoint's fill is widest on slice 0, past the cell's end: followed on a slice
    near the fill's centroid the cell has a mask on every timepoint; followed on the widest
    slice (share 1.0) the track reads slice 0, which holds no cell, and the cell is lost."""
    labels, centres = _run(model, monkeypatch, CENTRE_SHARE)
    assert all((labels[t] == 1).any() for t in range(5))
    assert all(centres[t] in CELL_SLICES for t in range(1, 5))
    monkeypatch.undo()
    widest, centres = _run(model, monkeypatch, 1.0)
    assert centres[1] == 0
    assert not any((widest[t] == 1).any() for t in range(2, 5))


def test_a_cell_leaving_the_volume_ends():
    """A nucleus that sinks below the stack (2 slices per timepoint) has no mask once it is
    gone: following it on its fill's central slice does not keep a phantom (bundled model)."""
    from napari_sam2 import load_model

    micro = load_model("micro", device="cpu")
    nz, size, frames = 8, 64, 6
    zz, yy, xx = np.mgrid[:nz, :size, :size]
    rng = np.random.default_rng(0)
    movie = rng.normal(0.1, 0.02, (frames, nz, size, size)).astype(np.float32)
    truth = np.zeros(movie.shape, bool)
    for t in range(frames):
        zc = 4 - 2 * t  # centre slice 4, 2, 0, -2, ...
        truth[t] = ((zz - zc) / 2.5) ** 2 + ((yy - 32) / 10) ** 2 + ((xx - 32) / 10) ** 2 <= 1
        movie[t][truth[t]] += 0.8
    session = VolumeTimeSession(micro, movie, axes="TZYX")
    session.add_points(0, 4, 1, [(32, 32)], [1])
    list(session.propagate("forward"))
    labels = session.labels() == 1
    session.close()
    assert labels[0].any() and labels[1].any()  # present while in the stack
    for t in range(frames):
        if not truth[t].any():  # gone from the volume: no mask
            assert not labels[t].any(), t
