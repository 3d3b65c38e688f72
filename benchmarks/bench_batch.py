"""Batch benchmark: movies per minute of ``segment_many`` with 1 and 2 local Dask workers.

Makes ``--movies`` synthetic movies (``--frames`` frames of ``--size`` px, two bright blobs, one
click each), then, in one run:

1. the movies one after another in this process (``segment_movie``, the model loaded once,
   all cores for torch): the baseline without Dask;
2. ``segment_many`` on a local cluster of 1 worker (torch threads = all cores) and of 2 workers
   (torch threads = cores / 2), each cluster started fresh (its start-up time is shown apart).

Prints a Markdown table: wall time and movies per minute per setting, the 2-worker / 1-worker
ratio, and the per-movie overhead: model loading (paid once per worker) and scheduling (wall time
x workers minus the time the workers spent in movies and model loading, per movie).

Usage:  python benchmarks/bench_batch.py [--movies 8] [--frames 20] [--size 128] [--model micro]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _models import cpu_name  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def make_movies(folder: Path, n: int, frames: int, size: int) -> Path:
    """``n`` uint16 TYX TIFFs with two blobs (one drifting), a clicks CSV each, a manifest."""
    yy, xx = np.mgrid[:size, :size]
    r = max(3, size // 12)
    for i in range(n):
        rng = np.random.default_rng(i)
        movie = rng.normal(300, 30, (frames, size, size))
        y0, x0 = size // 3, size // 4 + i % 5
        for k in range(frames):
            movie[k][(yy - y0) ** 2 + (xx - x0 - k % (size // 3)) ** 2 < r * r] += 2000
            movie[k][(yy - 2 * size // 3) ** 2 + (xx - 2 * size // 3) ** 2 < r * r] += 1500
        tifffile.imwrite(folder / f"m{i:03d}.tif", movie.astype(np.uint16), imagej=True,
                         metadata={"axes": "TYX"})
        (folder / f"m{i:03d}_clicks.csv").write_text(
            f"frame,y,x,obj_id\n0,{y0},{x0},1\n0,{2 * size // 3},{2 * size // 3},2\n"
        )
    manifest = folder / "manifest.csv"
    manifest.write_text("movie,prompts\nm*.tif,{stem}_clicks.csv\n")
    return manifest


def sequential(manifest: Path, model_name: str) -> tuple[float, float]:
    """(seconds for all movies, seconds to load the model) in this process."""
    from napari_sam2 import load_model, segment_movie
    from napari_sam2.batch import read_manifest

    t0 = time.perf_counter()
    model = load_model(model_name, device="cpu", progress=None)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for job in read_manifest(manifest):
        segment_movie(job.movie, job.prompts, model=model)
    return time.perf_counter() - t0, load_s


def on_cluster(manifest: Path, out: Path, workers: int, model_name: str) -> dict[str, float]:
    """Start a local cluster of ``workers`` processes, run the batch on it, close it."""
    from napari_sam2 import segment_many
    from napari_sam2.batch.cluster import cpu_cores, local_client

    t0 = time.perf_counter()
    client, cluster = local_client(workers, 1, dashboard_address=":0")
    start_s = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        results = segment_many(manifest, out_dir=out, client=client, model=model_name,
                               device="cpu", torch_threads=max(1, cpu_cores() // workers),
                               force=True, progress=None)
        wall = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    failed = [r for r in results if r.status != "done"]
    if failed:
        raise RuntimeError(f"{len(failed)} movie(s) failed: {failed[0].error}")
    n = len(results)
    movie_s = sum(r.seconds for r in results)
    loads = [r.model_seconds for r in results if r.model_seconds]
    return {
        "start": start_s,
        "wall": wall,
        "per_min": 60 * n / wall,
        "movie": movie_s / n,
        "load": sum(loads) / max(len(loads), 1),
        "loads": len(loads),
        "sched": max(0.0, wall * workers - movie_s - sum(loads)) / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--movies", type=int, default=8)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--model", default="micro")
    args = ap.parse_args()
    from napari_sam2.batch.cluster import cpu_cores

    cores = cpu_cores()
    print(f"CPU: {cpu_name()}, {cores} cores, torch {torch.__version__}, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at start")
    print(f"{args.movies} movies of {args.frames} frames, {args.size} x {args.size} px, "
          f"2 objects each, model {args.model}\n")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = make_movies(root, args.movies, args.frames, args.size)
        torch.set_num_threads(cores)
        seq_s, seq_load = sequential(manifest, args.model)
        rows = {w: on_cluster(manifest, root / f"out{w}", w, args.model) for w in (1, 2)}
    print("| setting | cluster start (s) | batch wall (s) | movies/min | s per movie on worker "
          "| model load (s, loads) | other overhead: scheduling, imports (s per movie) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| sequential segment_movie, 1 process, {cores} threads | - | {seq_s:.1f} | "
          f"{60 * args.movies / seq_s:.1f} | {seq_s / args.movies:.2f} | {seq_load:.1f} (1) | - |")
    for w, r in rows.items():
        print(f"| segment_many, {w} worker(s) x {max(1, cores // w)} torch threads | "
              f"{r['start']:.1f} | {r['wall']:.1f} | {r['per_min']:.1f} | {r['movie']:.2f} | "
              f"{r['load']:.1f} ({r['loads']}) | {r['sched']:.2f} |")
    print(f"\n2 workers / 1 worker: {rows[2]['per_min'] / rows[1]['per_min']:.2f}x movies per "
          f"minute; load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
