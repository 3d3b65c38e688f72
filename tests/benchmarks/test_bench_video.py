"""``benchmarks/bench_video.py`` prints our speed beside the IoU of our masks against Meta's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reference import import_sam2

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.parity


def test_speed_table_has_ours_vs_meta_iou():
    import_sam2()  # the comparison needs the reference package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    out = subprocess.run(
        [
            sys.executable, str(ROOT / "benchmarks" / "bench_video.py"), "--frames", "3",
            "--size", "128", "--config", "test_tiny_256", "--threads", "1", "--skip-rss",
        ],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    ).stdout  # fmt: skip
    assert out.startswith("CPU: ")
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if "ours vs Meta IoU" in line)
    cols = [c.strip() for c in lines[header].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[header + 2 :]]
    rows = [r for r in rows if len(r) == len(cols)]
    assert [r[0] for r in rows] == ["1", "3"]  # objects
    for r in rows:
        row = dict(zip(cols, r))
        assert float(row["Meta fp32 frames/s"]) > 0 and float(row["ours fp32 frames/s"]) > 0
        # same weights and frames: our masks are Meta's
        assert float(row["ours vs Meta IoU"]) >= 0.999, row
    assert "Re-propagation after a correction click" in out
