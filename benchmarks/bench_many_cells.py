"""Many objects at once: seeding and propagating hundreds of cells.

A synthetic (T, size, size) movie with ``--objects`` drifting bright disks on a jittered grid is
seeded from its frame-0 labels (``VideoSession.add_labels``, one batched call) and propagated
(plain, or with ``--divisions`` through ``propagate_with_divisions``). Prints a Markdown table:
seeding time, time per propagated frame (first frame, median, mean), peak RSS of the process
(``resource.getrusage``), the largest memory-bank size of all objects together, the frame
cache, the label volume, the automatic object chunk size, and peak CUDA memory on a GPU.

Usage:  python benchmarks/bench_many_cells.py [--frames 50] [--objects 200] [--size 512]
            [--model micro] [--fallback test_tiny_256] [--chunk N] [--divisions] [--threads N]
            [--workers N] [--memory-frames N] [--compile] [--device cuda] [--precision bf16]
The bundled ``micro`` model may not exist yet: then ``--fallback`` is used (with a warning);
``--fallback random:micro`` (random weights, the bundled model's architecture) gives
representative timings.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

import numpy as np
import torch
from _models import cpu_name, load  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def grid_movie(frames: int, objects: int, size: int, seed: int = 0):
    """(T, S, S) uint16 movie of ``objects`` disks and the (S, S) uint16 frame-0 labels."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(objects)))
    pitch = size / side
    r = max(2.0, 0.3 * pitch)
    k = np.arange(objects)
    cy = (k // side + 0.5) * pitch + rng.uniform(-0.1, 0.1, objects) * pitch
    cx = (k % side + 0.5) * pitch + rng.uniform(-0.1, 0.1, objects) * pitch
    vy, vx = rng.normal(0, 0.3, objects), rng.normal(0, 0.3, objects)
    yy, xx = np.mgrid[:size, :size]
    movie = np.empty((frames, size, size), np.uint16)
    labels0 = None
    for t in range(frames):
        lab = np.zeros((size, size), np.uint16)
        for i in range(objects):
            y, x = cy[i] + vy[i] * t, cx[i] + vx[i] * t
            y0, y1 = int(max(0, y - r - 1)), int(min(size, y + r + 2))
            x0, x1 = int(max(0, x - r - 1)), int(min(size, x + r + 2))
            sub = (yy[y0:y1, x0:x1] - y) ** 2 + (xx[y0:y1, x0:x1] - x) ** 2 <= r * r
            lab[y0:y1, x0:x1][sub] = i + 1
        if labels0 is None:
            labels0 = lab
        img = rng.normal(300, 30, (size, size)) + 1500 * (lab > 0)
        movie[t] = np.clip(img, 0, 65535).astype(np.uint16)
    return movie, labels0


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024  # bytes vs KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--objects", type=int, default=200)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--model", default="micro")
    ap.add_argument("--fallback", default="test_tiny_256")
    ap.add_argument("--chunk", type=int, default=None, help="object_chunk_size (default: auto)")
    ap.add_argument("--divisions", action="store_true", help="with division tracking")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--workers", type=int, default=None,
                    help="VideoSession workers (default: automatic)")
    ap.add_argument("--memory-frames", type=int, default=None,
                    help="MemorySettings.num_memory_frames (default: 6, Meta's)")
    ap.add_argument("--device", default=None, help="move the model here (default: as loaded)")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the model (compilation falls in seeding and the first "
                         "frames; compare the median)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from napari_sam2 import MemorySettings, VideoSession
    from napari_sam2.video.division_propagation import propagate_with_divisions

    model, used = load(args.model, args.fallback)
    if args.device is not None:
        model = model.to(args.device)
    if args.compile:
        model.compile_for_inference()

    movie, labels0 = grid_movie(args.frames, args.objects, args.size)
    rss_movie = peak_rss_mb()
    settings = MemorySettings()
    if args.memory_frames is not None:
        settings = settings.replace(num_memory_frames=args.memory_frames)
    session = VideoSession(model, movie, object_chunk_size=args.chunk, workers=args.workers,
                           settings=settings, precision=args.precision)
    t0 = time.perf_counter()
    ids = session.add_labels(0, labels0)
    t_seed = time.perf_counter() - t0
    gen = propagate_with_divisions(session) if args.divisions else session.propagate()
    times, bank = [], 0
    t0 = time.perf_counter()
    for _ in gen:
        t1 = time.perf_counter()
        times.append(t1 - t0)
        bank = max(bank, sum(o.bank.nbytes() for o in session._objects.values()))
        t0 = time.perf_counter()  # exclude the bank accounting above
    times = np.asarray(times)
    feats = session.runner.cached_nbytes()
    mb = 1 << 20
    rows = [
        ("model", f"`{used}`" + (" (fallback)" if used != args.model else "")),
        ("device", f"{model.device} ({args.threads} threads, {session.workers} workers, "
                   f"{platform.machine()}; {cpu_name()})"),
        ("movie", f"{args.frames} x {args.size} x {args.size} uint16, {len(ids)} objects"),
        ("object chunk size", str(args.chunk or session.runner.auto_chunk()) + ("" if args.chunk
                                                                         else " (auto)")),
        ("division tracking", "on" if args.divisions else "off"),
        ("memory frames", f"{settings.num_memory_frames} (+ prompted frames, pointers)"),
        ("torch.compile", "on" if args.compile else "off"),
        ("precision", args.precision),
        ("seeding (add_labels)", f"{t_seed:.2f} s"),
        ("first frame", f"{times[0]:.3f} s"),
        ("per frame, median", f"{np.median(times):.3f} s"),
        ("per frame, mean", f"{times.mean():.3f} s ({1 / times.mean():.2f} frames/s)"),
        ("per frame and object, mean", f"{times.mean() / len(ids) * 1e3:.2f} ms"),
        ("image encodings", f"{session.stats['image_encodings']} for {len(times)} frames"),
        ("memory banks, peak (all objects)", f"{bank / mb:.1f} MiB"),
        ("frame-encoding cache", f"{feats / mb:.1f} MiB"),
        ("label volume", f"{session.labels().nbytes / mb:.1f} MiB"),
        ("peak RSS (process)", f"{peak_rss_mb():.0f} MiB (after making the movie: "
                               f"{rss_movie:.0f} MiB)"),
    ]
    if model.device.type == "cuda":
        rows.append(("peak CUDA memory", f"{torch.cuda.max_memory_allocated() / mb:.0f} MiB"))
    if args.divisions:
        rows.append(("divisions found", str(len(session.lineage) // 2)))
    print("| quantity | value |")
    print("|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
