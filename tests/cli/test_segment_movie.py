"""The scripting API: segment_movie (in process, random-weight tiny model) and demo helpers."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import tifffile

import napari_sam2 as ns
from napari_sam2.cli.demo import interior_points, mean_iou, render_preview
from napari_sam2.io.prompt_csv import write_point_prompts
from napari_sam2.train.synthetic import make_movie

T, H, W = 5, 64, 64


@pytest.fixture(scope="module")
def tiny():
    import torch

    torch.manual_seed(0)
    return ns.load_model("test_tiny_256", device="cpu")


@pytest.fixture(scope="module")
def synth():
    return make_movie(kind="nuclei", n_frames=T, shape=(H, W), n_cells=3, seed=2)


def _clicks(labels0: np.ndarray) -> list[dict]:
    return [
        {"frame": 0, "y": y, "x": x, "obj_id": int(i)}
        for i, (y, x) in interior_points(labels0, min_area=5).items()
    ]


def test_public_api_exports():
    for name in ("segment_movie", "save_labels_tiff", "save_ctc", "measure"):
        assert name in ns.__all__
        assert callable(getattr(ns, name))


def test_segment_movie_dicts_tuples_boxes_and_progress(tiny, synth, tmp_path):
    clicks = _clicks(synth.labels[0])
    assert clicks
    calls = []
    labels = ns.segment_movie(
        synth.movie,
        clicks + [(0, 5.0, 5.0, 9, False)],  # a tuple (background click) for object 9 ...
        boxes=[(0, 2, 2, 30, 30, 9)],  # ... which also gets a box
        model=tiny,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert labels.shape == (T, H, W) and labels.dtype == np.uint16
    ids = {c["obj_id"] for c in clicks} | {9}
    assert set(np.unique(labels).tolist()) <= ids | {0}
    assert labels.any()
    assert calls == [(k, T) for k in range(1, T + 1)]

    # same result from a TIFF path and a prompt CSV
    movie_path = tmp_path / "movie.tif"
    tifffile.imwrite(movie_path, synth.movie, imagej=True, metadata={"axes": "TYX"})
    csv = write_point_prompts(tmp_path / "c.csv", clicks + [(0, 5, 5, 9, False)])
    again = ns.segment_movie(str(movie_path), csv, boxes=[(0, 2, 2, 30, 30, 9)], model=tiny)
    np.testing.assert_array_equal(again, labels)


def test_directions_touch_only_their_frames(tiny, synth):
    clicks = [dict(c, frame=2) for c in _clicks(synth.labels[2])]
    seen = []
    fwd = ns.segment_movie(
        synth.movie,
        clicks,
        model=tiny,
        direction="forward",
        progress=lambda d, t: seen.append(t),
    )
    assert seen[-1] == T - 2 and not fwd[:2].any()
    seen.clear()
    bwd = ns.segment_movie(
        synth.movie,
        clicks,
        model=tiny,
        direction="backward",
        progress=lambda d, t: seen.append(t),
    )
    assert seen[-1] == 3 and not bwd[3:].any()


def test_out_array_and_cancel(tiny, synth):
    out = np.zeros((T, H, W), np.uint32)
    cancel = threading.Event()

    def progress(done, total):
        if done == 2:
            cancel.set()

    result = ns.segment_movie(
        synth.movie,
        _clicks(synth.labels[0]),
        model=tiny,
        out=out,
        cancel=cancel,
        progress=progress,
    )
    assert result is out
    assert not out[2:].any()  # frames 0 and 1 done, the rest never reached


def test_prompt_errors(tiny, synth):
    with pytest.raises(ValueError, match=r"prompt 0: point \(y=64.6, x=3\) is outside"):
        ns.segment_movie(synth.movie, [(0, 64.6, 3, 1)], model=tiny)
    with pytest.raises(ValueError, match="prompt 0: frame 7 is out of range"):
        ns.segment_movie(synth.movie, [(7, 3, 3, 1)], model=tiny)
    with pytest.raises(ValueError, match="box 0: box .* lies outside"):
        ns.segment_movie(synth.movie, None, boxes=[(0, 70, 70, 80, 80, 1)], model=tiny)
    with pytest.raises(ValueError, match="no prompts"):
        ns.segment_movie(synth.movie, [], model=tiny)
    # half a pixel beyond the border (a click on the edge pixel in napari) is accepted
    labels = ns.segment_movie(synth.movie, [(0, 63.5, -0.5, 1)], model=tiny, direction="forward")
    assert labels.shape == (T, H, W)


def test_interior_points_lie_inside_concave_cells():
    lab = np.zeros((40, 40), np.int32)
    lab[5:35, 5:12] = 1  # a U shape: its centroid is in the empty middle
    lab[28:35, 5:35] = 1
    lab[5:35, 28:35] = 1
    lab[1:3, 1:3] = 2  # too small
    pts = interior_points(lab)
    assert set(pts) == {1}
    y, x = pts[1]
    assert lab[y, x] == 1
    ys, xs = np.nonzero(lab == 1)
    assert lab[int(round(ys.mean())), int(round(xs.mean()))] == 0


def test_mean_iou_and_preview():
    truth = np.zeros((2, 8, 8), np.uint16)
    truth[:, 2:6, 2:6] = 1
    pred = truth.copy()
    pred[1, 2:6, 2:4] = 0  # half of the object on frame 1
    assert mean_iou(pred, truth, [1]) == pytest.approx(0.75)
    assert np.isnan(mean_iou(pred, truth, [5]))
    rgb = render_preview(np.random.default_rng(0).random((3, 8, 8)), np.stack([truth[0]] * 3))
    assert rgb.shape == (8, 3 * 8 + 2 * 4, 3) and rgb.dtype == np.uint8


def test_segment_movie_seed_labels_divisions_and_lineage(tiny, synth, tmp_path):
    seed = synth.labels[2]
    ids = sorted(set(np.unique(seed).tolist()) - {0})
    labels, lineage = ns.segment_movie(
        synth.movie,
        model=tiny,
        seed_labels=seed,
        seed_frame=2,
        divisions=True,
        return_lineage=True,
    )
    assert labels.shape == (T, H, W) and isinstance(lineage, dict)
    assert sorted(set(np.unique(labels[2]).tolist()) - {0}) == ids
    for daughter, mother in lineage.items():  # daughters are new ids; mothers seeded or born
        assert daughter not in ids and (mother in ids or mother in lineage)
    # the same from a label-volume file, with a click for an extra object (backward compatible:
    # without return_lineage only the labels come back)
    path = tmp_path / "gt.tif"
    tifffile.imwrite(path, synth.labels.astype(np.uint16))
    again = ns.segment_movie(
        synth.movie,
        [(0, 5, 5, 99)],
        model=tiny,
        seed_labels=path,
        seed_frame=2,
        direction="forward",
    )
    assert isinstance(again, np.ndarray) and again.shape == (T, H, W)
    assert set(np.unique(again).tolist()) <= {0, 99, *ids}
    assert sorted(set(np.unique(again[2]).tolist()) - {0, 99}) == ids


def test_seed_label_image_forms_and_errors(tmp_path):
    from napari_sam2.io.seed_labels import seed_label_image

    vol = np.zeros((3, 8, 8), np.uint16)
    vol[1, 2:4, 2:4] = 5
    np.testing.assert_array_equal(seed_label_image(vol, 1), vol[1])
    np.testing.assert_array_equal(seed_label_image(vol[1], 7), vol[1])  # 2-D: any frame
    np.testing.assert_array_equal(seed_label_image(vol[1:2], 4), vol[1])  # (1, Y, X) stack
    np.save(tmp_path / "v.npy", vol)
    np.testing.assert_array_equal(seed_label_image(tmp_path / "v.npy", 1), vol[1])
    assert seed_label_image(vol[1] > 0).dtype == np.uint8
    with pytest.raises(ValueError, match="holds no label"):
        seed_label_image(vol, 0)
    with pytest.raises(ValueError, match="holds 3 frames"):
        seed_label_image(vol, 3)
    with pytest.raises(ValueError, match="integer labels"):
        seed_label_image(vol[1].astype(np.float32))
    with pytest.raises(ValueError, match="negative"):
        seed_label_image(-vol[1].astype(np.int32))
    with pytest.raises(ValueError, match="shape"):
        seed_label_image(np.zeros((2, 2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="seed labels not found"):
        seed_label_image(tmp_path / "missing.tif")
