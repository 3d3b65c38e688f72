"""A video session from prompt lists, and its propagation through the movie: the steps that
:func:`napari_sam2.pipeline.segment_movie`, the command line and the demo share.

:func:`build_session` opens the movie, checks every prompt against it (messages name the
prompt's source, e.g. ``"prompts.csv, line 4"``) and adds seeds, boxes, clicks and found cells;
:func:`propagate_frames` runs the propagation passes as one generator of results.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..io.prompt_csv import as_box_prompts, as_point_prompts
from .found_cells import new_cell_labels
from .prompts import BoxPrompt, PointPrompt
from .segment_options import Progress

__all__ = [
    "Progress",
    "add_found_cells",
    "build_session",
    "check_out_dtype",
    "check_prompts",
    "check_seed_shape",
    "progress_callback",
    "propagate_frames",
]

# A click up to this far (pixels) outside the frame is moved onto the border pixel: napari lets
# one click anywhere on a pixel, i.e. up to half a pixel beyond the outermost pixel centre.
_EDGE_TOLERANCE = 0.5


def _frame_count_hint(n: int) -> str:
    return f"the movie has frames 0..{n - 1}" if n > 1 else "the movie has a single frame 0"


def _clamp_edge(v: float, size: int) -> float:
    if -_EDGE_TOLERANCE <= v < 0:
        return 0.0
    if size - 1 < v <= size - 1 + _EDGE_TOLERANCE:
        return float(size - 1)
    return v


def check_prompts(
    points: Sequence[PointPrompt], boxes: Sequence[BoxPrompt], num_frames: int, h: int, w: int
) -> tuple[list[PointPrompt], list[BoxPrompt]]:
    """Check frames and coordinates against the movie; messages name each prompt's source."""
    out_p: list[PointPrompt] = []
    for p in points:
        where = f"{p.source}: " if p.source else ""
        if not 0 <= p.frame < num_frames:
            raise ValueError(
                f"{where}frame {p.frame} is out of range: {_frame_count_hint(num_frames)}"
            )
        y, x = _clamp_edge(p.y, h), _clamp_edge(p.x, w)
        if not (0 <= y <= h - 1 and 0 <= x <= w - 1):
            raise ValueError(
                f"{where}point (y={p.y:g}, x={p.x:g}) is outside the image ({h} x {w} pixels, "
                "y 0.."
                f"{h - 1}, x 0..{w - 1}); coordinates are (y, x) in pixels"
            )
        out_p.append(PointPrompt(p.frame, y, x, p.obj_id, p.positive, p.source))
    for b in boxes:
        where = f"{b.source}: " if b.source else ""
        if not 0 <= b.frame < num_frames:
            raise ValueError(
                f"{where}frame {b.frame} is out of range: {_frame_count_hint(num_frames)}"
            )
        if b.y1 < 0 or b.x1 < 0 or b.y0 > h - 1 or b.x0 > w - 1:
            raise ValueError(
                f"{where}box (y0={b.y0:g}, x0={b.x0:g}, y1={b.y1:g}, x1={b.x1:g}) lies outside "
                f"the image ({h} x {w} pixels)"
            )
    return out_p, list(boxes)


