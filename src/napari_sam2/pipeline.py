"""Scripting API: segment a whole movie from clicks, boxes or a label image in one call; the demo.

:func:`segment_movie` is the one-call form of :class:`~napari_sam2.video.session.VideoSession`::

    import napari_sam2 as ns

    labels = ns.segment_movie(
        "movie.tif",
        [
            {"frame": 0, "y": 105, "x": 88, "obj_id": 1},
            {"frame": 0, "y": 40, "x": 200, "obj_id": 2, "positive": True},
        ],
    )
    ns.save_labels_tiff("labels.tif", labels)

The lower-level pieces (:func:`build_session`, :func:`propagate_frames`) are what the command line
uses; the demo (``napari-sam2 demo``) lives in :mod:`napari_sam2.demo`. No napari or Qt is
imported here.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .prompt_files import BoxPrompt, PointPrompt, as_box_prompts, as_point_prompts

__all__ = [
    "build_session",
    "propagate_frames",
    "resolve_model",
    "seed_label_image",
    "segment_movie",
]

#: ``progress`` argument: None (silent), ``"tqdm"`` (a bar on stderr) or ``callback(done, total)``
#: called after every frame with the frames finished so far and the frames to do in all.
Progress = Callable[[int, int], None] | str | None

# A click up to this far (pixels) outside the frame is moved onto the border pixel: napari lets
# one click anywhere on a pixel, i.e. up to half a pixel beyond the outermost pixel centre.
_EDGE_TOLERANCE = 0.5


def resolve_model(model: Any = None, device: str = "auto"):
    """A :class:`~napari_sam2.model.sam2.SAM2Model` from a model, a name, a path or None.

    Args:
        model: a loaded SAM2Model (returned as is), a name (``"micro"``, ``"sam2.1_hiera_tiny"``,
            a config name such as ``"test_tiny_256"`` for random weights), a checkpoint path, or
            None: the first cached official SAM 2.1 checkpoint, else the bundled micro model.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"`` (ignored for a loaded model).
    """
    from .model.sam2 import SAM2Model
    from .weights.load import load_model

    if isinstance(model, SAM2Model):
        return model.eval()
    return load_model(model, device=device)


def _frame_count_hint(n: int) -> str:
    return f"the movie has frames 0..{n - 1}" if n > 1 else "the movie has a single frame 0"


def _clamp_edge(v: float, size: int) -> float:
    if -_EDGE_TOLERANCE <= v < 0:
        return 0.0
    if size - 1 < v <= size - 1 + _EDGE_TOLERANCE:
        return float(size - 1)
    return v


def _check_prompts(
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
):
    """Open a movie, check the prompts against it and add them to a new video session.

    Arguments are as in :func:`segment_movie`. The seed labels are added first (one mask prompt
    per label), then every (frame, object) pair of clicks and boxes is segmented (box first,
    then its clicks), then the cells found on ``find_cells`` are added; this writes those frames
    into the label volume.

    Returns:
        The :class:`~napari_sam2.video.session.VideoSession`.

    Raises:
        ValueError: no prompts, a prompt outside the movie (named by its source, e.g.
            ``"prompts.csv, line 4"``), bad seed labels, no cell found by ``find_cells`` when
            there is no other prompt, a bad ``out`` array, or a bad movie/axes/channel.
    """
    from .video.frames import FrameSource, frame_source_for
    from .video.session import VideoSession

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
        points, box_list = _check_prompts(
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
        _check_seed_shape(seed, (frames.height, frames.width))
        session = VideoSession(
            net, frames, settings=settings, precision=precision, roi=roi, zoom=zoom,
            cell_diameter=cell_diameter,
        )
        ids = [p.obj_id for p in points] + [b.obj_id for b in box_list]
        if seed is not None:
            ids.append(int(seed.max()))
        if out is None and labels_path is not None:
            out = _disk_volume(labels_path, frames, max(ids, default=1))
        if out is not None:
            _check_out_dtype(out, max(ids, default=1))
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
            found = _add_found_cells(
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
    from .video._disk_volume import new_label_volume

    dtype = np.uint32 if max_id > 65535 else np.uint16
    return new_label_volume((frames.num_frames, frames.height, frames.width), dtype, path)


def _check_seed_shape(seed: np.ndarray | None, shape: tuple[int, int]) -> None:
    """ValueError when (H, W) seed labels do not match the movie's frames."""
    if seed is not None and seed.shape != tuple(shape):
        raise ValueError(
            f"the seed labels are {seed.shape[0]} x {seed.shape[1]} px but the movie's frames "
            f"are {shape[0]} x {shape[1]} px"
        )


