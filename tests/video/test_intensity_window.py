"""The automatic intensity window on sparse cells: the percentile window lands in the background
when cells cover under 0.5 % of a frame, and is widened to the cells."""

from __future__ import annotations

import numpy as np
import pytest

import napari_sam2.video._intensity as intensity
from napari_sam2.video._intensity import (
    WINDOW_PERCENTILES,
    adjacent_differences,
    block_extremes,
    flat_core,
    noise_sigma,
    widen_for_tails,
)
from napari_sam2.video.frames import FrameSource


def _frames(n_cells: int, size: int = 512, radius: float = 8.0, seed: int = 0,
            bright: bool = True, snr: float | None = None, ramp: float = 0.0) -> np.ndarray:
    """(4, size, size) uint16: noisy background 1000 +- 20 and n_cells disks 3000 (or 200);
    with ``snr``: disks 1000 +- snr x 20 (cell minus background over the noise sigma), noisy
    like the background; ``ramp``: the background rises by this much from left to right."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    sign = 1.0 if bright else -1.0
    out = []
    for _ in range(4):
        frame = rng.normal(1000.0, 20.0, (size, size)) + ramp * (xx / size - 0.5)
        for y, x in rng.uniform(radius, size - radius, (n_cells, 2)):
            disk = (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
            if snr is None:
                frame[disk] = 3000.0 if bright else 200.0
            else:
                frame[disk] += sign * snr * 20.0
        out.append(frame)
    return np.clip(np.stack(out), 0, 65535).astype(np.uint16)


def _window(movie: np.ndarray) -> tuple[float, float]:
    return FrameSource(movie, image_size=64, prefetch=False).contrast_limits


def test_sparse_bright_cells_are_inside_the_window_not_saturated():
    movie = _frames(n_cells=6)  # 6 disks of ~200 px on 262144 px: 0.5 % of the frame
    lo, hi = _window(movie)
    plo, phi = np.percentile(movie, WINDOW_PERCENTILES)
    assert phi < 1200  # the plain percentile window is the background's noise
    assert 900 <= lo <= 1000 and hi >= 2900  # the cells now fit the window
    src = FrameSource(movie, image_size=512, prefetch=False)
    x = src.model_input(0)[0].numpy()  # cells bright, background dark, noise small
    cell = movie[0] > 2000
    assert x[cell].mean() - x[~cell].mean() > 5 * x[~cell].std()


def test_sparse_dark_cells_widen_the_low_end():
    movie = _frames(n_cells=6, bright=False)
    lo, hi = _window(movie)
    assert lo <= 300 and 1000 <= hi <= 1100


def test_dense_cells_keep_the_percentile_window():
    movie = _frames(n_cells=120)  # ~9 % of the frame
    lo, hi = _window(movie)
    plo, phi = np.percentile(movie[:, ::3, ::3], WINDOW_PERCENTILES)
    assert abs(lo - plo) < 5 and abs(hi - phi) < 5


def test_hot_pixels_do_not_widen_the_window():
    movie = _frames(n_cells=0)
    rng = np.random.default_rng(1)
    for t in range(len(movie)):  # 40 isolated saturated pixels per frame
        ys, xs = rng.integers(0, 512, (2, 40))
        movie[t, ys, xs] = 65535
    lo, hi = _window(movie)
    assert hi < 1200


def test_block_extremes_find_a_small_cell_between_samples():
    frame = np.full((64, 64), 10.0, np.float32)
    frame[5:7, 5:7] = 100.0  # a 2 x 2 px object that a stride-8 sample would miss
    frame[40, 40] = 1000.0  # one hot pixel
    dark, bright = block_extremes(frame, 8, 2, np.float32)
    assert sorted(bright.tolist()) == [10.0, 100.0]
    assert dark.tolist() == [10.0, 10.0]


def test_widen_for_tails_leaves_close_tails_alone():
    dark = np.array([0.0, 5.0])
    bright = np.array([60.0, 70.0])
    assert widen_for_tails(10.0, 30.0, dark, bright, 1) == (10.0, 30.0)
    assert widen_for_tails(10.0, 30.0, dark, np.array([200.0, 400.0]), 1) == (10.0, 400.0)
    assert widen_for_tails(10.0, 30.0, dark, np.array([200.0, 400.0]), 2) == (10.0, 200.0)
    assert widen_for_tails(100.0, 110.0, np.array([0.0, 50.0]), bright, 2) == (50.0, 110.0)


@pytest.mark.parametrize("bright", [True, False], ids=["bright", "dark"])
@pytest.mark.parametrize("snr", [5.0, 8.0, 12.0])
def test_sparse_cells_at_moderate_snr_are_inside_the_window(monkeypatch, bright, snr):
    movie = _frames(n_cells=5, snr=snr, bright=bright)  # 5 disks: 0.38 % of the frame
    level = 1000 + (1 if bright else -1) * snr * 20
    lo, hi = _window(movie)
    assert lo < level < hi  # the cells' median is inside the window, not clipped
    assert hi - lo < (snr + 8) * 20  # widened to the cells, not beyond
    with monkeypatch.context() as m:  # the width-only rule (no noise-only core) misses them
        m.setattr(intensity, "CORE_SIGMAS", -1.0)
        old_lo, old_hi = _window(movie)
    assert not old_lo < level < old_hi
    assert old_hi - old_lo < 6 * 20  # the window is the background's noise


def test_dense_cells_keep_the_window_despite_a_few_brighter_cells(monkeypatch):
    movie = _frames(n_cells=150, snr=8.0)  # ~11 % of the frame at SNR 8
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:512, 0:512]
    for t in range(len(movie)):  # 3 cells twice as bright (mitoses): > 3 sigma past the window
        for y, x in rng.uniform(10, 502, (3, 2)):
            movie[t][(yy - y) ** 2 + (xx - x) ** 2 <= 64] += 160
    lo, hi = _window(movie)
    plo, phi = np.percentile(movie[:, ::3, ::3], WINDOW_PERCENTILES)
    assert abs(lo - plo) < 5 and abs(hi - phi) < 5
    with monkeypatch.context() as m:  # were the core taken for noise, they would widen it
        m.setattr(intensity, "CORE_SIGMAS", 100.0)
        assert _window(movie)[1] > phi + 50


def test_noise_only_movie_keeps_a_sane_window():
    movie = _frames(n_cells=0)
    lo, hi = _window(movie)
    plo, phi = np.percentile(movie[:, ::3, ::3], WINDOW_PERCENTILES)
    assert abs(lo - plo) < 5 and abs(hi - phi) < 5
    assert 4 * 20 < hi - lo < 6 * 20  # +-2.6 sigma of the noise, no blow-up


def test_noise_only_float_movie_with_nan_keeps_a_sane_window():
    movie = _frames(n_cells=0).astype(np.float32)
    movie[:, 100:110, 200:300] = np.nan
    lo, hi = _window(movie)
    assert 900 < lo < 960 and 1040 < hi < 1100


def test_noise_sigma_ignores_smooth_illumination_and_cell_edges():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    frame = 500.0 + 2.0 * xx + rng.normal(0.0, 15.0, (256, 256))  # a 500-ADU ramp
    frame[(yy - 128) ** 2 + (xx - 128) ** 2 < 40**2] += 3000.0  # one large cell
    sigma = noise_sigma(adjacent_differences(frame, 1, np.float32))
    assert 14.0 < sigma < 16.0
    assert noise_sigma(adjacent_differences(np.full((8, 8), 7, np.uint8), 1, np.float32)) == 0.0
    assert adjacent_differences(np.zeros((0, 0)), 3, np.float32).size == 0


def test_widen_for_tails_uses_noise_sigmas_only_when_the_core_is_noise():
    dark, bright = np.array([-5.0, 5.0]), np.array([60.0, 70.0])
    # window (10, 30) of noise sigma 4 (5 sigmas wide): tails 30-40 above (7.5-10 sigmas) and
    # 15 below (3.75 sigmas) count as cells; 5 below (1.25 sigmas) does not
    assert widen_for_tails(10.0, 30.0, dark, bright, 1, noise=4.0, core=18.0) == (-5.0, 70.0)
    assert widen_for_tails(10.0, 30.0, dark, bright, 2, noise=4.0) == (10.0, 60.0)
    # a core of 40 sigmas holds structure: the 3-width rule decides
    assert widen_for_tails(10.0, 30.0, dark, bright, 1, noise=4.0, core=160.0) == (10.0, 30.0)
    # noise unknown (0): the 3-width rule
    assert widen_for_tails(10.0, 30.0, dark, bright, 1, noise=0.0, core=18.0) == (10.0, 30.0)
    # tails under TAIL_SIGMAS past the window stay outside it
    assert widen_for_tails(10.0, 30.0, np.array([1.0]), np.array([40.0]), 1, noise=4.0,
                           core=18.0) == (10.0, 30.0)


def test_window_estimate_leaves_a_float_movie_untouched():
    movie = _frames(n_cells=5, snr=8.0).astype(np.float32)
    keep = movie.copy()
    lo, hi = _window(movie)
    assert lo < 1160 < hi
    np.testing.assert_array_equal(movie, keep)


@pytest.mark.parametrize("bright", [True, False], ids=["bright", "dark"])
def test_sparse_cells_on_an_uneven_background_are_inside_the_window(monkeypatch, bright):
    # the background rises by 400 (20 noise sigmas) from left to right, so the percentile
    # window is 26 sigmas wide; 5 cells at SNR 8 on the bright (dark) side stick out of it
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:512, 0:512]
    background = 1000.0 + 400.0 * (xx / 512 - 0.5)
    cells = np.zeros((512, 512), bool)
    for y, x in zip(rng.uniform(20, 492, 5), rng.uniform(440, 500, 5), strict=True):
        cells |= (yy - y) ** 2 + (xx - (x if bright else 512 - x)) ** 2 <= 64
    signal = background + (1 if bright else -1) * 8 * 20.0 * cells
    movie = np.stack([signal + rng.normal(0.0, 20.0, signal.shape) for _ in range(4)])
    movie = movie.astype(np.uint16)

    def inside(window: tuple[float, float]) -> float:
        v = movie[:, cells]
        return float(np.mean((v > window[0]) & (v < window[1])))

    assert inside(_window(movie)) > 0.7  # the window ends at the cells' 0.01 % tail
    with monkeypatch.context() as m:  # the width-only rule leaves them clipped
        m.setattr(intensity, "CORE_SIGMAS", -1.0)
        assert inside(_window(movie)) < 0.2


def test_dense_cells_on_an_uneven_background_keep_the_window():
    movie = _frames(n_cells=150, snr=8.0, ramp=400.0)
    lo, hi = _window(movie)
    plo, phi = np.percentile(movie[:, ::3, ::3], WINDOW_PERCENTILES)
    assert abs(lo - plo) < 5 and abs(hi - phi) < 5


def test_flat_core_ignores_a_smooth_background_but_not_cells():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    noise = rng.normal(0.0, 10.0, (256, 256))
    ramp = (1.0 * xx + 0.5 * yy + noise).astype(np.float32)  # 380 across: 38 noise sigmas
    assert 40.0 < flat_core(ramp) < 60.0  # about 4.7 sigmas: the noise alone
    dots = noise.astype(np.float32)
    dots[(yy % 24 < 10) & (xx % 24 < 10)] += 200.0  # dense 10-px cells, 17 % of the frame
    assert flat_core(dots) > 150.0
    assert np.isnan(flat_core(np.full((4, 4), np.nan, np.float32)))