def build_session(
    movie: Any,
    prompts: Any = None,
    *,
    model: Any = None,
    settings=None,
    axes: str | None = None,
    channel: int | Sequence[int] | None = None,
    boxes: Any = None,
    contrast_limits: tuple[float, float] | None = None,
    device: str = "auto",
    precision: str = "fp32",
    out: np.ndarray | None = None,
    cancel: threading.Event | None = None,
    seed_labels: Any = None,
    seed_frame: int = 0,
    find_cells: int | None = None,
    find_options: Mapping[str, Any] | None = None,
    roi: Sequence[int] | None = None,
    labels_path: str | os.PathLike | None = None,
    allow_partial: bool = False,
    zoom: str = "auto",
    cell_diameter: float | None = None,
    fit_masks: bool | str = "auto",
):
    """Open a movie, check the prompts against it and add them to a new video session.

    Arguments are as in :func:`napari_sam2.pipeline.segment_movie`. The seed labels are added
    first (one mask prompt per label), then every (frame, object) pair of clicks and boxes is
    segmented (box first, then its clicks), then the cells found on ``find_cells`` are added;
    this writes those frames into the label volume.

    Returns:
        The :class:`~napari_sam2.video.session.VideoSession`.

    Raises:
        ValueError: no prompts, a prompt outside the movie (named by its source, e.g.
            ``"prompts.csv, line 4"``), bad seed labels, no cell found by ``find_cells`` when
            there is no other prompt, a bad ``out`` array, or a bad movie/axes/channel.
    """
    from ..io.seed_labels import seed_label_image
    from ..weights.load import resolve_model
    from .frames import FrameSource, frame_source_for
    from .session import VideoSession

    points = as_point_prompts(prompts)
    box_list = as_box_prompts(boxes)
    seed = None if seed_labels is None else seed_label_image(seed_labels, seed_frame)
    if not points and not box_list and seed is None and find_cells is None:
        raise ValueError("no prompts: give at least one click, box, seed label image or find_cells")
    net = resolve_model(model, device)
    cfg = net.config
    shared = isinstance(movie, FrameSource)  # the caller's (tiles share one): not closed here
    frames = movie if shared else frame_source_for(
        movie,
        cfg,
        axes=axes,
        channel=channel,
        contrast_limits=contrast_limits,
        allow_partial=allow_partial,
    )
    try:
        points, box_list = check_prompts(
            points, box_list, frames.num_frames, frames.height, frames.width
        )
        for what, t in (
            ("seed", seed_frame if seed is not None else None),
            ("find_cells", find_cells),
        ):
            if t is not None and not 0 <= t < frames.num_frames:
                raise ValueError(
                    f"{what} frame {t} is out of range: {_frame_count_hint(frames.num_frames)}"
                )
        check_seed_shape(seed, (frames.height, frames.width))
        session = VideoSession(
            net, frames, settings=settings, precision=precision, roi=roi, zoom=zoom,
            cell_diameter=cell_diameter, fit_masks=fit_masks,
        )
        ids = [p.obj_id for p in points] + [b.obj_id for b in box_list]
        if seed is not None:
            ids.append(int(seed.max()))
        if out is None and labels_path is not None:
            out = _disk_volume(labels_path, frames, max(ids, default=1))
        if out is not None:
            check_out_dtype(out, max(ids, default=1))
            session.set_label_volume(out)
        if seed is not None and not (cancel is not None and cancel.is_set()):
            session.add_labels(seed_frame, seed)
        pairs: dict[tuple[int, int], tuple[BoxPrompt | None, list[PointPrompt]]] = {}
        for b in box_list:
            pairs[(b.frame, b.obj_id)] = (b, pairs.get((b.frame, b.obj_id), (None, []))[1])
        for p in points:
            box, pts = pairs.get((p.frame, p.obj_id), (None, []))
            pairs[(p.frame, p.obj_id)] = (box, [*pts, p])
        for (frame, obj_id), (box, pts) in sorted(pairs.items()):
            if cancel is not None and cancel.is_set():
                break
            if box is not None:
                session.add_box(frame, obj_id, (box.y0, box.x0, box.y1, box.x1))
            if pts:
                session.add_points(
                    frame, obj_id, [(p.y, p.x) for p in pts], [int(p.positive) for p in pts]
                )
        if find_cells is not None and not (cancel is not None and cancel.is_set()):
            found = add_found_cells(
                session, find_cells, max(ids, default=0) + 1, dict(find_options or {}), out
            )
            if not found and not ids:
                raise ValueError(
                    f"no cell was found on frame {find_cells}: try more grid points or lower "
                    "thresholds, or give prompts"
                )
    except BaseException:
        if not shared:
            frames.close()
        raise
    return session


def _disk_volume(path: str | os.PathLike, frames, max_id: int) -> np.ndarray:
    """A (T, H, W) label TIFF at ``path``, memory-mapped (see ``labels_path``)."""
    from ._disk_volume import new_label_volume

    dtype = np.uint32 if max_id > 65535 else np.uint16
    return new_label_volume((frames.num_frames, frames.height, frames.width), dtype, path)


def check_seed_shape(seed: np.ndarray | None, shape: tuple[int, int]) -> None:
    """ValueError when (H, W) seed labels do not match the movie's frames."""
    if seed is not None and seed.shape != tuple(shape):
        raise ValueError(
            f"the seed labels are {seed.shape[0]} x {seed.shape[1]} px but the movie's frames "
            f"are {shape[0]} x {shape[1]} px"
        )


def check_out_dtype(out: np.ndarray, max_id: int) -> None:
    if out.dtype.kind in "iu" and max_id > np.iinfo(out.dtype).max:
        raise ValueError(f"out has dtype {out.dtype}, too small for object id {max_id}")


