"""``segment_movie`` for 3-D data: z-stacks (``axes="ZYX"``, ``"CZYX"``) and 3-D + time
(``axes="TZYX"``, ``"TCZYX"``). Called by :func:`napari_sam2.pipeline.segment_movie` when the
axes hold a Z; package-private."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ..io.prompt_csv import as_box_prompts, as_point_prompts
from .frames import frame_source_for
from .prompts import BoxPrompt, PointPrompt
from .segment_options import Segmentation
from .session import VideoSession
from .volume_divisions import divisions_by_default
from .volume_time import VolumeTimeSession
from .volumes import propagate_along_z, z_settings

__all__ = ["segment_volume"]

Progress = Callable[[int], tuple[Callable[[int], None], Callable[[], None]]]


def detect_volume_axes(movie: Any, axes: str | None) -> str | None:
    """The 3-D axes of a movie: ``axes`` when it has a Z, else (``axes`` None) those of a TIFF
    whose metadata name a Z axis with more than one slice; None for 2-D movies."""
    if axes is not None:
        return axes.strip().upper() if "Z" in axes.upper() else None
    if not isinstance(movie, (str, os.PathLike)):
        return None
    from ._axes import _axes_from_tiff
    from ._tiff_pages import _open_tiff

    try:
        arr, tif, series_axes, _ = _open_tiff(movie)
    except (OSError, ValueError):
        return None  # the 2-D path reports the problem
    shape = tuple(int(n) for n in arr.shape)
    if tif is not None:
        tif.close()
    found = _axes_from_tiff(series_axes, shape)
    if found is None or "Z" not in found or "1" in found or shape[found.index("Z")] < 2:
        return None
    return found


def _grouped(points: list[PointPrompt], boxes: list[BoxPrompt], where: Callable) -> dict:
    """{(frame, z, obj_id): (box or None, [clicks])} with (frame, z) from ``where``."""
    pairs: dict[tuple[int, int, int], tuple[BoxPrompt | None, list[PointPrompt]]] = {}
    for b in boxes:
        key = (*where(b), b.obj_id)
        pairs[key] = (b, pairs.get(key, (None, []))[1])
    for p in points:
        key = (*where(p), p.obj_id)
        box, pts = pairs.get(key, (None, []))
        pairs[key] = (box, [*pts, p])
    return pairs


def _check_range(prompt, value: int, n: int, what: str) -> None:
    if not 0 <= value < n:
        where = f"{prompt.source}: " if prompt.source else ""
        raise ValueError(f"{where}{what} {value} is out of range: the data have {what} 0..{n - 1}")


def segment_volume(
    movie: Any,
    prompts: Any,
    *,
    model,
    axes: str,
    boxes: Any = None,
    settings=None,
    direction: str = "both",
    channel: int | None = None,
    contrast_limits: tuple[float, float] | None = None,
    precision: str = "fp32",
    out: np.ndarray | None = None,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    guard: bool = True,
    zoom: str = "auto",
    cell_diameter: float | None = None,
    divisions: bool | None = None,
    fit: bool = True,
) -> Segmentation:
    """Segment a z-stack along z, or follow 3-D cells through time (see ``segment_movie``).

    Clicks and boxes carry ``z`` (their slice); for a z-stack a prompt without ``z`` uses its
    ``frame`` as the slice (napari's Points CSV of a 3-D layer). For 3-D + time they need both
    ``frame`` and ``z``.

    Args:
        movie: (Z, [C,] Y, X) or (T, Z, [C,] Y, X) data (array or TIFF path) as ``axes`` says.
        prompts: clicks in any form ``segment_movie`` accepts, with ``z``.
        model: a loaded SAM2Model.
        axes: e.g. ``"ZYX"``, ``"CZYX"``, ``"TZYX"``, ``"TCZYX"``.
        boxes: boxes with ``z``.
        settings: memory-bank settings.
        direction: ``"forward"`` (increasing z / time), ``"backward"`` or ``"both"``.
        channel: channel the model sees.
        contrast_limits: (lo, hi) intensity window.
        precision: ``"fp32"`` or ``"bf16"``.
        out: optional integer array of the labels' shape to fill.
        cancel: a ``threading.Event`` that stops after the current slice / timepoint.
        progress: ``progress(total)`` -> (update(done), close()).
        guard: end objects along z where they end.
        zoom: ``"auto"`` (small cells run in windows that follow them) or ``"off"``.
        cell_diameter: typical cell diameter in y-x pixels for the windows (None: estimated
            around each first click).
        divisions: 3-D + time only: a cell whose 3-D mask holds two cells (fallen apart, or
            two bright cores) ends, its two halves go on as daughters with new ids
            (:mod:`napari_sam2.video.volume_divisions`). None (default): on for 3-D + time,
            off for z-stacks (:func:`~napari_sam2.video.volume_divisions.divisions_by_default`).
        fit: fit each object's masks along z to the image (:mod:`._volume_fit`); False keeps
            the model's masks.

    Returns:
        A :class:`~napari_sam2.video.segment_options.Segmentation`: (Z, Y, X) or
        (T, Z, Y, X) uint16 labels (``out`` when given) and the lineage
        ``{daughter: mother}`` of the divisions found (empty without ``divisions``).
    """
    points, box_list = as_point_prompts(prompts), as_box_prompts(boxes)
    if not points and not box_list:
        raise ValueError("no prompts: give at least one click or box with its z slice")
    if divisions is None:
        divisions = divisions_by_default(axes)
    if "T" in axes.upper():
        session = VolumeTimeSession(
            model,
            movie,
            axes=axes,
            channel=channel,
            contrast_limits=contrast_limits,
            settings=settings,
            precision=precision,
            guard=guard,
            out=out,
            zoom=zoom,
            cell_diameter=cell_diameter,
            divisions=divisions,
            fit=fit,
        )
        try:
            for p in [*points, *box_list]:
                if p.z is None:
                    where = f"{p.source}: " if p.source else ""
                    raise ValueError(
                        f"{where}a prompt on 3-D + time data needs its slice z beside its frame "
                        "(a 'z' key or column, or a napari Points CSV of the 4-D layer)"
                    )
                _check_range(p, p.frame, session.num_frames, "frame")
                _check_range(p, p.z, session.num_slices, "z")
            pairs = _grouped(points, box_list, lambda p: (p.frame, p.z))
            for (t, z, obj), (box, pts) in sorted(pairs.items()):
                if box is not None:
                    session.add_box(t, z, obj, (box.y0, box.x0, box.y1, box.x1), fill_z=False)
                if pts:
                    clicks, signs = [(p.y, p.x) for p in pts], [int(p.positive) for p in pts]
                    session.add_points(t, z, obj, clicks, signs, fill_z=False)
            for t in sorted({t for t, _, _ in pairs}):  # one fill per prompted timepoint
                session.fill_z(t)
            total = session.num_frames
            _run(session.propagate(direction), total, cancel, progress)
            return Segmentation(session.labels(), dict(session.lineage))
        finally:
            session.close()
    if divisions:
        raise ValueError(
            f"divisions need a time axis: axes {axes!r} are a z-stack (use 'TZYX' for 3-D + time)"
        )
    frames = frame_source_for(
        movie, model.config, axes=axes, channel=channel, contrast_limits=contrast_limits
    )
    try:
        if frames.frame_axis != "Z":
            raise ValueError(f"axes {axes!r} hold no z axis with more than one slice")
        nz = frames.num_frames
        session = VideoSession(
            model,
            frames,
            settings=z_settings(settings, nz),
            precision=precision,
            zoom=zoom,
            cell_diameter=cell_diameter,
            fit_masks=False,  # fitted in 3-D afterwards when asked
        )
        if out is not None:
            session.set_label_volume(out)
        pairs = _grouped(points, box_list, lambda p: (0, p.frame if p.z is None else p.z))
        starts: dict[int, int] = {}
        for (_, z, obj), (box, pts) in sorted(pairs.items()):
            _check_range(box or pts[0], z, nz, "z")
            if box is not None:
                session.add_box(z, obj, (box.y0, box.x0, box.y1, box.x1))
            if pts:
                session.add_points(
                    z, obj, [(p.y, p.x) for p in pts], [int(p.positive) for p in pts]
                )
            starts.setdefault(obj, z)
        total = nz * len(set(starts.values()))
        _run(propagate_along_z(session, starts, direction, guard, fit=fit), total, cancel, progress)
        return Segmentation(session.labels())
    finally:
        frames.close()


def _run(steps, total: int, cancel: threading.Event | None, progress: Progress | None) -> None:
    update, close = progress(total) if progress is not None else ((lambda done: None), None)
    try:
        for done, _ in enumerate(steps, start=1):
            update(min(done, total))
            if cancel is not None and cancel.is_set():
                steps.close()
                break
    finally:
        if close is not None:
            close()
