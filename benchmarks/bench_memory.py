"""Peak memory of a whole-movie segmentation: does it grow with the movie's length?

Segments a synthetic 256 x 256 px uint16 movie (3 drifting cells, one click each on frame 0)
of 100 and of 1,000 frames, forward, with the bundled ``micro`` model and 1 memory frame,
through the command line (``napari-sam2 segment``) and through ``segment_movie`` with
``labels_path`` (the label volume streamed into a memory-mapped label TIFF). Each run is a
fresh process; its peak resident memory (``ru_maxrss``) is read with ``os.wait4``. Prints a
Markdown table and the growth from 100 to 1,000 frames (the target: within 15 %).

Usage:  python benchmarks/bench_memory.py [--frames 100 1000] [--model micro] [--keep DIR]
About 2,300 frames in all: a few minutes on an idle CPU (27 minutes on a shared, busy 2-core
Xeon). Measured there (Intel Xeon, AVX-512 + AMX, 2 cores, torch 2.13 CPU): CLI 547 MB at 100
frames, 561 MB at 1,000 (+2.5 %); segment_movie 535 MB and 549 MB (+2.6 %).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _models import cpu_name  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

SIZE = 256
CELLS = ((64, 70), (128, 180), (190, 100))  # (y, x) on frame 0

SEGMENT_MOVIE = r"""
import sys
from napari_sam2 import segment_movie
from napari_sam2.video.memory_bank import MemorySettings
movie, clicks, out, model = sys.argv[1:5]
labels = segment_movie(movie, clicks, model=model, direction="forward", labels_path=out,
                       settings=MemorySettings(num_memory_frames=1))
assert labels.shape[0] > 0
"""


def write_movie(path: Path, n_frames: int) -> Path:
    """(T, 256, 256) uint16 ImageJ TIFF: three bright discs drifting slowly on noise, and a
    ``clicks.csv`` beside it (one click per disc on frame 0, objects 1-3)."""
    import tifffile

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    tifffile.imwrite(
        path, shape=(n_frames, SIZE, SIZE), dtype=np.uint16, imagej=True,
        metadata={"axes": "TYX"},
    )
    movie = tifffile.memmap(path, mode="r+")
    for t in range(n_frames):
        frame = rng.normal(300, 30, (SIZE, SIZE))
        for k, (y, x) in enumerate(CELLS):
            cy = y + 6 * np.sin(t / 40 + k)
            cx = x + 6 * np.cos(t / 50 + k)
            frame[(yy - cy) ** 2 + (xx - cx) ** 2 < 14**2] += 1500 + 300 * k
        movie[t] = np.clip(frame, 0, 65535)
    movie.flush()
    del movie
    rows = [f"0,{y},{x},{i},1" for i, (y, x) in enumerate(CELLS, start=1)]
    clicks = path.with_name("clicks.csv")
    clicks.write_text("frame,y,x,obj_id,positive\n" + "\n".join(rows) + "\n")
    return clicks


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` in a fresh process: (its peak RSS in MB, wall seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{err[-2000:]}")
    scale = 1024 if sys.platform != "darwin" else 1024 * 1024  # ru_maxrss: kB (bytes on macOS)
    return usage.ru_maxrss / scale, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--model", default="micro", help="model name or checkpoint")
    ap.add_argument("--keep", type=Path, help="write the movies and labels here (else a temp dir)")
    args = ap.parse_args()

    import torch

    print(
        f"CPU: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"Python {platform.python_version()}; model {args.model}, 1 memory frame, 3 objects, "
        f"{SIZE} x {SIZE} px uint16\n"
    )
    print("| path | frames | peak RSS (MB) | wall (s) |")
    print("|---|---:|---:|---:|")
    results: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for n in args.frames:
            movie = folder / f"movie_{n}.tif"
            clicks = write_movie(movie, n)
            cli = [
                sys.executable, "-m", "napari_sam2.cli", "segment", str(movie),
                "--prompts", str(clicks), "--model", args.model, "--num-memory-frames", "1",
                "--direction", "forward", "--out", str(folder / f"cli_{n}.tif"), "-q",
            ]
            api = [
                sys.executable, "-c", SEGMENT_MOVIE, str(movie), str(clicks),
                str(folder / f"api_{n}.tif"), args.model,
            ]
            for name, cmd in (("CLI `segment`", cli), ("`segment_movie(labels_path=)`", api)):
                rss, wall = peak_rss_mb(cmd)
                results[(name, n)] = rss
                print(f"| {name} | {n:,} | {rss:.0f} | {wall:.1f} |", flush=True)
    lo, hi = min(args.frames), max(args.frames)
    if lo != hi:
        print()
        for name in dict.fromkeys(k for k, _ in results):
            growth = results[(name, hi)] / results[(name, lo)] - 1
            verdict = "within" if abs(growth) <= 0.15 else "NOT within"
            print(f"{name}: {hi:,} frames {growth * 100:+.1f}% vs {lo:,} ({verdict} 15%)")


if __name__ == "__main__":
    main()