def add_found_cells(
    session, frame: int, first_id: int, options: dict[str, Any], out: np.ndarray | None
) -> list[int]:
    """Find cells on a frame (``session.find_objects``) and add the new ones as objects
    ``first_id``, ``first_id + 1``, ... (by decreasing predicted IoU).

    Which candidates are new cells is decided by
    :func:`~napari_sam2.video.found_cells.new_cell_labels` (pixels already labelled on the
    frame and pixels of a better candidate are not given again). Returns the new ids.
    """
    masks = session.find_objects(frame, **options)
    min_area = int(options.get("min_area", 16))
    found = new_cell_labels(np.asarray(session.labels()[frame]), masks, min_area)
    k = int(found.max())
    if k == 0:
        return []
    if out is not None:
        check_out_dtype(out, first_id + k - 1)
    seeds = np.where(found > 0, found + np.uint32(first_id - 1), np.uint32(0)).astype(np.uint32)
    return session.add_labels(frame, seeds)


def _total_frames(session, direction: str) -> tuple[int, int]:
    """(start frame, frames visited) of a propagation in ``direction``."""
    prompted = session.prompted_frames()
    n = session.num_frames
    if direction == "forward":
        start = min(prompted)
        return start, n - start
    if direction == "backward":
        start = max(prompted)
        return start, start + 1
    start = min(prompted)
    return start, n


def propagate_frames(
    session,
    direction: str = "both",
    cancel: threading.Event | None = None,
    divisions: Any = None,
):
    """Propagate every prompted object through the movie.

    ``"forward"`` runs from the earliest prompted frame to the end, ``"backward"`` from the
    latest prompted frame to frame 0, ``"both"`` forward from the earliest prompted frame and
    then backward from it to frame 0 (every frame once).

    With ``divisions``, the forward pass runs through
    :func:`~napari_sam2.video.division_propagation.propagate_with_divisions`: a cell whose mask
    splits in two
    ends its track and its daughters continue as new objects (new ids), recorded in
    ``session.lineage`` as ``{daughter: mother}``; a lost object that reappears gets a new id.
    Divisions are detected forward in time only, so ``"backward"`` is refused, and for
    ``"both"`` the backward pass (the prompted objects, from the frame before the earliest
    prompted frame to frame 0) runs first.

    Args:
        session: a :class:`~napari_sam2.video.session.VideoSession` with prompts.
        direction: ``"forward"``, ``"backward"`` or ``"both"``.
        cancel: when set, stops after the current frame (every finished frame stays written).
        divisions: None or False (no division tracking), True (default
            :class:`~napari_sam2.video.lineage.DivisionSettings`) or a ``DivisionSettings``.

    Returns:
        (total frames to visit, generator of :class:`~napari_sam2.video.session.FrameResult`).
    """
    if direction not in ("forward", "backward", "both"):
        raise ValueError(f"direction must be 'forward', 'backward' or 'both', got {direction!r}")
    if divisions is None or divisions is False:
        start, total = _total_frames(session, direction)
        passes = [lambda: session.propagate(start=start, direction=direction)]
    else:
        from .division_propagation import propagate_with_divisions
        from .lineage import DivisionSettings

        if direction == "backward":
            raise ValueError(
                "division tracking runs forward in time: use direction 'forward' or 'both'"
            )
        div = DivisionSettings() if divisions is True else divisions
        div.validate()
        start = min(session.prompted_frames())
        passes = []
        if direction == "both" and start > 0:
            ids = session.obj_ids
            passes.append(lambda: session.propagate(start - 1, "backward", obj_ids=ids))
        passes.append(lambda: propagate_with_divisions(session, div, start=start))
        total = session.num_frames - (start if direction == "forward" else 0)

    def gen() -> Iterator:
        for make in passes:
            it = make()
            try:
                for result in it:
                    yield result
                    if cancel is not None and cancel.is_set():
                        return
            finally:
                it.close()

    return total, gen()


def progress_callback(progress: Progress, total: int, desc: str):
    """(callback(done), close()) for the ``progress`` argument: None, ``"tqdm"`` (a bar named
    ``desc`` on stderr) or ``callback(done, total)``; ``total`` frames in all."""
    if progress is None:
        return (lambda done: None), (lambda: None)
    if progress == "tqdm":
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True)

        def update(done: int) -> None:
            bar.update(done - bar.n)

        return update, bar.close
    if callable(progress):
        return (lambda done: progress(done, total)), (lambda: None)
    raise TypeError(f"progress must be None, 'tqdm' or a callable (done, total); got {progress!r}")
