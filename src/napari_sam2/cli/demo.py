"""The demo (``napari-sam2 demo``) and its helpers: a synthetic time-lapse, one click per cell,
tracking, label TIFF, preview PNG and a score against the synthetic ground truth."""

from __future__ import annotations

import argparse
import colorsys
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..video.movie_run import Progress, build_session, progress_callback, propagate_frames
from ..video.prompts import PointPrompt
from .common import EXIT_OK, PROG, _desc, _Formatter, _load_model_cli

__all__ = [
    "DemoResult",
    "add_demo_parser",
    "ancestor_labels",
    "interior_points",
    "mean_iou",
    "render_preview",
    "run_demo",
]


def interior_points(labels: np.ndarray, min_area: int = 20) -> dict[int, tuple[int, int]]:
    """The most interior pixel (maximum of the distance transform) of every object.

    Unlike the centroid it always lies inside the object, even for curved or concave cells.

    Args:
        labels: (H, W) integer labels.
        min_area: objects smaller than this many pixels are skipped.

    Returns:
        {object id: (y, x)} in pixels.
    """
    from scipy import ndimage

    out: dict[int, tuple[int, int]] = {}
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        # pad by one pixel so the border of the crop counts as outside
        crop = np.pad(labels[sl] == i, 1)
        if crop.sum() < min_area:
            continue
        dist = ndimage.distance_transform_edt(crop)
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        out[i] = (int(y) - 1 + sl[0].start, int(x) - 1 + sl[1].start)
    return out


def ancestor_labels(labels: np.ndarray, lineage: dict, keep: set[int]) -> np.ndarray:
    """Relabel every daughter track with its ancestor among ``keep`` (a tracked cell's target
    after a division is the union of its descendants)."""
    parent = {int(k): int(v[2]) for k, v in lineage.items()}
    top = int(labels.max(initial=0))
    lut = np.arange(top + 1, dtype=labels.dtype)
    for i in range(1, top + 1):
        j, hops = i, 0
        while j not in keep and parent.get(j, 0) and hops < 256:
            j, hops = parent[j], hops + 1
        lut[i] = j if j in keep else i
    return lut[labels]


def mean_iou(pred: np.ndarray, truth: np.ndarray, obj_ids: Sequence[int]) -> float:
    """Mean IoU over (frame, object) pairs where the object is in the truth or the prediction.

    Args:
        pred: (T, H, W) predicted labels.
        truth: (T, H, W) ground-truth labels with the same ids.
        obj_ids: the objects to score.

    Returns:
        The mean IoU in [0, 1] (NaN when no pair counts).
    """
    ious = []
    for t in range(len(pred)):
        for i in obj_ids:
            a, b = pred[t] == i, truth[t] == i
            union = np.count_nonzero(a | b)
            if union:
                ious.append(np.count_nonzero(a & b) / union)
    return float(np.mean(ious)) if ious else float("nan")


