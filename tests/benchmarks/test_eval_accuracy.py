"""Smoke and unit tests of ``benchmarks/eval_accuracy.py`` (tiny random model, no real data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from bench_modules import BENCHMARKS, ROOT, import_benchmark

SCRIPT = BENCHMARKS / "eval_accuracy.py"


@pytest.fixture(scope="module")
def ea():
    return import_benchmark("eval_accuracy")


def _disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_quick_run_prints_table(tmp_path):
    out = tmp_path / "rows.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", "test_tiny_256", "--quick", "--no-real",
         "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0] == "synthetic nuclei":
            rows[cells[1]] = [float(c) for c in cells[2:]]
    assert set(rows) == {"1 click", "3 clicks", "box", "baseline"}
    for j, f, jf, fps, n in rows.values():
        assert 0.0 <= j <= 1.0 and 0.0 <= f <= 1.0 and 0.0 <= jf <= 1.0
        assert jf == pytest.approx((j + f) / 2, abs=2e-3)
        assert fps > 0 and n > 0
    data = json.loads(out.read_text())
    assert [r["method"] for r in data["rows"]] == ["1 click", "3 clicks", "box", "baseline"]
    assert "skipped" in data["real_data"]
    # the baseline finds the bright synthetic nuclei: far better than chance
    assert rows["baseline"][0] > 0.3


def test_validation_seeds_and_memory_frames(tmp_path):
    out = tmp_path / "rows.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", "test_tiny_256", "--quick", "--no-real",
         "--methods", "1 click", "--seed0", "20000", "--memory-frames", "0",
         "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "synthetic movie 20000" in proc.stderr and "synthetic movie 10000" not in proc.stderr
    assert "0 memory frames" in proc.stdout and "validation nuclei movies" in proc.stdout
    data = json.loads(out.read_text())
    assert data["args"]["seed0"] == 20000 and data["args"]["memory_frames"] == 0
    assert [r["method"] for r in data["rows"]] == ["1 click"]


def test_scores_perfect_and_shifted(ea):
    truth = np.zeros((2, 64, 64), np.uint16)
    truth[0][_disk((64, 64), 20, 20, 8)] = 1
    truth[1][_disk((64, 64), 22, 22, 8)] = 1
    truth[1][_disk((64, 64), 45, 45, 6)] = 3  # an object nobody tracks
    j, f = ea.score_objects(truth, truth, [(1, 1)])
    assert j == [1.0, 1.0] and f == [1.0, 1.0]
    shifted = np.roll(truth, 1, axis=2)
    j, f = ea.score_objects(shifted, truth, [(1, 1)], tol=2)
    assert all(0.8 < v < 1.0 for v in j) and f == [1.0, 1.0]  # within the tolerance
    j, f = ea.score_objects(np.roll(truth, 6, axis=2), truth, [(1, 1)], tol=2)
    assert all(v < 0.5 for v in f)
    j, f = ea.score_objects(truth, truth, [(-1, 1)])  # no prediction at all
    assert j == [0.0, 0.0] and f == [0.0, 0.0]


def test_corrective_click(ea):
    truth = _disk((64, 64), 30, 30, 10)
    assert ea.corrective_click(truth, truth) is None
    y, x, lab = ea.corrective_click(np.zeros_like(truth), truth)
    assert lab == 1 and truth[y, x]
    too_big = _disk((64, 64), 30, 30, 16)
    y, x, lab = ea.corrective_click(too_big, truth)
    assert lab == 0 and too_big[y, x] and not truth[y, x]


def test_link_reference_follows_changing_ids(ea):
    ref = np.zeros((3, 64, 64), np.uint16)
    ref[0][_disk((64, 64), 20, 20, 8)] = 5
    ref[0][_disk((64, 64), 45, 45, 6)] = 2
    ref[1][_disk((64, 64), 21, 21, 8)] = 9  # same nucleus, new id
    ref[1][_disk((64, 64), 46, 46, 6)] = 1
    ref[2][_disk((64, 64), 16, 16, 5)] = 4  # division: both daughters overlap the mother
    ref[2][_disk((64, 64), 27, 27, 5)] = 7
    ref[2][_disk((64, 64), 55, 10, 5)] = 3  # a newcomer: no object
    out = ea.link_reference(ref, [5])
    assert set(np.unique(out[1])) == {0, 5} and (out[1] == 5).sum() == (ref[1] == 9).sum()
    assert (out[2] == 5).sum() == ((ref[2] == 4) | (ref[2] == 7)).sum()
    assert not out[2][ref[2] == 3].any()


def test_cpu_name_reports_the_units_that_set_the_speed(tmp_path):
    """Benchmark tables name the CPU and whether it has AVX-512 / AMX (2x speed differences)."""
    cpu_name = import_benchmark("_models").cpu_name
    xeon = tmp_path / "xeon"
    xeon.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n"
                    "flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
                    "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n")
    epyc = tmp_path / "epyc"
    epyc.write_text("model name\t: AMD EPYC 7B13 64-Core Processor\nflags\t\t: fpu sse avx avx2\n")
    assert cpu_name(str(xeon)) == "Intel(R) Xeon(R) Processor (AVX-512, AMX)"
    assert cpu_name(str(epyc)) == "AMD EPYC 7B13 64-Core Processor (AVX2)"
    assert cpu_name(str(tmp_path / "missing"))  # falls back to Python's description
