"""Tests for napari_sam2.io.measurements against hand-computed values."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from napari_sam2.io.measurements import measure, save_measurements_csv


def _tiny():
    """2 frames of 5 x 6 labels and a matching movie.

    Frame 0: object 1 = rows 1-2, cols 2-4 (6 px); object 2 = pixel (4, 0).
    Frame 1: object 2 = rows 0-1, col 5 (2 px); object 1 absent.
    Movie value at (t, y, x) = 100 t + 10 y + x.
    """
    labels = np.zeros((2, 5, 6), np.uint16)
    labels[0, 1:3, 2:5] = 1
    labels[0, 4, 0] = 2
    labels[1, 0:2, 5] = 2
    t, y, x = np.indices(labels.shape)
    movie = (100 * t + 10 * y + x).astype(np.float32)
    return labels, movie


class _LazyMovie:
    """Array-like that only allows frame-by-frame access."""

    def __init__(self, data):
        self._data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.ndim = data.ndim
        self.accessed: list = []

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        assert isinstance(key, (int, np.integer)), f"non-frame access {key!r}"
        self.accessed.append(int(key))
        return self._data[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole movie was materialised")


def test_geometry_and_intensity_hand_computed():
    labels, movie = _tiny()
    lazy_labels, lazy_movie = _LazyMovie(labels), _LazyMovie(movie)
    tab = measure(lazy_labels, lazy_movie)
    assert lazy_movie.accessed == [0, 1] and lazy_labels.accessed == [0, 1]
    assert list(tab) == [
        "frame", "obj_id", "area", "centroid-0", "centroid-1",
        "bbox-0", "bbox-1", "bbox-2", "bbox-3", "mean_intensity", "max_intensity",
    ]  # fmt: skip
    np.testing.assert_array_equal(tab["frame"], [0, 0, 1])
    np.testing.assert_array_equal(tab["obj_id"], [1, 2, 2])
    np.testing.assert_allclose(tab["area"], [6, 1, 2])
    np.testing.assert_allclose(tab["centroid-0"], [1.5, 4.0, 0.5])
    np.testing.assert_allclose(tab["centroid-1"], [3.0, 0.0, 5.0])
    bbox = np.stack([tab[f"bbox-{i}"] for i in range(4)], axis=1)
    np.testing.assert_array_equal(bbox, [[1, 2, 3, 5], [4, 0, 5, 1], [0, 5, 2, 6]])
    # object 1, frame 0: values 12,13,14,22,23,24 -> mean 18, max 24
    # object 2, frame 0: 40; frame 1: 105, 115 -> mean 110, max 115
    np.testing.assert_allclose(tab["mean_intensity"], [18.0, 40.0, 110.0])
    np.testing.assert_allclose(tab["max_intensity"], [24.0, 40.0, 115.0])
    assert tab["frame"].dtype == np.int64 and tab["bbox-0"].dtype == np.int64
    assert tab["area"].dtype == np.float64
    assert "score" not in tab


def test_channels_last_and_channel_axis_1_agree():
    labels, movie = _tiny()
    multi = np.stack([movie, 2 * movie + 1], axis=-1)  # (T, Y, X, C)
    last = measure(labels, multi)
    first = measure(labels, np.moveaxis(multi, -1, 1), channel_axis=1)  # (T, C, Y, X)
    assert list(last) == list(first)
    for key in last:
        np.testing.assert_allclose(last[key], first[key])
    np.testing.assert_allclose(last["mean_intensity-0"], [18.0, 40.0, 110.0])
    np.testing.assert_allclose(last["mean_intensity-1"], [37.0, 81.0, 221.0])
    np.testing.assert_allclose(last["max_intensity-1"], [49.0, 81.0, 231.0])
    assert "mean_intensity" not in last


def test_scores_column_and_no_movie():
    labels, _ = _tiny()
    tab = measure(labels, scores={(0, 1): 0.9, (1, 2): 0.25, (5, 5): 1.0})
    assert "mean_intensity" not in tab
    np.testing.assert_allclose(tab["score"], [0.9, np.nan, 0.25])


def test_single_frame_3d_and_empty():
    labels, movie = _tiny()
    one = measure(labels[0], movie[0])
    np.testing.assert_array_equal(one["frame"], [0, 0])
    np.testing.assert_allclose(one["mean_intensity"], [18.0, 40.0])

    vol = np.zeros((1, 2, 3, 3), np.int32)
    vol[0, :, 0, 0] = 4
    tab3 = measure(vol)
    assert [k for k in tab3 if k.startswith("bbox")] == [f"bbox-{i}" for i in range(6)]
    np.testing.assert_allclose(
        [tab3["area"][0], tab3["centroid-0"][0], tab3["centroid-2"][0]], [2, 0.5, 0]
    )

    empty = measure(np.zeros((3, 4, 4), np.uint8), np.zeros((3, 4, 4)), scores={})
    assert all(len(v) == 0 for v in empty.values())
    assert "mean_intensity" in empty and "score" in empty


@pytest.mark.parametrize(
    ("labels", "movie", "kwargs"),
    [
        (np.zeros((2, 4, 4), np.float32), None, {}),
        (np.zeros((2, 4, 4), np.int32), np.zeros((2, 4, 5)), {}),
        (np.zeros((2, 4, 4), np.int32), np.zeros((3, 4, 4)), {}),
        (np.zeros((2, 4, 4), np.int32), np.zeros((2, 4, 4, 2)), {"channel_axis": 0}),
        (np.full((2, 4, 4), -1, np.int32), None, {}),
    ],
)
def test_invalid_inputs(labels, movie, kwargs):
    with pytest.raises(ValueError):
        measure(labels, movie, **kwargs)


def test_csv_roundtrip(tmp_path):
    labels, movie = _tiny()
    tab = measure(labels, movie, scores={(0, 1): 0.125})
    path = save_measurements_csv(tmp_path / "m.csv", tab)
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(tab)
    assert len(rows) == 4
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["frame"] == "0" and first["obj_id"] == "1" and first["bbox-3"] == "5"
    assert float(first["centroid-0"]) == 1.5 and float(first["score"]) == 0.125
    second = dict(zip(rows[0], rows[2], strict=True))
    assert second["score"] == ""  # NaN -> empty cell
    for key in tab:
        col = [math.nan if r[rows[0].index(key)] == "" else float(r[rows[0].index(key)])
               for r in rows[1:]]  # fmt: skip
        np.testing.assert_allclose(col, tab[key].astype(float))


def test_csv_rejects_ragged_and_is_atomic(tmp_path, monkeypatch):
    with pytest.raises(ValueError):
        save_measurements_csv(tmp_path / "bad.csv", {"a": np.zeros(2), "b": np.zeros(3)})
    path = tmp_path / "m.csv"
    save_measurements_csv(path, {"a": np.arange(3)})
    before = path.read_bytes()

    class _Boom:
        def __init__(self, value):
            self.value = value

        def __repr__(self):
            raise RuntimeError("boom")

    # A value that fails to format half-way through the rows.
    with pytest.raises(RuntimeError, match="boom"):
        save_measurements_csv(path, {"a": np.array([1, _Boom(2)], dtype=object)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]
