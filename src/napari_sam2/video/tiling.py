"""Tiled segmentation of large frames with small cells (``segment_movie(..., tile=S)``).

A model sees its whole input at a fixed size (256 px for the bundled micro model, 1024 px for
Meta's), so on a large frame small cells shrink to a few pixels. Tiling gives each S x S tile of
the frame its own region of interest (the tile plus ``margin`` pixels of context on every
side, grown to cover all prompts of its objects), so the model sees it zoomed in. Each object
belongs to the tile holding its *anchor*: the first click of its earliest prompted frame, else
the centre of its earliest box, else the centroid of its seed label. Tiles run one after another
as ordinary :class:`~napari_sam2.video.session.VideoSession` s on one shared frame source (one
intensity window for the whole movie) and write into one label volume; as everywhere, a
session only writes pixels that are background or its own objects', so tiles never overwrite
each other's cells. An object that moves out of its tile's region is cut at the region's edge:
choose the margin larger than the distance a cell travels.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .prompts import BoxPrompt, PointPrompt

__all__ = ["Tile", "plan_tiles", "segment_tiled", "tile_frames", "tile_seed"]


@dataclass
class Tile:
    """One tile's share of the work.

    Attributes:
        roi: (y0, x0, y1, x1) region of interest in frame pixels (end exclusive).
        points: the clicks of the tile's objects.
        boxes: the boxes of the tile's objects.
        seed_ids: label values of the seed image that belong to this tile.
    """

    roi: tuple[int, int, int, int]
    points: list[PointPrompt] = field(default_factory=list)
    boxes: list[BoxPrompt] = field(default_factory=list)
    seed_ids: list[int] = field(default_factory=list)

    @property
    def obj_ids(self) -> list[int]:
        ids = {p.obj_id for p in self.points} | {b.obj_id for b in self.boxes}
        return sorted(ids | set(self.seed_ids))


def plan_tiles(
    points: Sequence[PointPrompt],
    boxes: Sequence[BoxPrompt],
    seed: np.ndarray | None,
    seed_frame: int,
    shape: tuple[int, int],
    tile: int,
    margin: int,
) -> list[Tile]:
    """Group objects by tile and give each tile with objects its region of interest.

    Args:
        points, boxes: checked prompts (frame pixels).
        seed: (H, W) seed label image or None.
        seed_frame: the frame the seed labels are on.
        shape: (H, W) of the frames.
        tile: tile side in pixels (>= 16).
        margin: context added around each tile core, in pixels (>= 0).

    Returns:
        The tiles that hold at least one object, in row-major order.
    """
    if int(tile) < 16:
        raise ValueError(f"tile must be at least 16 px, got {tile}")
    if int(margin) < 0:
        raise ValueError(f"tile margin must be >= 0 px, got {margin}")
    h, w = shape
    # per object: its anchor (frame, kind, y, x) -- the smallest wins -- and the extent
    # (y0, x0, y1, x1) of everything it was given
    anchor: dict[int, tuple[int, int, float, float]] = {}
    extent: dict[int, tuple[float, float, float, float]] = {}

    def note(obj: int, key: tuple[int, int, float, float], box: tuple) -> None:
        anchor[obj] = min(anchor.get(obj, key), key)
        e = extent.get(obj, box)
        extent[obj] = (min(e[0], box[0]), min(e[1], box[1]), max(e[2], box[2]),
                       max(e[3], box[3]))

    for p in points:
        note(p.obj_id, (p.frame, 0 if p.positive else 2, p.y, p.x), (p.y, p.x, p.y, p.x))
    for b in boxes:
        centre = ((b.y0 + b.y1) / 2, (b.x0 + b.x1) / 2)
        note(b.obj_id, (b.frame, 1, *centre), (b.y0, b.x0, b.y1, b.x1))
    seeded: set[int] = set()
    if seed is not None:
        from scipy import ndimage

        seeded = {int(i) for i in np.unique(seed) if i}
        ids = sorted(seeded)
        slices = ndimage.find_objects(seed)
        for obj, (cy, cx) in zip(ids, ndimage.center_of_mass(np.ones(seed.shape), seed, ids)):
            ys, xs = slices[obj - 1]
            note(obj, (seed_frame, 3, cy, cx), (ys.start, xs.start, ys.stop - 1, xs.stop - 1))
    tiles: dict[tuple[int, int], Tile] = {}
    home: dict[int, Tile] = {}
    for obj in sorted(anchor):
        _, _, ay, ax = anchor[obj]
        ty = min(max(int(ay // tile), 0), (h - 1) // tile)
        tx = min(max(int(ax // tile), 0), (w - 1) // tile)
        t = tiles.setdefault((ty, tx), Tile((ty * tile, tx * tile, min((ty + 1) * tile, h),
                                              min((tx + 1) * tile, w))))
        y0, x0, y1, x1 = t.roi
        e = extent[obj]
        t.roi = (min(y0, int(np.floor(e[0]))), min(x0, int(np.floor(e[1]))),
                 max(y1, int(np.floor(e[2])) + 1), max(x1, int(np.floor(e[3])) + 1))
        if obj in seeded:
            t.seed_ids.append(obj)
        home[obj] = t
    for p in points:
        home[p.obj_id].points.append(p)
    for b in boxes:
        home[b.obj_id].boxes.append(b)
    out = []
    for key in sorted(tiles):
        t = tiles[key]
        y0, x0, y1, x1 = t.roi
        t.roi = (max(y0 - margin, 0), max(x0 - margin, 0), min(y1 + margin, h),
                 min(x1 + margin, w))
        out.append(t)
    return out


def tile_seed(seed: np.ndarray | None, t: Tile) -> np.ndarray | None:
    """The seed label image restricted to a tile's objects (None if it has none)."""
    if seed is None or not t.seed_ids:
        return None
    return np.where(np.isin(seed, t.seed_ids), seed, 0).astype(seed.dtype)


