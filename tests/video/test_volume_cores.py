"""Divisions whose daughters still touch: a mask over two bright cores is split, one elongated
nucleus is not."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_sam2.train.zstack import Nucleus, render_nuclei
from napari_sam2.video._volume_cores import bright_cores, cell_radii
from napari_sam2.video.volume_divisions import SADDLE_SHARE, daughter_masks
from napari_sam2.video.volume_time import VolumeTimeSession

SHAPE = (16, 48, 64)


def _render(nuclei, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return render_nuclei(SHAPE, nuclei, np.random.default_rng(seed), 0.03)


def _mother() -> Nucleus:
    return Nucleus(1, np.array([8.0, 24.0, 32.0]), np.array([5.0, 10.0, 10.0]), 0.8)


def _daughters() -> list[Nucleus]:
    """Two daughters of 0.8 of the mother's radii, side by side along x, touching."""
    r = np.array([4.0, 8.0, 8.0])
    return [Nucleus(k, np.array([8.0, 24.0, 32.0 + s * 8.0]), r, 0.8) for k, s in ((2, -1), (3, 1))]


def _joined(labels: np.ndarray) -> np.ndarray:
    """One mask over every labelled voxel, widened as the model's masks are (one piece)."""
    return ndimage.binary_dilation(labels > 0, iterations=2)


def test_touching_daughters_are_split_at_the_dip():
    """The mask over two touching daughters is one piece; the image inside it has two bright
    cores, and each daughter ends up in one half."""
    mother = _render([_mother()])[1] == 1
    image, truth = _render(_daughters())
    mask = _joined(truth)
    assert ndimage.label(mask)[1] == 1  # no gap: the pieces rule alone finds nothing
    assert daughter_masks(mask, int(mother.sum())) is None
    parts = daughter_masks(mask, int(mother.sum()), image=image, mother=mother)
    assert parts is not None
    a, b = parts
    assert not (a & b).any() and ((a | b) == mask).all()  # the mask is shared out
    for part in parts:  # each half holds one daughter, nearly all of it
        held = [np.count_nonzero(part & (truth == k)) / np.count_nonzero(truth == k)
                for k in (2, 3)]
        assert max(held) > 0.9 and min(held) < 0.1


def test_elongated_nucleus_is_not_split():
    """A nucleus 2.6 times as long as wide, with texture, is one core: no division."""
    long = Nucleus(1, np.array([8.0, 24.0, 32.0]), np.array([4.0, 8.0, 21.0]), 0.8)
    for seed in range(3):
        image, truth = _render([long], seed)
        mask = _joined(truth)
        before = _render([_mother()], seed)[1] == 1
        assert daughter_masks(mask, int(before.sum()), image=image, mother=before) is None
        cores = bright_cores(mask, image, cell_radii(before), SADDLE_SHARE)
        assert cores.count >= 1 and ((cores.labels > 0) == mask).all()  # every voxel in one


def test_dark_cells_are_read_negated():
    """Two touching dark cells on a bright background are two cores too."""
    image, truth = _render(_daughters())
    mask = _joined(truth)
    mother = _render([_mother()])[1] == 1
    assert daughter_masks(mask, int(mother.sum()), image=1.0 - image, mother=mother) is not None


def test_session_splits_touching_daughters_into_two_ids(model):
    """A cell whose mask at t joins two touching daughters ends at t - 1; the two halves get
    new ids in the lineage and are followed from t on."""
    first, truth0 = _render([_mother()])
    second, truth1 = _render(_daughters(), seed=1)
    movie = np.stack([first, second, second])
    session = VolumeTimeSession(model, movie, axes="TZYX", zoom="off", divisions=True)
    session.add_points(0, 8, 1, [(24, 32)], [1])
    lab = session.labels()
    lab[0] = np.where(truth0 == 1, 1, 0)
    lab[1] = np.where(_joined(truth1), 1, 0)
    mother = session._tracks[1]
    mother.centre[0] = 8
    session._divide(1, mother)
    assert session.lineage == {2: 1, 3: 1}
    assert mother.ended == 0 and 1 not in lab[1]
    for obj_id in (2, 3):
        held = [np.count_nonzero((lab[1] == obj_id) & (truth1 == k)) for k in (2, 3)]
        assert max(held) > 0.9 * np.count_nonzero(truth1 == 2)  # one daughter each
        tr = session._tracks[obj_id]
        assert tr.born and tr.prompted == {1} and tr.time.prompted_frames(obj_id) == [1]
    # a daughter does not divide again within MIN_CYCLE timepoints: the same two cores under
    # daughter 2's mask at t = 2 leave it whole
    lab[2] = np.where(_joined(truth1), 2, 0)
    session._divide(2, session._tracks[2])
    assert session.lineage == {2: 1, 3: 1} and session._tracks[2].ended is None
    session.close()


