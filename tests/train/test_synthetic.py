"""Tests for the synthetic time-lapse generator (ground-truth consistency, CTC conventions)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from scipy import ndimage

from napari_sam2.train.synthetic import SyntheticMovie, make_movie
from napari_sam2.train.synthetic_config import SyntheticConfig

SMALL = {"shape": (96, 96), "n_frames": 8}
KINDS = ("nuclei", "phase", "bacteria")


def _frames_per_id(labels: np.ndarray) -> dict[int, list[int]]:
    frames: dict[int, list[int]] = defaultdict(list)
    for t, frame in enumerate(labels):
        for i in np.unique(frame):
            if i:
                frames[int(i)].append(t)
    return frames


def _children(lineage: dict[int, tuple[int, int, int]]) -> dict[int, list[int]]:
    kids: dict[int, list[int]] = defaultdict(list)
    for tid, (_, _, parent) in lineage.items():
        if parent:
            kids[parent].append(tid)
    return kids


def _check_ctc(m: SyntheticMovie) -> None:
    """Lineage agrees with the labels; tracks contiguous; parents end right before kids."""
    frames = _frames_per_id(m.labels)
    assert set(frames) == set(m.lineage)
    for tid, (start, end, parent) in m.lineage.items():
        assert frames[tid] == list(range(start, end + 1)), f"track {tid} has a gap"
        if parent:
            assert parent in m.lineage and parent != tid
            assert m.lineage[parent][1] + 1 == start
    for kids in _children(m.lineage).values():
        assert 1 <= len(kids) <= 2


def _far_background(labels: np.ndarray, dist: float = 4.0) -> np.ndarray:
    return ndimage.distance_transform_edt(labels == 0) > dist


def test_deterministic_per_seed():
    a = make_movie(kind="nuclei", seed=3, **SMALL)
    b = make_movie(kind="nuclei", seed=3, **SMALL)
    np.testing.assert_array_equal(a.movie, b.movie)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.lineage == b.lineage
    c = make_movie(kind="nuclei", seed=4, **SMALL)
    assert not np.array_equal(a.labels, c.labels)
    assert not np.array_equal(a.movie, c.movie)


def test_geometry_does_not_depend_on_imaging():
    a = make_movie(kind="phase", seed=1, **SMALL)
    b = make_movie(kind="phase", seed=1, blur=0.0, photons=50.0, dtype="uint16", **SMALL)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.lineage == b.lineage
    assert not np.array_equal(a.movie.astype(np.int64), b.movie.astype(np.int64))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_shapes_dtypes_and_range(kind, dtype):
    m = make_movie(kind=kind, dtype=dtype, shape=(80, 112), n_frames=5, seed=2)
    assert m.movie.shape == m.labels.shape == (5, 80, 112)
    assert m.movie.dtype == np.dtype(dtype)
    assert m.labels.dtype == np.uint16
    assert m.config.kind == kind and m.config.dtype == dtype
    assert all(getattr(m.config, f) is not None for f in vars(m.config))
    assert (m.labels[0] > 0).any()
    bg = np.median(m.movie[m.labels == 0])
    if dtype == "uint16":  # realistic camera range, not the full 16 bits
        assert m.movie.max() < 6000
        assert 60 < bg < 3000
    else:
        assert 4 < bg < 200
    if kind == "nuclei":
        assert bg < (150 if dtype == "uint8" else 300)  # dark background near the offset
    else:
        assert bg > (80 if dtype == "uint8" else 1000)  # grey transmitted-light background


def test_presets_resolve_per_kind():
    assert SyntheticConfig().kind == "nuclei"
    assert SyntheticConfig().radius == (8.0, 14.0)
    assert SyntheticConfig(kind="phase").radius == (10.0, 18.0)
    assert SyntheticConfig(kind="bacteria", radius=(2, 3)).radius == (2.0, 3.0)
    m = make_movie(kind="nuclei", n_frames=1)
    assert m.movie.shape == (1, 256, 256)
    assert 20 <= len(np.unique(m.labels[0])) - 1 <= 40
    areas = np.bincount(m.labels[0].ravel())[1:]
    areas = areas[areas > 0]
    radii = np.sqrt(areas / np.pi)
    assert 6 < np.median(radii) < 14  # ~8-14 px nominal radius (area factor <= 1)


def test_config_override_and_validation():
    cfg = SyntheticConfig(kind="bacteria", seed=5, **SMALL)
    a = make_movie(cfg, seed=6)
    b = make_movie(kind="bacteria", seed=6, **SMALL)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert cfg.seed == 5  # the passed config is not mutated
    with pytest.raises(ValueError):
        SyntheticConfig(kind="cells")
    with pytest.raises(ValueError):
        SyntheticConfig(dtype="float32")
    with pytest.raises(ValueError):
        SyntheticConfig(radius=(5.0, 3.0))
    with pytest.raises(ValueError):
        SyntheticConfig(touching=0.95)


def test_ids_persist_and_bounded_step():
    step = 1.5
    m = make_movie(
        kind="nuclei",
        shape=(128, 128),
        n_frames=12,
        n_cells=12,
        division_rate=0.0,
        enter_leave=0.0,
        step=step,
        seed=7,
    )
    ids0 = set(np.unique(m.labels[0])) - {0}
    assert len(ids0) == 12
    for t in range(1, 12):  # confined, no division: the same ids in every frame
        assert set(np.unique(m.labels[t])) - {0} == ids0
    assert len(m.lineage) == 12
    _check_ctc(m)
    ids = sorted(ids0)
    cents = np.array([ndimage.center_of_mass(f > 0, f, ids) for f in m.labels])  # (T, N, 2)
    steps = np.linalg.norm(np.diff(cents, axis=0), axis=-1)
    assert steps.max() < 6 * step  # random walk + small collision pushes
    assert steps.mean() > 0.3 * step  # cells do move


@pytest.mark.parametrize("kind", ["nuclei", "bacteria"])
def test_division_lineage(kind):
    m = make_movie(
        kind=kind,
        shape=(128, 128),
        n_frames=12,
        n_cells=10,
        division_rate=0.15,
        enter_leave=0.0,
        seed=11,
    )
    _check_ctc(m)
    kids = _children(m.lineage)
    assert len(kids) >= 2
    frames = _frames_per_id(m.labels)
    for mother, daughters in kids.items():
        assert len(daughters) == 2
        m_end = m.lineage[mother][1]
        m_area = (m.labels[m_end] == mother).sum()
        m_cent = np.array(ndimage.center_of_mass(m.labels[m_end] == mother))
        offsets = []
        for d in daughters:
            assert d != mother
            start = m.lineage[d][0]
            assert start == m_end + 1
            assert frames[d][0] == start
            assert not (m.labels[start:] == mother).any()  # the mother never comes back
            d_area = (m.labels[start] == d).sum()
            assert 0.2 * m_area < d_area < 0.85 * m_area  # ~half the mother each
            offsets.append(np.array(ndimage.center_of_mass(m.labels[start] == d)) - m_cent)
        assert np.dot(offsets[0], offsets[1]) < 0  # on either side of the mother
    assert max(m.lineage) > m.config.n_cells  # daughters got new ids


def test_bacteria_elongate():
    m = make_movie(
        kind="bacteria", shape=(128, 128), n_frames=10, n_cells=8, division_rate=0.05, seed=3
    )
    growth = []
    for tid, (start, end, _) in m.lineage.items():
        if end - start >= 4:
            a0 = (m.labels[start] == tid).sum()
            a1 = (m.labels[end] == tid).sum()
            growth.append(a1 / a0)
    assert growth and np.median(growth) > 1.1


@pytest.mark.parametrize("kind", KINDS)
def test_ctc_consistency_with_entering_leaving_and_drift(kind):
    m = make_movie(
        kind=kind,
        shape=(96, 96),
        n_frames=14,
        enter_leave=0.8,
        step=2.5,
        drift=(0.5, 1.5),
        division_rate=0.05,
        seed=5,
    )
    _check_ctc(m)
    assert m.labels.max() == max(m.lineage)  # ids compact: 1..N in order of appearance
    assert sorted(m.lineage) == list(range(1, len(m.lineage) + 1))


def test_cells_enter_and_leave():
    m = make_movie(
        kind="nuclei",
        shape=(96, 96),
        n_frames=15,
        n_cells=8,
        enter_leave=1.0,
        step=2.0,
        drift=(0.0, 2.0),
        division_rate=0.0,
        seed=2,
    )
    entered = [t for t, (s, _, p) in m.lineage.items() if s > 0 and p == 0]
    left = [t for t, (_, e, _) in m.lineage.items() if e < 14]
    assert entered and left
    for tid in entered:  # an entering cell first shows up at the border
        ys, xs = np.nonzero(m.labels[m.lineage[tid][0]] == tid)
        assert ys.min() == 0 or xs.min() == 0 or ys.max() == 95 or xs.max() == 95


def test_touching_cells_partition_without_overlap():
    m = make_movie(
        kind="nuclei",
        shape=(96, 96),
        n_frames=4,
        n_cells=30,
        touching=0.4,
        seed=1,
        enter_leave=0.0,
    )
    lab = m.labels[0]
    a, b = lab[:, :-1], lab[:, 1:]
    contact = (a != b) & (a > 0) & (b > 0)
    assert contact.sum() > 10  # neighbours touch along seams
    for frame in m.labels:  # every cell is one 4-connected piece
        for i in np.unique(frame)[1:]:
            assert ndimage.label(frame == i)[1] == 1


def test_no_contact_when_touching_is_zero():
    m = make_movie(
        kind="nuclei",
        shape=(128, 128),
        n_frames=3,
        n_cells=10,
        touching=0.0,
        deformation=0.0,
        seed=4,
        enter_leave=0.0,
    )
    for lab in m.labels:
        grown = ndimage.grey_dilation(lab, size=(3, 3))
        assert not ((grown != lab) & (lab > 0)).any()  # no different id next to a cell


@pytest.mark.parametrize("kind", KINDS)
def test_movie_structure_matches_labels_exactly(kind):
    """Noise-free rendering: a single threshold separates cells from background exactly."""
    m = make_movie(
        kind=kind,
        dtype="uint16",
        photons=1e6,
        read_noise=0.0,
        blur=0.0,
        illumination=0.0,
        texture=0.0,
        division_rate=0.0,
        seed=9,
        **SMALL,
    )
    fg = m.labels > 0
    img = m.movie.astype(np.float64)
    if kind == "nuclei":
        assert img[fg].min() > img[~fg].max()
    else:
        assert img[fg].max() < img[~fg].min()


@pytest.mark.parametrize("kind", KINDS)
def test_intensity_inside_vs_background(kind):
    m = make_movie(kind=kind, shape=(128, 128), n_frames=4, division_rate=0.0, seed=6)
    for t in (0, 3):
        lab, img = m.labels[t], m.movie[t].astype(np.float64)
        far = _far_background(lab)
        bg = np.median(img[far])
        ids = np.unique(lab)[1:]
        means = np.array(ndimage.mean(img, lab, ids))
        if kind == "nuclei":
            assert (means > bg + 8).all()  # bright nuclei on a dark background
        else:
            assert (means < bg - 5).all()  # dark bodies on a grey background
            ring = (ndimage.distance_transform_edt(lab == 0) <= 2) & (lab == 0)
            assert img[ring].mean() > bg + 5  # bright halo around the cells


def test_photobleaching_decays_exponentially():
    m = make_movie(
        kind="nuclei",
        n_frames=10,
        shape=(96, 96),
        photobleaching=0.1,
        illumination=0.0,
        division_rate=0.0,
        enter_leave=0.0,
        photons=5000.0,
        seed=8,
    )
    offset = 8.0
    first = m.movie[0][m.labels[0] > 0].mean() - offset
    last = m.movie[9][m.labels[9] > 0].mean() - offset
    assert 0.3 < last / first < 0.55  # exp(-0.9) = 0.41


def test_no_cells():
    m = make_movie(kind="phase", n_cells=0, enter_leave=0.0, **SMALL)
    assert not m.labels.any() and m.lineage == {}
    assert m.movie.std() > 0  # still a noisy background
