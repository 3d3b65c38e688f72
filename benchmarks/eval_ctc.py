"""Cell Tracking Challenge scores (SEG, DET, TRA) on synthetic movies of dividing nuclei.

Held-out synthetic movies (``make_movie(kind="nuclei")`` with many touching, dividing cells and
seeds the trainer never uses) are scored against their exact ground truth with py-ctcmetrics,
for:

1. **SAM 2 + divisions** – our tracker seeded from the frame-0 ground-truth labels
   (``VideoSession.add_labels``), propagated with division and lost/found tracking
   (``napari_sam2.video.division_propagation.propagate_with_divisions``);
2. **SAM 2, no divisions** – the same seeds, plain ``propagate`` (ablation);
3. **Baseline** – Otsu threshold + distance-transform watershed per frame, linked by mask
   overlap (a component overlapping a previous object most continues it; two or more
   continuing the same object are a division; unmatched ones start new tracks); the package's
   ``napari_sam2.train.baseline.run_baseline``, polarity detected per movie;
4. **Ideal masks** – a check of the division post-processor alone: the ground truth with
   every daughter relabelled to its root ancestor's id (what a tracker that never changes ids
   produces at best), with and without ``track_divisions``.

Prints a Markdown table (means over the movies) and which model was used.

Usage:  python benchmarks/eval_ctc.py [--model micro] [--fallback test_tiny_256] [--movies 3]
            [--frames 20] [--size 256] [--cells 40] [--division-rate 0.03] [--threads 1]
The bundled ``micro`` model may not exist yet: then the ``--fallback`` model is used (with a
warning); a random-weight config such as ``test_tiny_256`` (or ``random:micro``) runs but scores
poorly.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

# The trainer draws movie seeds uniformly from [0, 2**31): these are very unlikely to be among
# its ~6,000 draws (the tests use seeds >= 2**31, which it cannot draw: tests/held_out.py).
SEED0 = 10_000


# ----------------------------------------------------------------------------- methods


from _models import load  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from napari_sam2.train.baseline import run_baseline  # noqa: E402  (the one baseline)


def run_sam2(model, movie: np.ndarray, seeds: np.ndarray, divisions: bool, neck=None):
    from napari_sam2 import VideoSession
    from napari_sam2.video.division_propagation import propagate_with_divisions
    from napari_sam2.video.lineage import DivisionSettings

    session = VideoSession(model, movie)
    session.add_labels(0, seeds)
    if divisions:
        for _ in propagate_with_divisions(session, DivisionSettings(neck_ratio=neck)):
            pass
    else:
        for _ in session.propagate():
            pass
    return session.labels().copy(), dict(session.lineage)


def merge_daughters(labels: np.ndarray, lineage: dict[int, int]) -> np.ndarray:
    """Ground truth as a single-id tracker would see it: daughters keep the root's id."""
    root = {}
    for d in lineage:
        r = d
        while r in lineage:
            r = lineage[r]
        root[d] = r
    lut = np.arange(int(labels.max()) + 1, dtype=np.uint16)
    for d, r in root.items():
        lut[d] = r
    return lut[labels]


def run_ideal(labels: np.ndarray, lineage: dict[int, int], divisions: bool, neck=None):
    """The division post-processor on ideal masks whose daughters kept the mother's id."""
    from napari_sam2.video.lineage import DivisionSettings, track_divisions

    merged = merge_daughters(labels, lineage)
    if not divisions:
        return merged, {}
    out, lin, _ = track_divisions(merged, DivisionSettings(neck_ratio=neck))
    return out, lin


# ----------------------------------------------------------------------------- scoring