def test_pieces_divide_only_around_the_mother():
    """Two pieces of a mask are daughters only where the mother was between them: two
    fragments on one side of her (a mask breaking up, a neighbour's piece) are not."""
    zz, yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]

    def ball(x: float, r: float) -> np.ndarray:
        return ((zz - 8) * 2) ** 2 + (yy - 24) ** 2 + (xx - x) ** 2 <= r * r

    pieces = ball(24, 6) | ball(42, 6)  # two pieces, 18 voxels apart along x
    centred, aside = ball(33, 9), ball(14, 9)  # the mother between them / beside them
    for mother, divides in ((centred, True), (aside, False)):
        parts = daughter_masks(pieces, int(mother.sum()), mother=mother)
        assert (parts is not None) == divides
    assert daughter_masks(pieces, int(aside.sum())) is not None  # no mother given: pieces only


def test_a_label_on_background_noise_is_not_split(monkeypatch):
    """A small label that lost its cell and sits on noise: the noise makes cores (the rule
    without its contrast guard splits most of these), but no part stands above the background
    by a cell's contrast, so nothing divides, whether one piece or two."""
    from napari_sam2.video import volume_divisions

    shape = (10, 40, 40)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]

    def blob(x: float, r: tuple[float, float, float]) -> np.ndarray:
        return ((zz - 5) / r[0]) ** 2 + ((yy - 20) / r[1]) ** 2 + ((xx - x) / r[2]) ** 2 <= 1

    mother, one = blob(20, (3, 4, 4)), blob(20.5, (3, 4.5, 5))
    two = blob(14, (2, 3, 3)) | blob(26, (2, 3, 3))  # fallen apart, around the mother
    images = [
        np.clip(0.5 + 0.15 * np.random.default_rng(seed).standard_normal(shape), 0, 1)
        for seed in range(20)
    ]

    def splits(mask: np.ndarray) -> int:
        return sum(
            daughter_masks(mask, int(mother.sum()), image=im, mother=mother) is not None
            for im in images
        )

    assert splits(one) == 0 and splits(two) == 0
    monkeypatch.setattr(volume_divisions, "MIN_CONTRAST", -np.inf)
    assert splits(one) >= 5  # the noise does make two cores under the label
    assert splits(two) == len(images)  # and the pieces alone would divide


def test_contrast_guard_keeps_daughters_of_half_the_window():
    """Touching daughters about 0.4 above a background of 0.4 still divide (each half's mean,
    over the model's wider mask, about 0.12 above the ring); at a sixth of that they do not."""
    image, truth = _render(_daughters())
    mask = _joined(truth)
    mother = _render([_mother()])[1] == 1
    for scale, divides in ((0.6, True), (0.1, False)):
        dim = 0.4 + scale * image  # nuclei of mean intensity 0.63 * scale above 0.4
        parts = daughter_masks(mask, int(mother.sum()), image=dim, mother=mother)
        assert (parts is not None) == divides



def test_a_division_never_takes_a_mask_prompted_at_that_timepoint(model, monkeypatch):
    """A daughter reaching over a neighbour's mask that the user prompted at t (the sister
    opposite may lie under another label) leaves the division out: the user's voxels stay.
    Without that prompt the same halves divide."""
    from napari_sam2.video import volume_time

    first, truth0 = _render([_mother()])
    second, truth1 = _render(_daughters(), seed=1)
    halves = (truth1 == 2, truth1 == 3)
    monkeypatch.setattr(volume_time, "daughter_masks", lambda *a, **k: halves)
    for prompted in (True, False):
        session = VolumeTimeSession(model, np.stack([first, second]), axes="TZYX", zoom="off")
        session.add_points(0, 8, 1, [(24, 32)], [1])
        if prompted:
            session.add_points(1, 8, 5, [(24, 40)], [1])  # object 5 is prompted at t = 1
        lab = session.labels()
        lab[0] = np.where(truth0 == 1, 1, 0)
        lab[1] = np.where(truth1 == 2, 1, 0)
        lab[1][truth1 == 3] = 5  # 5's mask on the other daughter
        before = lab[1].copy()
        mother = session._tracks[1]
        mother.centre[0] = 8
        session._divide(1, mother, image=second.astype(np.float32))
        if prompted:
            assert session.lineage == {} and mother.ended is None
            np.testing.assert_array_equal(lab[1], before)
        else:
            assert session.lineage == {2: 1, 3: 1} and mother.ended == 0
            assert np.array_equal(lab[1] == 3, halves[1])
        session.close()