def tile_frames(t: Tile, seed_frame: int) -> list[int]:
    """Frames a tile's objects are prompted on."""
    frames = {p.frame for p in t.points} | {b.frame for b in t.boxes}
    if t.seed_ids:
        frames.add(seed_frame)
    return sorted(frames)


def segment_tiled(
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
    progress: Any,
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
    """:func:`~napari_sam2.pipeline.segment_movie` with ``tile``: one session per tile with
    objects, one after another, on one frame source (one intensity window) and one label
    volume. Arguments as in ``segment_movie``; ``margin`` is its ``tile_margin``.

    Returns:
        (T, Y, X) labels (``out`` when given).
    """
    from ..io.prompt_csv import as_box_prompts, as_point_prompts
    from ..io.seed_labels import seed_label_image
    from ..weights.load import resolve_model
    from .frames import frame_source_for
    from .movie_run import (
        build_session,
        check_prompts,
        check_seed_shape,
        progress_callback,
        propagate_frames,
    )

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
        points, box_list = check_prompts(points, box_list, n, h, w)
        check_seed_shape(seed, (frames.height, frames.width))
        plan = plan_tiles(points, box_list, seed, seed_frame, (h, w), int(tile), int(margin))
        ids = [p.obj_id for p in points] + [b.obj_id for b in box_list]
        if seed is not None:
            ids.append(int(seed.max()))
        if out is None:
            from ._disk_volume import new_label_volume

            dtype = np.uint32 if max(ids) > 65535 else np.uint16
            out = new_label_volume((n, h, w), dtype, labels_path)
        total = 0
        for t in plan:
            prompted = tile_frames(t, seed_frame)
            total += {"forward": n - prompted[0], "backward": prompted[-1] + 1}.get(direction, n)
        update, close = progress_callback(progress, total, "propagating tiles")
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
