"""Per-family properties of the synthetic looks: parameter ranges, phase polarity, debris,
divisions, cells entering, evaluation seeds (64-px movies, a few seconds in all)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_sam2.train.looks import (
    FAMILIES,
    TEST_SEED0,
    TRAIN_SEEDS,
    VALIDATION_SEED0,
    eval_seed,
    make_look,
    sample_params,
)

SHAPE = (64, 64)
CLEAN = {
    "photons": 1e6, "read_noise": 0.0, "blur": 0.0, "illumination": 0.0,
    "photobleaching": 0.0, "debris": 0, "dtype": "uint16", "offset": 100.0, "top": 30000.0,
}


@pytest.mark.parametrize("family", FAMILIES)
def test_parameter_ranges_at_model_input(family):
    """Sizes, speeds and imaging stay in the documented ranges at a 256-px frame."""
    dtypes, steps = set(), []
    for seed in range(40):
        p = sample_params(family, np.random.default_rng(seed), (256, 256))
        lo, hi = p["radius"]
        if family == "bacteria":
            assert 4.0 <= lo <= hi <= 7.5  # half-width: rods 8-15 px wide
        else:
            assert 8.0 <= lo <= hi <= 40.0
        assert 0.0 <= p["step"] <= 8.0
        assert 0.0 <= p["touching"] < 0.9 and p["n_cells"] >= 1
        assert p["photons"] > 0 and p["blur"] >= 0 and 0.0 <= p["illumination"] < 1.0
        dtypes.add(p["dtype"])
        steps.append(p["step"])
    assert dtypes == {"uint8", "uint16"}
    assert min(steps) < 1.0 < max(steps)  # still and moving movies
    small = sample_params(family, np.random.default_rng(0), SHAPE)
    big = sample_params(family, np.random.default_rng(0), (256, 256))
    assert small["radius"][0] == pytest.approx(big["radius"][0] / 4)  # sizes scale with frame


@pytest.mark.parametrize("family", FAMILIES)
def test_movie_values_fill_a_realistic_range(family):
    for seed, dtype in ((0, "uint8"), (1, "uint16")):
        mv = make_look(family, seed, SHAPE, 3, dtype=dtype)
        assert mv.movie.dtype == np.dtype(dtype)
        top = np.iinfo(dtype).max
        assert mv.movie.max() <= top and np.ptp(mv.movie) > 0.02 * mv.params["top"]
        assert mv.labels.max() < 2**16


@pytest.mark.parametrize("polarity", [-1, 1])
def test_phase_polarity(polarity):
    """Dark bodies with a bright halo (-1) or the mirror image (+1), around background 1."""
    for seed in range(3):
        mv = make_look("phase", seed, SHAPE, 1, polarity=polarity, n_cells=4, **CLEAN)
        img, lab = mv.movie[0].astype(float), mv.labels[0]
        dist = ndimage.distance_transform_edt(lab == 0)
        bg = np.median(img[dist > 10])
        body = np.median(img[lab > 0])
        halo = img[(dist > 0) & (dist <= 2)].mean()
        assert np.sign(body - bg) == polarity, (seed, body, bg)
        assert np.sign(halo - bg) == -polarity, (seed, halo, bg)


def test_phase_polarity_is_random_per_movie():
    pols = {sample_params("phase", np.random.default_rng(s), SHAPE)["polarity"] for s in range(20)}
    assert pols == {-1, 1}


@pytest.mark.parametrize("family", FAMILIES)
def test_debris_is_not_labelled(family):
    """Debris changes the image but never the labels or lineage."""
    clean = make_look(family, 5, SHAPE, 3, debris=0)
    dirty = make_look(family, 5, SHAPE, 3, debris=40)
    np.testing.assert_array_equal(clean.labels, dirty.labels)
    assert clean.lineage == dirty.lineage
    changed = clean.movie != dirty.movie
    assert changed.any()
    # noise-free: debris shows up as blobs, off the labelled cells as well
    a = make_look(family, 5, SHAPE, 1, **{**CLEAN, "debris": 0}).movie[0].astype(float)
    b = make_look(family, 5, SHAPE, 1, **{**CLEAN, "debris": 40}).movie[0].astype(float)
    diff = np.abs(a - b) > 0.01 * CLEAN["top"]
    assert (diff & (clean.labels[0] == 0)).sum() > 5


@pytest.mark.parametrize("family", ["nuclei", "bacteria"])
def test_divisions_produce_lineage(family):
    rate = 0.5 if family == "nuclei" else 0.3
    mv = make_look(family, 2, SHAPE, 10, division_rate=rate, enter_leave=0.0)
    kids: dict[int, list[int]] = {}
    for tid, (start, _end, parent) in mv.lineage.items():
        if parent:
            kids.setdefault(parent, []).append(tid)
            assert mv.lineage[parent][1] == start - 1  # mother ends right before
            assert (mv.labels[start] == tid).any() and not (mv.labels[start] == parent).any()
    assert kids, "no division in 10 frames"
    assert all(1 <= len(k) <= 2 for k in kids.values())
    assert any(len(k) == 2 for k in kids.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_cells_enter_across_the_border(family):
    mv = make_look(family, 4, SHAPE, 10, enter_leave=3.0, division_rate=0.0, n_cells=2)
    newcomers = [t for t, (start, _e, parent) in mv.lineage.items() if start > 0 and not parent]
    assert newcomers
    border = np.zeros(SHAPE, bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    for tid in newcomers:
        start = mv.lineage[tid][0]
        assert (border & (mv.labels[start] == tid)).any()  # first seen at the edge


def test_eval_seeds_disjoint_from_training_and_each_other():
    test = {eval_seed(f, k, "test") for f in FAMILIES for k in (0, 999)}
    val = {eval_seed(f, k, "validation") for f in FAMILIES for k in (0, 999)}
    assert min(test) == TEST_SEED0 and min(val) == VALIDATION_SEED0
    assert max(test) < min(val) and max(val) < TRAIN_SEEDS[0]
    with pytest.raises(ValueError, match="index"):
        eval_seed("nuclei", 1000)
