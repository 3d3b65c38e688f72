"""The automatic intensity window on sparse cells: the percentile window lands in the background
when cells cover under 0.5 % of a frame, and is widened to the cells."""

from __future__ import annotations

import numpy as np

from napari_sam2.video._intensity import WINDOW_PERCENTILES, block_extremes, widen_for_tails
from napari_sam2.video.frames import FrameSource


def _frames(n_cells: int, size: int = 512, radius: float = 8.0, seed: int = 0,
            bright: bool = True) -> np.ndarray:
    """(4, size, size) uint16: noisy background 1000 +- 20 and n_cells disks 3000 (or 200)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for _ in range(4):
        frame = rng.normal(1000.0, 20.0, (size, size))
        for y, x in rng.uniform(radius, size - radius, (n_cells, 2)):
            frame[(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = 3000.0 if bright else 200.0
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
