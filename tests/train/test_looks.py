"""Tests of the synthetic look families (train/looks): rendering, ground truth, randomness."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_sam2.train.looks import FAMILIES, make_look

SHAPE = (64, 64)
# Imaging that leaves only the noise-free structure (to test where the structure is).
CLEAN = {
    "photons": 1e6,
    "read_noise": 0.0,
    "blur": 0.0,
    "illumination": 0.0,
    "photobleaching": 0.0,
    "debris": 0,
    "dtype": "uint16",
    "offset": 100.0,
    "top": 30000.0,
}


@pytest.mark.parametrize("family", FAMILIES)
def test_renders_with_consistent_ground_truth(family):
    mv = make_look(family, np.random.default_rng(1), SHAPE, 5)
    assert mv.family == family
    assert mv.movie.shape == mv.labels.shape == (5, *SHAPE)
    assert mv.movie.dtype in (np.uint8, np.uint16)
    assert mv.labels.dtype == np.uint16
    ids = set(np.unique(mv.labels).tolist()) - {0}
    assert ids and ids == set(mv.lineage)
    assert mv.movie.std() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_movie(family):
    a = make_look(family, 7, SHAPE, 4)
    b = make_look(family, np.random.default_rng(7), SHAPE, 4)
    np.testing.assert_array_equal(a.movie, b.movie)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.lineage == b.lineage and a.params == b.params
    c = make_look(family, 8, SHAPE, 4)
    assert not np.array_equal(a.movie, c.movie)


@pytest.mark.parametrize("family", FAMILIES)
def test_labels_follow_image_structure(family):
    """Without noise, blur and debris, the image changes at the labels' boundaries and is flat
    far from every cell."""
    for seed in range(3):
        mv = make_look(family, seed, SHAPE, 1, n_cells=4, **CLEAN)
        img = mv.movie[0].astype(np.float64)
        lab = mv.labels[0]
        if not lab.any():
            continue
        grad = np.hypot(*np.gradient(img))
        pad = np.pad(lab, 1, mode="edge")
        boundary = (lab > 0) & (
            (pad[:-2, 1:-1] != lab) | (pad[2:, 1:-1] != lab)
            | (pad[1:-1, :-2] != lab) | (pad[1:-1, 2:] != lab)
        )
        far = ndimage.distance_transform_edt(lab == 0) > 8
        assert boundary.sum() > 10 and far.sum() > 50
        assert grad[boundary].mean() > 5.0 * (grad[far].mean() + 1e-3), (family, seed)


def test_unknown_family_and_parameter_are_named():
    with pytest.raises(ValueError, match="unknown look family 'dic'"):
        make_look("dic", 0, SHAPE, 1)
    with pytest.raises(ValueError, match="unknown parameter.*'colour'"):
        make_look("nuclei", 0, SHAPE, 1, colour=3)