def _check_out_dtype(out: np.ndarray, max_id: int) -> None:
    if out.dtype.kind in "iu" and max_id > np.iinfo(out.dtype).max:
        raise ValueError(f"out has dtype {out.dtype}, too small for object id {max_id}")


def seed_label_image(labels: Any, frame: int = 0) -> np.ndarray:
    """The (H, W) label image that seeds ``frame``, from a label image or a label volume.

    Args:
        labels: a (H, W) label image (the labels of ``frame``), a (T, H, W) label volume (its
            frame ``frame`` is used; a one-frame (1, H, W) stack counts as a (H, W) image), or
            the path of a label TIFF or ``.npy`` file holding either.
        frame: the frame the labels seed.

    Returns:
        (H, W) integer labels (0 = background; each other value becomes an object id).

    Raises:
        ValueError: unreadable file, wrong number of dimensions, a frame the volume lacks,
            non-integer or negative values, or no label at all on that frame.
    """
    name = "the seed labels"
    if isinstance(labels, (str, os.PathLike)):
        from .io.tiff import load_labels_tiff

        path = Path(labels).expanduser()
        name = path.name
        if not path.is_file():
            raise ValueError(f"seed labels not found: {labels}")
        try:
            labels = (
                np.load(path, mmap_mode="r")
                if path.suffix.lower() == ".npy"
                else load_labels_tiff(path)
            )
        except Exception as err:  # noqa: BLE001 - tifffile and numpy raise many types
            raise ValueError(f"cannot read {name} as a label image ({err})") from None
    arr = np.asarray(labels) if not hasattr(labels, "ndim") else labels
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3:
        if not 0 <= frame < arr.shape[0]:
            raise ValueError(
                f"{name} holds {arr.shape[0]} frames (T, Y, X); frame {frame} is out of range"
            )
        arr = arr[frame]
    if arr.ndim != 2:
        raise ValueError(
            f"{name} has shape {tuple(arr.shape)}: give a (Y, X) label image or a (T, Y, X) "
            "label volume"
        )
    arr = np.ascontiguousarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer labels, not {arr.dtype}")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise ValueError(f"{name} holds negative label values")
    if not arr.any():
        raise ValueError(f"{name} holds no label (all 0) for frame {frame}")
    return arr


def _add_found_cells(
    session, frame: int, first_id: int, options: dict[str, Any], out: np.ndarray | None
) -> list[int]:
    """Find cells on a frame (``session.find_objects``) and add them as objects ``first_id``,
    ``first_id + 1``, ... (by decreasing predicted IoU).

    Pixels already labelled on the frame (by other prompts) and pixels of a better candidate
    are not given again; a candidate left with less than half its area (or ``min_area``
    pixels) is dropped, so a cell already prompted is not added twice. Returns the new ids.
    """
    masks = session.find_objects(frame, **options)
    min_area = int(options.get("min_area", 16))
    taken = np.asarray(session.labels()[frame]) != 0
    seeds = np.zeros(session.frame_shape, np.uint32)
    next_id = first_id
    for m in masks:
        free = m & ~taken
        n = int(np.count_nonzero(free))
        if n < max(min_area, 0.5 * np.count_nonzero(m)):
            continue
        seeds[free] = next_id
        taken |= free
        next_id += 1
    if next_id == first_id:
        return []
    if out is not None:
        _check_out_dtype(out, next_id - 1)
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
    :func:`~napari_sam2.video.lineage.propagate_with_divisions`: a cell whose mask splits in two
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
        from .video.division_propagation import propagate_with_divisions
        from .video.lineage import DivisionSettings

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


def _progress_callback(progress: Progress, total: int, desc: str):
    """(callback(done), close()) for the ``progress`` argument."""
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


