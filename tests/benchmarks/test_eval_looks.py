"""Unit and smoke tests of ``benchmarks/eval_looks.py`` (tiny random model, no real data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from bench_modules import BENCHMARKS, ROOT, import_benchmark

SCRIPT = BENCHMARKS / "eval_looks.py"


@pytest.fixture(scope="module")
def el():
    return import_benchmark("eval_looks")


def test_object_j_averages_over_frames_where_the_object_exists(el):
    truth = np.zeros((3, 10, 10), np.uint16)
    truth[0, 2:6, 2:6] = 1  # 16 px
    truth[1, 2:6, 2:6] = 1
    pred = np.zeros_like(truth)
    pred[0, 2:6, 2:6] = 7  # exact
    pred[1, 2:6, 2:4] = 7  # half
    pred[2, 0:3, 0:3] = 7  # object gone from the truth: frame not scored
    assert el.object_j(pred, truth, [(7, 1)]) == [pytest.approx(0.75)]
    assert el.object_j(pred, truth, [(-1, 1)]) == [0.0]  # baseline missed the click


def test_baseline_inverts_for_dark_objects(el):
    movie = np.full((2, 40, 40), 200, np.uint16)
    movie[:, 10:20, 10:20] = 50  # a dark cell
    points = {1: (15, 15)}
    assert el.dark_objects(movie, points)
    assert not el.dark_objects(300 - movie, points)
    pred, pairs, inverted = el.baseline(movie, points)
    assert inverted and pairs[0][0] > 0
    assert (pred[0] == pairs[0][0])[12:18, 12:18].all()


def test_quick_run_prints_a_row_per_family(tmp_path):
    out = tmp_path / "rows.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--checkpoint", "test_tiny_256", "--quick", "--no-real",
         "--families", "nuclei", "phase", "--holdout", "phase", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| nuclei |" in proc.stdout and "| phase (held out) |" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["dataset"] for r in rows] == ["nuclei", "phase (held out)"]
    for r in rows:
        assert r["objects"] > 0 and 0.0 <= r["J"] <= 1.0 and 0.0 <= r["baseline_J"] <= 1.0
