"""Unit tests of ``benchmarks/eval_window.py`` (no model, small movies)."""

from __future__ import annotations

import numpy as np
import pytest
from bench_modules import BENCHMARKS, import_benchmark

SCRIPT = BENCHMARKS / "eval_window.py"


@pytest.fixture(scope="module")
def ew():
    return import_benchmark("eval_window")


def test_rule_switches_the_noise_case_off_and_back(ew):
    import napari_sam2.video._intensity as intensity

    keep = intensity.CORE_SIGMAS
    with ew.rule("widths"):
        assert intensity.CORE_SIGMAS < 0
    assert intensity.CORE_SIGMAS == keep
    with ew.rule("noise"):
        assert intensity.CORE_SIGMAS == keep


def test_measured_snr_of_disks_on_noise(ew):
    rng = np.random.default_rng(0)
    labels = np.zeros((2, 128, 128), np.uint16)
    labels[:, 20:40, 20:40] = 1
    movie = 1000.0 + 160.0 * (labels > 0) + rng.normal(0.0, 20.0, labels.shape)
    assert ew.measured_snr(movie.astype(np.uint16), labels) == pytest.approx(8.0, rel=0.06)


def test_sparse_movie_reaches_the_requested_snr(ew):
    mv = ew.sparse_movie("phase", 0, {"polarity": -1}, 8.0, size=256, frames=2)
    assert ew.measured_snr(mv.movie, mv.labels) == pytest.approx(8.0, rel=0.05)
    assert 0 < np.mean(mv.labels > 0) < 0.02  # 5 small cells
    lo, hi = ew.window(mv.movie)
    assert ew.inside_share(mv.movie, mv.labels, (lo, hi)) > 0.8