def _palette(i: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def render_preview(
    movie: np.ndarray, labels: np.ndarray, frames: Sequence[int] | None = None
) -> np.ndarray:
    """Frames of a movie side by side with the label outlines drawn in colour.

    Args:
        movie: (T, H, W) intensities.
        labels: (T, H, W) labels.
        frames: frames to show (default: first, middle, last).

    Returns:
        (H, n * W + gaps, 3) uint8 RGB image.
    """
    from skimage.segmentation import find_boundaries

    t_max = len(movie) - 1
    frames = sorted({0, t_max // 2, t_max}) if frames is None else list(frames)
    lo, hi = np.percentile(np.asarray(movie[frames]), (0.5, 99.5))
    panels = []
    for t in frames:
        gray = np.clip((np.asarray(movie[t], np.float32) - lo) / max(hi - lo, 1e-6), 0, 1)
        rgb = np.repeat((gray * 255).astype(np.uint8)[..., None], 3, axis=2)
        lab = np.asarray(labels[t])
        edges = find_boundaries(lab, mode="inner")
        for i in np.unique(lab[edges]):
            if i:
                rgb[edges & (lab == i)] = _palette(int(i))
        panels.append(rgb)
        panels.append(np.full((rgb.shape[0], 4, 3), 255, np.uint8))
    return np.concatenate(panels[:-1], axis=1)


def _save_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    from ..io.tiff import atomic_open

    with atomic_open(path, "wb", durable=False) as fh:
        Image.fromarray(rgb).save(fh, format="PNG")


@dataclass
class DemoResult:
    """What :func:`run_demo` made.

    Attributes:
        out_dir: the output folder.
        files: name -> path of every file written.
        num_objects: objects seeded on frame 0.
        num_frames: frames in the movie.
        frame_shape: (H, W) in pixels.
        seconds_per_frame: propagation wall time per frame (s), excluding model loading.
        mean_iou: mean IoU against the synthetic ground truth (daughters count for their
            mother).
        model_name: the model's config name.
        device: where the model ran.
    """

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    num_objects: int = 0
    num_frames: int = 0
    frame_shape: tuple[int, int] = (0, 0)
    seconds_per_frame: float = float("nan")
    mean_iou: float = float("nan")
    model_name: str = ""
    device: str = ""


def run_demo(
    out_dir: str | os.PathLike = "napari-sam2-demo",
    *,
    model: Any = "micro",
    frames: int = 20,
    size: int = 256,
    seed: int = 0,
    kind: str = "nuclei",
    device: str = "auto",
    progress: Progress = None,
) -> DemoResult:
    """Make a synthetic time-lapse, seed each cell with one click, track, and save everything.

    Writes into ``out_dir``: ``movie.tif`` (the movie), ``ground_truth.tif`` (its exact labels),
    ``prompts.csv`` (the clicks, one per frame-0 cell at its most interior pixel),
    ``labels.tif`` (the result) and ``preview.png`` (first/middle/last frame with the outlines).

    Args:
        out_dir: output folder (created).
        model: model name / path / SAM2Model (default: the bundled micro model).
        frames: number of frames T.
        size: frame side in pixels.
        seed: random seed of the synthetic movie.
        kind: ``"nuclei"``, ``"phase"`` or ``"bacteria"``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
        progress: as in :func:`segment_movie`.

    Returns:
        :class:`DemoResult`.
    """
    import tifffile

    from ..io.prompt_csv import write_point_prompts
    from ..io.tiff import atomic_open, save_labels_tiff
    from ..train.synthetic import make_movie
    from ..weights.load import resolve_model

    if frames < 1 or size < 32:
        raise ValueError("the demo needs --frames >= 1 and --size >= 32")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = resolve_model(model, device)  # first: a missing model fails before any work
    overrides: dict[str, Any] = {"kind": kind, "n_frames": frames, "shape": (size, size)}
    if kind != "bacteria":
        # cells the size the bundled micro model was trained on (radius 14-34 px at 256 px)
        overrides["n_cells"] = max(2, round(16 * (size / 256) ** 2))
        overrides["radius"] = (14.0, 24.0)
    synth = make_movie(seed=seed, **overrides)
    seeds = interior_points(synth.labels[0])
    if not seeds:
        raise ValueError("the synthetic movie has no cell on frame 0; try another --seed")
    prompts = [PointPrompt(0, float(y), float(x), i) for i, (y, x) in sorted(seeds.items())]

    res = DemoResult(out_dir=out, num_frames=frames, frame_shape=(size, size))
    res.model_name = net.config.name
    res.device = str(net.device)
    res.num_objects = len(prompts)
    with atomic_open(out / "movie.tif", "wb") as fh:
        tifffile.imwrite(fh, synth.movie, imagej=True, metadata={"axes": "TYX"})
    res.files["movie"] = out / "movie.tif"
    truth = ancestor_labels(synth.labels, synth.lineage, set(seeds))
    res.files["ground_truth"] = save_labels_tiff(out / "ground_truth.tif", synth.labels)
    res.files["prompts"] = write_point_prompts(out / "prompts.csv", prompts)

    session = build_session(synth.movie, prompts, model=net, axes="TYX", fit_masks="auto")
    try:
        total, results = propagate_frames(session, "both")
        update, close = progress_callback(progress, total, "tracking")
        t0 = time.perf_counter()
        try:
            for done, _ in enumerate(results, start=1):
                update(done)
        finally:
            close()
        res.seconds_per_frame = (time.perf_counter() - t0) / total
        labels = session.labels()
    finally:
        session.frames.close()
    res.files["labels"] = save_labels_tiff(out / "labels.tif", labels)
    res.mean_iou = mean_iou(labels, truth, sorted(seeds))
    _save_png(out / "preview.png", render_preview(synth.movie, labels))
    res.files["preview"] = out / "preview.png"
    return res


# --------------------------------------------------------------------------- command


def cmd_demo(args: argparse.Namespace) -> int:
    quiet = args.quiet
    model = _load_model_cli(args.model, args.device, quiet)
    t0 = time.perf_counter()
    res = run_demo(
        args.out,
        model=model,
        frames=args.frames,
        size=args.size,
        seed=args.seed,
        kind=args.kind,
        progress=None if quiet else "tqdm",
    )
    h, w = res.frame_shape
    out = res.out_dir
    print(f"synthetic {args.kind} movie: {res.num_frames} frames of {h} x {w} px, seed {args.seed}")
    print(f"seeded {res.num_objects} cells with one click each on frame 0")
    print(
        f"tracked with {res.model_name} on {res.device}: {res.seconds_per_frame:.3f} s per frame "
        f"({time.perf_counter() - t0:.1f} s in all)"
    )
    print(f"mean IoU vs ground truth: {res.mean_iou:.3f}")
    print(f"wrote {', '.join(str(p) for p in res.files.values())}")
    print(f"look at it:  napari {out / 'movie.tif'} {out / 'labels.tif'}")
    print(
        f"redo it:     {PROG} segment {out / 'movie.tif'} --prompts {out / 'prompts.csv'} "
        f"--model {args.model} --out {out / 'labels.tif'}"
    )
    return EXIT_OK


_DEMO_EPILOG = f"""\
examples:
  {PROG} demo
  {PROG} demo --out /tmp/demo --frames 40 --seed 3
  {PROG} demo --model sam2.1_hiera_tiny        # an official model (downloaded once, 156 MB)

The clicks are at the most interior pixel of every cell of frame 0 (known exactly for a
synthetic movie); the IoU compares the tracked labels with the true ones on every frame.
"""


def add_demo_parser(sub, common: argparse.ArgumentParser) -> None:
    """Add ``napari-sam2 demo`` to the subparsers ``sub`` (``common``: --debug, --quiet)."""
    p = sub.add_parser(
        "demo",
        parents=[common],
        formatter_class=_Formatter,
        epilog=_DEMO_EPILOG,
        help="track the cells of a synthetic time-lapse (offline, the first thing to run)",
        description=_desc(
            "Make a synthetic time-lapse, click each cell once on frame 0, track the "
            "cells through the movie and save movie.tif, labels.tif, prompts.csv, "
            "ground_truth.tif and preview.png."
        ),
    )
    p.add_argument(
        "--out",
        default="napari-sam2-demo",
        metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    p.add_argument(
        "--model",
        default="micro",
        metavar="NAME|PATH",
        help="model name or checkpoint file (default: %(default)s, bundled)",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=20,
        metavar="N",
        help="frames in the movie (default: %(default)s)",
    )
    p.add_argument(
        "--size",
        type=int,
        default=256,
        metavar="PX",
        help="frame side in pixels (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the synthetic movie (default: %(default)s)",
    )
    p.add_argument(
        "--kind",
        default="nuclei",
        choices=["nuclei", "phase", "bacteria"],
        help="what the movie shows (default: %(default)s)",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda", "mps"],
        help="where the model runs (default: auto = CUDA, then MPS, then CPU)",
    )
    p.set_defaults(func=cmd_demo)