def segment_movie(
    movie: Any,
    prompts: Any = None,
    *,
    model: Any = None,
    settings=None,
    direction: str = "both",
    axes: str | None = None,
    channel: int | Sequence[int] | None = None,
    boxes: Any = None,
    progress: Progress = None,
    device: str = "auto",
    precision: str = "fp32",
    contrast_limits: tuple[float, float] | None = None,
    out: np.ndarray | None = None,
    cancel: threading.Event | None = None,
    seed_labels: Any = None,
    seed_frame: int = 0,
    find_cells: int | None = None,
    find_options: Mapping[str, Any] | None = None,
    divisions: Any = None,
    return_lineage: bool = False,
    roi: Sequence[int] | None = None,
    tile: int | None = None,
    tile_margin: int = 32,
    labels_path: str | os.PathLike | None = None,
    allow_partial: bool = False,
    zoom: str = "auto",
    cell_diameter: float | None = None,
):
    """Segment and track objects through a whole movie from clicks, boxes and/or label images.

    Args:
        movie: (T, Y, X) array (numpy, memmap, dask, zarr), a multi-channel movie with ``axes``,
            or the path of a TIFF file (read lazily, frame by frame).
        prompts: clicks, in any of these forms (coordinates are (y, x) image pixels, napari's
            order; frames count from 0):

            * a list of dicts ``{"frame": 0, "y": 105.0, "x": 88.0, "obj_id": 1,
              "positive": True}`` (``positive`` optional, default True; ``t`` may replace
              ``frame``);
            * a list of tuples or an (N, 4) / (N, 5) array ``(frame, y, x, obj_id[, positive])``;
            * :class:`~napari_sam2.prompt_files.PointPrompt` items (what
              :func:`~napari_sam2.prompt_files.read_point_prompts` returns);
            * the path of a prompt CSV (napari Points CSV or ``frame,y,x,obj_id,positive``).

            Clicks with the same ``obj_id`` belong to one object (its id in the labels); several
            frames may carry prompts for the same object (corrections).
        model: a loaded SAM2Model, a model name (``"micro"``, ``"sam2.1_hiera_tiny"``, ...), a
            checkpoint path, or None (the first cached official SAM 2.1 model, else micro).
        settings: :class:`~napari_sam2.video.memory_bank.MemorySettings` (None: defaults).
        direction: ``"forward"``, ``"backward"`` or ``"both"`` (see :func:`propagate_frames`).
        axes: axes of the movie, e.g. ``"TYX"``, ``"TCYX"`` (inferred when obvious). 3-D data:
            ``"ZYX"`` / ``"CZYX"`` segments a z-stack along z (prompts carry ``z``, e.g.
            ``{"z": 12, "y": 40, "x": 60, "obj_id": 1}``; returns (Z, Y, X) labels;
            ``direction`` "forward" is increasing z); ``"TZYX"`` / ``"TCZYX"`` follows 3-D
            cells through time from prompts with ``frame`` and ``z`` and returns
            (T, Z, Y, X) labels (see :mod:`napari_sam2.video.volumes`). Seeds, found cells,
            divisions, roi and tiles are not available for 3-D data.
        channel: channel the model sees for multi-channel movies (or up to 3 as R, G, B).
        boxes: boxes ``(frame, y0, x0, y1, x1, obj_id)`` in the same forms as ``prompts``
            (dicts with those keys, tuples, :class:`~napari_sam2.prompt_files.BoxPrompt`, or a
            CSV path).
        progress: None, ``"tqdm"`` (a bar on stderr) or ``callback(done, total)`` per frame.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"`` (when ``model`` is not loaded yet).
        precision: ``"fp32"`` or ``"bf16"``.
        contrast_limits: (lo, hi) intensity window (default: robust percentiles of the movie).
        out: optional (T, Y, X) integer array to write the labels into (e.g. a memmap); it is
            filled frame by frame, so it holds every finished frame even if the run stops early.
        cancel: a ``threading.Event``; setting it stops after the current frame.
        seed_labels: a label image seeding ``seed_frame``: every label becomes an object (its
            value is the id) with its mask as the prompt. A (H, W) image, a (T, H, W) volume
            (frame ``seed_frame`` is used) or a label TIFF / ``.npy`` path (see
            :func:`seed_label_image`). Combinable with clicks and boxes (same id space).
        seed_frame: the frame that ``seed_labels`` seeds.
        find_cells: a frame on which to find cells automatically
            (:meth:`~napari_sam2.video.session.VideoSession.find_objects`); each cell found
            becomes an object, ids continuing after the largest id of the other prompts, and
            cells overlapping an already prompted object by half their area are skipped.
        find_options: keyword arguments of ``find_objects``, e.g. ``{"points_per_side": 32}``.
        divisions: None, True or a :class:`~napari_sam2.video.lineage.DivisionSettings`:
            track cell divisions (see :func:`propagate_frames`; daughters get new ids).
        return_lineage: also return the divisions found, ``{daughter_id: mother_id}`` (for
            :func:`napari_sam2.io.ctc.save_ctc`).
        roi: region of interest ``(y0, x0, y1, x1)`` in frame pixels (end exclusive): only it
            is resized to the model's input (for small cells on large frames); prompts must lie
            inside it, the labels stay full-size and are 0 outside it.
        tile: split the frame into ``tile`` x ``tile`` px tiles, each run zoomed in as its own
            region of interest (``tile_margin`` px of context around it, grown to cover its
            objects' prompts); each object belongs to the tile holding its first click (or box
            centre, or seed-label centroid). For small cells on large frames, like ``roi`` but
            everywhere; see :mod:`napari_sam2._tiling`. Not combinable with ``roi``,
            ``find_cells`` or ``divisions``.
        tile_margin: context around each tile in px; larger than a cell travels in the movie.
        labels_path: write the labels into this label TIFF as they are computed: the result
            is a :class:`numpy.memmap` of the file, every finished frame is in the file even
            if the run stops, and memory use does not grow with the movie's length. Without
            it (and without ``out``) label volumes above 1 GB go to a temporary file (with a
            warning naming it), smaller ones stay in memory.
        allow_partial: a TIFF cut off after frame k-1 (fewer complete frames than its
            metadata promise) is segmented as frames 0..k-1, with a warning, instead of
            raising :class:`~napari_sam2.video.frames.DamagedMovieError`.
        zoom: ``"auto"`` (default): objects too small for the model at the whole-frame input
            run in windows of the frame that follow them (see
            :mod:`napari_sam2.video.windows`); ``"off"``: the model sees the whole frame.
        cell_diameter: typical cell diameter in pixels for sizing the windows of clicked
            objects (None: estimated around each first click; boxes and seed labels give
            their own sizes).

    Returns:
        (T, Y, X) labels, uint16 (uint32 for ids above 65535; ``out`` itself when given):
        0 = background, otherwise the object id. Frames not reached (cancelled run) are 0.
        With ``return_lineage``: (labels, lineage).

    Raises:
        ValueError: no prompts, a prompt outside the movie or the ROI (the message names it),
            bad seed labels, bad axes/channel/settings/roi, a damaged movie
            (:class:`~napari_sam2.video.frames.DamagedMovieError`, naming the first bad frame).
        FrameReadError: a frame could not be read or decoded (named; the frames before it
            are in ``out`` / ``labels_path`` when given).
    """
    from ._volume_pipeline import detect_volume_axes

    axes3d = detect_volume_axes(movie, axes)
    if axes3d is not None:  # z-stack or 3-D + time
        from ._volume_pipeline import segment_volume

        labels = segment_volume(
            movie, prompts, model=resolve_model(model, device), axes=axes3d, boxes=boxes,
            settings=settings, direction=direction, channel=channel,
            contrast_limits=contrast_limits, precision=precision, out=out, cancel=cancel,
            progress=lambda total: _progress_callback(progress, total, "propagating"),
            unsupported=[("seed_labels", seed_labels), ("find_cells", find_cells),
                         ("divisions", divisions), ("roi", roi), ("tile", tile)],
        )
        return (labels, {}) if return_lineage else labels
    if tile is not None:
        for name, value in (("roi", roi), ("find_cells", find_cells), ("divisions", divisions)):
            if value is not None and value is not False:
                raise ValueError(f"tile cannot be combined with {name} (yet): use one of them")
        labels = _segment_tiled(
            movie, prompts, boxes, seed_labels, seed_frame, tile, tile_margin, model=model,
            settings=settings, direction=direction, axes=axes, channel=channel,
            progress=progress, device=device, precision=precision,
            contrast_limits=contrast_limits, out=out, cancel=cancel, labels_path=labels_path,
            allow_partial=allow_partial, zoom=zoom, cell_diameter=cell_diameter,
        )
        return (labels, {}) if return_lineage else labels
    session = build_session(
        movie,
        prompts,
        model=model,
        settings=settings,
        axes=axes,
        channel=channel,
        boxes=boxes,
        contrast_limits=contrast_limits,
        device=device,
        precision=precision,
        out=out,
        cancel=cancel,
        seed_labels=seed_labels,
        seed_frame=seed_frame,
        find_cells=find_cells,
        find_options=find_options,
        roi=roi,
        labels_path=labels_path,
        allow_partial=allow_partial,
        zoom=zoom,
        cell_diameter=cell_diameter,
    )
    try:
        if not (cancel is not None and cancel.is_set()):
            total, frames = propagate_frames(session, direction, cancel, divisions)
            update, close = _progress_callback(progress, total, "propagating")
            try:
                for done, _ in enumerate(frames, start=1):
                    update(done)
            finally:
                close()
        labels = session.labels()
        return (labels, dict(session.lineage)) if return_lineage else labels
    finally:
        session.frames.close()


