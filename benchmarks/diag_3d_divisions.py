"""Where the daughters of a 3-D division go: which labels hold each daughter after it.

For each synthetic 3-D + time movie (:func:`napari_sam2.train.zstack.make_zstack_movie`,
20 timepoints, 4 nuclei, one division), one click per nucleus on its central slice at t = 0,
the defaults of ``segment_movie`` (divisions on; as ``eval_3d.py``); then, for every true
division (the mother's last timepoint ``td``), the share of the mother's voxels at ``td`` under
each label, and of each daughter's voxels under each label (0: unlabelled) on the ``--after``
timepoints that follow; the mother's label on ``td + 1``: its volume over its volume on ``td``
and how far its centre moved (in the mother's radii: a label that followed one daughter
moves about 0.8 and halves); and for every division found, the share of each daughter on
voxels the mother's label held on the timepoint before (a split of a label that already
spanned two cells: both near 1; a division: about 0.5 each, the daughters reach past their
mother's mask) and the divisions found (``eval_3d.division_matches``). A missed division
whose unfollowed daughter is unlabelled could be found by a new cell appearing beside the
mother; one held by a neighbour's label, or by the mother's label with the other daughter,
could not.

Run: ``python benchmarks/diag_3d_divisions.py --movie-seeds 2000 2004 2007 2009 [--after 4]``
(validation seeds: 2000-2029; about 35 s per movie on 1 CPU thread); ``--save DIR`` keeps
each movie's labels (``seed{S}.npz``: labels, truth; ``seed{S}.json``: lineages), ``--load
DIR`` reports on them again without tracking. ``--load DIR --touching`` reports instead, on the
kept labels, what sharing touching labels out by their cells
(:func:`napari_sam2.video._volume_touching.reshare_touching`, applied to each timepoint t >= 1
against the kept labels of t - 1) would change: the mean IoU of every true cell at t >= 1
against its best label, and the number of mixes (a label holding a quarter of two cells, or a
cell a quarter under each of two labels), before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from eval_3d import division_matches, track_movie  # noqa: E402


def shares(labels: np.ndarray, region: np.ndarray) -> dict[int, float]:
    """{label: share of the region's voxels under it} (labels holding 2 % or more)."""
    ids, counts = np.unique(labels[region], return_counts=True)
    total = max(int(region.sum()), 1)
    return {int(i): round(float(c) / total, 2) for i, c in zip(ids, counts) if c / total >= 0.02}


def _last(labels: np.ndarray, obj: int) -> int:
    return int(np.flatnonzero((labels == obj).reshape(len(labels), -1).any(1))[-1])


def moved(was: np.ndarray, now: np.ndarray) -> tuple[float, float]:
    """(volume now / volume before, centre's move in the radii of ``was``) of one label."""
    from napari_sam2.video._volume_cores import cell_radii

    rz, ryx = cell_radii(was)
    step = (np.argwhere(now).mean(0) - np.argwhere(was).mean(0)) / np.array([rz, ryx, ryx])
    return round(float(now.sum() / was.sum()), 2), round(float(np.linalg.norm(step)), 2)


def report(pred: np.ndarray, truth: np.ndarray, lineage: dict, after: int) -> list[str]:
    """Lines on each true division: who holds the mother at its end and each daughter after."""
    lines = []
    frames = len(truth)
    for mother in sorted(set(lineage.values())):
        daughters = sorted(d for d, m in lineage.items() if m == mother)
        td = _last(truth, mother)
        held = shares(pred[td], truth[td] == mother)
        lines.append(
            f"  nucleus {mother} divides after t = {td}: its voxels at t = {td} under labels {held}"
        )
        label = max((k for k in held if k), key=held.get, default=None)
        if label is not None and td + 1 < frames and (pred[td + 1] == label).any():
            ratio, step = moved(pred[td] == label, pred[td + 1] == label)
            lines.append(f"    label {label} at t = {td + 1}: volume x{ratio}, centre moved {step}")
        for t in range(td + 1, min(td + 1 + after, frames)):
            held = [
                f"daughter {d} ({int((truth[t] == d).sum())} voxels): "
                f"{shares(pred[t], truth[t] == d)}"
                for d in daughters
            ]
            lines.append(f"    t = {t}: " + "; ".join(held))
    return lines


def found(pred: np.ndarray, pred_lineage: dict) -> list[str]:
    """Lines on each division found: the share of each daughter on its mother's voxels of the
    timepoint before."""
    lines = []
    for mother in sorted(set(pred_lineage.values())):
        daughters = sorted(d for d, m in pred_lineage.items() if m == mother)
        t = _last(pred, mother) + 1
        was = pred[t - 1] == mother
        on = [
            round(float((was & (pred[t] == d)).sum() / max((pred[t] == d).sum(), 1)), 2)
            for d in daughters
        ]
        lines.append(f"  found: {mother} -> {daughters} at t = {t}, on the mother's voxels: {on}")
    return lines


def mixes(pred: np.ndarray, truth: np.ndarray, share: float = 0.25) -> int:
    """Mixes on one timepoint: labels holding ``share`` of each of two true cells, plus true
    cells with ``share`` of their voxels under each of two labels."""
    n = 0
    for obj in np.unique(truth)[1:]:  # a cell under two labels
        cell = truth == obj
        ids, counts = np.unique(pred[cell], return_counts=True)
        n += int(np.count_nonzero((ids > 0) & (counts >= share * cell.sum())) >= 2)
    for obj in np.unique(pred)[1:]:  # a label over two cells
        ids, counts = np.unique(truth[pred == obj], return_counts=True)
        spans = [i for i, c in zip(ids, counts) if i and c >= share * (truth == i).sum()]
        n += int(len(spans) >= 2)
    return n


def touching_report(pred: np.ndarray, truth: np.ndarray, image: np.ndarray) -> str:
    """Mean IoU (t >= 1) and mixes of kept labels before and after reshare_touching."""
    from eval_3d import best_iou

    from napari_sam2.video._volume_touching import reshare_touching

    lo, hi = np.percentile(image, (0.5, 99.5))  # the model's window, as the session sets it
    image = np.clip((image - lo) / (hi - lo), 0, 1).astype(np.float32)
    before, after, mixed = [], [], [0, 0]
    for t in range(1, len(pred)):
        shared = pred[t].copy()
        reshare_touching(shared, pred[t - 1], np.unique(pred[t - 1])[1:].tolist(), image[t])
        before += best_iou(pred[t], truth[t])
        after += best_iou(shared, truth[t])
        mixed[0] += mixes(pred[t], truth[t])
        mixed[1] += mixes(shared, truth[t])
    return (
        f"  touching labels shared out by their cells: mean IoU {np.mean(before):.4f} -> "
        f"{np.mean(after):.4f}, mixes {mixed[0]} -> {mixed[1]}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="micro")
    ap.add_argument(
        "--movie-seeds",
        type=int,
        nargs="+",
        default=[2000, 2004, 2007, 2009],
        help="validation seeds (2000-2029)",
    )
    ap.add_argument("--after", type=int, default=4, help="timepoints after each division")
    ap.add_argument("--save", type=Path, help="keep each movie's labels and lineages here")
    ap.add_argument("--load", type=Path, help="report on labels kept by --save (no tracking)")
    ap.add_argument(
        "--touching",
        action="store_true",
        help="with --load: what sharing touching labels out by their cells changes",
    )
    args = ap.parse_args(argv)

    from napari_sam2 import load_model
    from napari_sam2.train.zstack import make_zstack_movie

    model = None if args.load else load_model(args.model, device="cpu")
    for seed in args.movie_seeds:
        if args.load:
            kept = np.load(args.load / f"seed{seed}.npz")
            pred, truth = kept["labels"], kept["truth"]
            if args.touching:
                image = make_zstack_movie(frames=20, count=4, seed=seed, divisions=1).image
                print(f"seed {seed}:\n{touching_report(pred, truth, image)}", flush=True)
                continue
            lin = json.loads((args.load / f"seed{seed}.json").read_text())
            lineage, true_lineage = (
                {int(k): int(v) for k, v in lin[key].items()} for key in ("lineage", "true")
            )
        else:
            mv = make_zstack_movie(frames=20, count=4, seed=seed)
            pred, lineage, _ = track_movie(model, mv.image, mv.labels)
            truth, true_lineage = mv.labels, mv.lineage
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(args.save / f"seed{seed}.npz", labels=pred, truth=truth)
                (args.save / f"seed{seed}.json").write_text(
                    json.dumps({"lineage": lineage, "true": true_lineage})
                )
        print(f"seed {seed}: divisions {division_matches(pred, lineage, truth, true_lineage)}")
        print("\n".join(report(pred, truth, true_lineage, args.after)), flush=True)
        print("\n".join(found(pred, lineage)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