def score(folder: Path, name: str, labels: np.ndarray, lineage: dict[int, int], gt: Path):
    import ctc_metrics

    from napari_sam2.io.ctc import save_ctc

    res = save_ctc(folder / f"{name}_RES", labels, lineage)
    # py-ctcmetrics prints progress on stdout: keep stdout for the table
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        m = ctc_metrics.evaluate_sequence(str(res), str(gt), metrics=["SEG", "DET", "TRA"],
                                          threads=1)
    # an invalid result (e.g. a frame without any object) gets no scores: count it as 0
    out = {k: float(m[k]) if m.get(k) is not None else 0.0 for k in ("SEG", "DET", "TRA")}
    out["valid"] = float(m.get("Valid", 1) != 0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="micro")
    ap.add_argument("--fallback", default="test_tiny_256")
    ap.add_argument("--movies", type=int, default=3)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--cells", type=int, default=24)
    ap.add_argument("--radius", type=float, nargs=2, default=(14.0, 22.0),
                    help="nucleus radius range in px (the micro model saw 14-34 px at 256)")
    ap.add_argument("--division-rate", type=float, default=0.03)
    ap.add_argument("--touching", type=float, default=0.3)
    ap.add_argument("--neck-ratio", type=float, default=None,
                    help="DivisionSettings.neck_ratio (default: connected components only)")
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--keep", type=Path, default=None, help="keep result/GT folders here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from napari_sam2.io.ctc import save_ctc_ground_truth
    from napari_sam2.train.synthetic import make_movie

    model, used = load(args.model, args.fallback)
    methods = [
        "SAM 2 + divisions",
        "SAM 2, no divisions",
        "Baseline (threshold + overlap)",
        "Ideal masks, one id per lineage + divisions",
        "Ideal masks, one id per lineage",
    ]
    tags = dict(zip(methods, ["sam2_div", "sam2", "baseline", "ideal_div", "ideal"]))
    scores: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    times: dict[str, list[float]] = {m: [] for m in methods}
    n_div = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for k in range(args.movies):
            seed = SEED0 + k
            mv = make_movie(kind="nuclei", n_frames=args.frames, shape=(args.size, args.size),
                            n_cells=args.cells, division_rate=args.division_rate,
                            touching=args.touching, radius=tuple(args.radius), seed=seed)
            gt_lineage = {tid: p for tid, (_s, _e, p) in mv.lineage.items() if p}
            n_div.append(len(gt_lineage) // 2)
            folder = root / f"movie{seed}"
            gt = save_ctc_ground_truth(folder / "GT", mv.labels, gt_lineage)
            for name in methods:
                t0 = time.perf_counter()
                if name.startswith("Baseline"):
                    labels, lineage = run_baseline(mv.movie)
                elif name.startswith("Ideal"):
                    labels, lineage = run_ideal(mv.labels, gt_lineage, name.endswith("+ divisions"),
                                                args.neck_ratio)
                else:
                    labels, lineage = run_sam2(model, mv.movie, mv.labels[0],
                                               name.endswith("+ divisions"), args.neck_ratio)
                times[name].append((time.perf_counter() - t0) / args.frames)
                scores[name].append(score(folder, tags[name], labels, lineage, gt))
                print(f"movie {seed} {name}: {scores[name][-1]} "
                      f"({len(lineage)} lineage links)", file=sys.stderr)

    print(f"\nModel: `{used}`" + (" (fallback)" if used != args.model else "")
          + f"; {args.movies} held-out nuclei movies (seeds {SEED0}..{SEED0 + args.movies - 1}),"
          f" {args.frames} frames of {args.size}x{args.size}, {args.cells} cells at start, "
          f"division rate {args.division_rate}, touching {args.touching}; "
          f"division neck_ratio {args.neck_ratio}; "
          f"{sum(n_div)} ground-truth divisions; device {model.device}, "
          f"{args.threads} threads.\n")
    print("| method | SEG | DET | TRA | valid results | s / frame |")
    print("|---|---|---|---|---|---|")
    for name in methods:
        mean = {m: np.mean([s[m] for s in scores[name]]) for m in ("SEG", "DET", "TRA")}
        n_valid = int(sum(s["valid"] for s in scores[name]))
        print(f"| {name} | {mean['SEG']:.3f} | {mean['DET']:.3f} | {mean['TRA']:.3f} | "
              f"{n_valid}/{len(scores[name])} | {np.mean(times[name]):.3f} |")
    print("\nInvalid results (CTC rejects e.g. a frame without any object) are scored 0.")


if __name__ == "__main__":
    main()