def _segment_tiled(
    movie: Any,
    prompts: Any,
    boxes: Any,
    seed_labels: Any,
    seed_frame: int,
    tile: int,
    margin: int,
    *,
    model: Any,
    settings,
    direction: str,
    axes: str | None,
    channel,
    progress: Progress,
    device: str,
    precision: str,
    contrast_limits,
    out: np.ndarray | None,
    cancel: threading.Event | None,
    labels_path: str | os.PathLike | None = None,
    allow_partial: bool = False,
    zoom: str = "auto",
    cell_diameter: float | None = None,
) -> np.ndarray:
    """:func:`segment_movie` with ``tile``: one session per tile with objects, one after
    another, on one frame source (one intensity window) and one label volume."""
    from ._tiling import plan_tiles, tile_frames, tile_seed
    from .video.frames import frame_source_for

    if direction not in ("forward", "backward", "both"):
        raise ValueError(f"direction must be 'forward', 'backward' or 'both', got {direction!r}")
    points = as_point_prompts(prompts)
    box_list = as_box_prompts(boxes)
    seed = None if seed_labels is None else seed_label_image(seed_labels, seed_frame)
    if not points and not box_list and seed is None:
        raise ValueError("no prompts: give at least one click, box or seed label image")
    net = resolve_model(model, device)
    frames = frame_source_for(
        movie,
        net.config,
        axes=axes,
        channel=channel,
        contrast_limits=contrast_limits,
        allow_partial=allow_partial,
    )
    try:
        n, h, w = frames.num_frames, frames.height, frames.width
        points, box_list = _check_prompts(points, box_list, n, h, w)
        _check_seed_shape(seed, (frames.height, frames.width))
        plan = plan_tiles(points, box_list, seed, seed_frame, (h, w), int(tile), int(margin))
        ids = [p.obj_id for p in points] + [b.obj_id for b in box_list]
        if seed is not None:
            ids.append(int(seed.max()))
        if out is None:
            from .video._disk_volume import new_label_volume

            dtype = np.uint32 if max(ids) > 65535 else np.uint16
            out = new_label_volume((n, h, w), dtype, labels_path)
        total = 0
        for t in plan:
            prompted = tile_frames(t, seed_frame)
            total += {"forward": n - prompted[0], "backward": prompted[-1] + 1}.get(direction, n)
        update, close = _progress_callback(progress, total, "propagating tiles")
        done = 0
        try:
            for t in plan:
                if cancel is not None and cancel.is_set():
                    break
                session = build_session(
                    frames, t.points, model=net, settings=settings, boxes=t.boxes,
                    precision=precision, out=out, cancel=cancel,
                    seed_labels=tile_seed(seed, t), seed_frame=seed_frame, roi=t.roi,
                    zoom=zoom, cell_diameter=cell_diameter,
                )
                _, results = propagate_frames(session, direction, cancel)
                for _ in results:
                    done += 1
                    update(done)
        finally:
            close()
        return out
    finally:
        frames.close()


# --------------------------------------------------------------------------- demo helpers
