"""Where the daughters of a 3-D division go: which labels hold each daughter after it.

For each synthetic 3-D + time movie (:func:`napari_sam2.train.zstack.make_zstack_movie`,
20 timepoints, 4 nuclei, one division), one click per nucleus on its central slice at t = 0,
the defaults of ``segment_movie`` (divisions on; as ``eval_3d.py``); then, for every true
division (the mother's last timepoint ``td``), the share of the mother's voxels at ``td`` under
each label, and of each daughter's voxels under each label (0: unlabelled) on the ``--after``
timepoints that follow; and the divisions found (``eval_3d.division_matches``). A missed
division whose unfollowed daughter is unlabelled could be found by a new cell appearing
beside the mother; one held by a neighbour's label, or by the mother's label with the other
daughter, could not.

Run: ``python benchmarks/diag_3d_divisions.py --movie-seeds 2000 2004 2007 2009 [--after 4]``
(validation seeds: 2000-2009; about 35 s per movie on 1 CPU thread).
"""

from __future__ import annotations

import argparse
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


def report(pred: np.ndarray, truth: np.ndarray, lineage: dict, after: int) -> list[str]:
    """Lines on each true division: who holds the mother at its end and each daughter after."""
    lines = []
    frames = len(truth)
    for mother in sorted(set(lineage.values())):
        daughters = sorted(d for d, m in lineage.items() if m == mother)
        present = (truth == mother).reshape(frames, -1).any(1)
        td = int(np.flatnonzero(present)[-1])
        lines.append(
            f"  nucleus {mother} divides after t = {td}: its voxels at t = {td} "
            f"under labels {shares(pred[td], truth[td] == mother)}"
        )
        for t in range(td + 1, min(td + 1 + after, frames)):
            held = [
                f"daughter {d} ({int((truth[t] == d).sum())} voxels): "
                f"{shares(pred[t], truth[t] == d)}"
                for d in daughters
            ]
            lines.append(f"    t = {t}: " + "; ".join(held))
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="micro")
    ap.add_argument(
        "--movie-seeds",
        type=int,
        nargs="+",
        default=[2000, 2004, 2007, 2009],
        help="validation seeds (2000-2009)",
    )
    ap.add_argument("--after", type=int, default=4, help="timepoints after each division")
    args = ap.parse_args(argv)

    from napari_sam2 import load_model
    from napari_sam2.train.zstack import make_zstack_movie

    model = load_model(args.model, device="cpu")
    for seed in args.movie_seeds:
        mv = make_zstack_movie(frames=20, count=4, seed=seed)
        pred, found, _ = track_movie(model, mv.image, mv.labels)
        print(f"seed {seed}: divisions {division_matches(pred, found, mv.labels, mv.lineage)}")
        print("\n".join(report(pred, mv.labels, mv.lineage, args.after)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
