"""Tiled segmentation (segment_movie(tile=...)): one zoomed-in region of interest per tile."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2 import VideoSession, segment_movie
from napari_sam2.video.frames import frame_source_for
from napari_sam2.video.prompts import BoxPrompt, PointPrompt
from napari_sam2.video.tiling import plan_tiles, tile_frames, tile_seed


def _pt(frame, y, x, obj, positive=True):
    return PointPrompt(frame, float(y), float(x), obj, positive, "")


def test_objects_go_to_the_tile_of_their_anchor_with_margin_and_grown_regions():
    points = [
        _pt(0, 10, 10, 1),
        _pt(0, 70, 100, 2),
        _pt(3, 40, 40, 2),  # a later click of object 2 elsewhere: grows its tile's region
        _pt(0, 12, 60, 3, positive=False),  # negative first, positive on the same frame wins
        _pt(0, 12, 20, 3),
    ]
    boxes = [BoxPrompt(2, 60.0, 64.0, 80.0, 90.0, 4, "")]  # centre (70, 77) -> tile (1, 1)
    tiles = plan_tiles(points, boxes, None, 0, (100, 120), tile=64, margin=8)
    by_obj = {o: t for t in tiles for o in t.obj_ids}
    assert by_obj[1] is by_obj[3]  # both anchored in tile (0, 0)
    assert by_obj[1].roi == (0, 0, 72, 72)  # core 0..64 plus 8 px, clipped at 0
    assert by_obj[2] is by_obj[4]
    # tile (1, 1): core (64, 64, 100, 120), grown to object 2's click at (40, 40), plus margin
    assert by_obj[2].roi == (32, 32, 100, 120)
    assert [p.obj_id for p in by_obj[2].points] == [2, 2] and by_obj[2].boxes == boxes
    assert tile_frames(by_obj[2], 0) == [0, 2, 3]
    with pytest.raises(ValueError, match="at least 16"):
        plan_tiles(points, boxes, None, 0, (100, 120), tile=8, margin=0)
    with pytest.raises(ValueError, match="margin"):
        plan_tiles(points, boxes, None, 0, (100, 120), tile=64, margin=-1)


def test_seed_labels_anchor_at_their_centroid_and_are_split_per_tile():
    seed = np.zeros((100, 120), np.uint16)
    seed[5:15, 5:15] = 7
    seed[80:95, 100:118] = 9
    tiles = plan_tiles([_pt(1, 20, 20, 7)], [], seed, 2, (100, 120), tile=64, margin=0)
    assert [t.obj_ids for t in tiles] == [[7], [9]]
    assert tiles[0].seed_ids == [7] and tile_frames(tiles[0], 2) == [1, 2]
    part = tile_seed(seed, tiles[1])
    assert set(np.unique(part)) == {0, 9} and (part == 9).sum() == (seed == 9).sum()


def test_tiled_movie_equals_one_roi_session_per_tile(model, movie):
    prompts = [(0, 16, 18, 1), (0, 32, 44, 2), (0, 40, 60, 3)]
    done = []
    labels = segment_movie(movie, prompts, model=model, direction="forward", tile=32,
                           tile_margin=8, progress=lambda d, n: done.append((d, n)))
    assert set(np.unique(labels)) - {0} <= {1, 2, 3} and len(np.unique(labels)) > 2
    assert done[-1] == (16, 16)  # 2 tiles with objects x 8 frames

    # the same by hand: a session per tile on one frame source (one intensity window)
    points = [_pt(t, y, x, o) for t, y, x, o in prompts]
    plan = plan_tiles(points, [], None, 0, movie.shape[1:], tile=32, margin=8)
    assert [t.obj_ids for t in plan] == [[1], [2, 3]]
    src = frame_source_for(movie, model.config, axes="TYX")
    expected = np.zeros(movie.shape, np.uint16)
    for t in plan:
        session = VideoSession(model, src, roi=t.roi)
        session.set_label_volume(expected)
        for p in t.points:
            session.add_points(p.frame, p.obj_id, [(p.y, p.x)], [1])
        for _ in session.propagate():
            pass
    src.close()
    np.testing.assert_array_equal(labels, expected)
    # each tile's objects stay inside its region
    y0, x0, y1, x1 = plan[0].roi
    outside = np.ones(movie.shape[1:], bool)
    outside[y0:y1, x0:x1] = False
    assert not (labels[:, outside] == 1).any()


def test_tile_refuses_what_it_cannot_combine_and_bad_input(model, movie):
    prompts = [(0, 16, 18, 1)]
    for kw in ({"roi": (0, 0, 32, 32)}, {"find_cells": 0}, {"divisions": True}):
        with pytest.raises(ValueError, match="tile cannot be combined"):
            segment_movie(movie, prompts, model=model, tile=32, **kw)
    with pytest.raises(ValueError, match="outside the image"):
        segment_movie(movie, [(0, 100, 18, 1)], model=model, tile=32)
    with pytest.raises(ValueError, match="no prompts"):
        segment_movie(movie, [], model=model, tile=32)


def test_tiled_seed_labels_and_cancel(model, movie):
    import threading

    seed = np.zeros(movie.shape[1:], np.uint16)
    seed[10:20, 12:24] = 4
    seed[28:36, 40:50] = 5
    labels = segment_movie(movie, None, model=model, seed_labels=seed, tile=32, tile_margin=4)
    assert {4, 5} <= set(np.unique(labels[0]))
    stop = threading.Event()
    stop.set()
    empty = segment_movie(movie, None, model=model, seed_labels=seed, tile=32, cancel=stop)
    assert not empty.any()
