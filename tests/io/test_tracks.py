"""Tests for napari_sam2.io.tracks: napari Tracks data with gaps and divisions."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.io.tracks import frame_centroids, tracks_from_labels


def test_frame_centroids():
    frame = np.zeros((4, 5), np.int32)
    frame[0:2, 0:2] = 3  # centroid (0.5, 0.5)
    frame[3, 1:5] = 7  # centroid (3, 2.5)
    ids, cents = frame_centroids(frame)
    np.testing.assert_array_equal(ids, [3, 7])
    np.testing.assert_allclose(cents, [[0.5, 0.5], [3.0, 2.5]])


def test_gaps_and_divisions():
    T = 6
    lab = np.zeros((T, 10, 10), np.uint16)
    for t in range(T):
        if t != 2:
            lab[t, 0, t] = 1  # object 1 moves right, missing at frame 2
        if t < 3:
            lab[t, 5:7, 5:7] = 2  # mother, centroid (5.5, 5.5)
        else:
            lab[t, 4, 4] = 3  # daughters
            lab[t, 8, 8] = 4
    data, graph = tracks_from_labels(lab, {3: 2, 4: 2})
    expected = [
        [1, 0, 0, 0],
        [1, 1, 0, 1],
        [2, 0, 5.5, 5.5],
        [2, 1, 5.5, 5.5],
        [2, 2, 5.5, 5.5],
        [3, 3, 4, 4],
        [3, 4, 4, 4],
        [3, 5, 4, 4],
        [4, 3, 8, 8],
        [4, 4, 8, 8],
        [4, 5, 8, 8],
        [5, 3, 0, 3],  # reappearance of object 1 after the gap -> new track 5
        [5, 4, 0, 4],
        [5, 5, 0, 5],
    ]
    np.testing.assert_allclose(data, expected)
    assert data.shape == (14, 4) and data.dtype == np.float64
    assert graph == {3: [2], 4: [2]}

    _, linked = tracks_from_labels(lab, {3: 2, 4: 2}, link_gaps=True)
    assert linked == {3: [2], 4: [2], 5: [1]}


def test_mother_keeps_id_through_division():
    lab = np.zeros((4, 6, 6), np.int32)
    lab[:, 0, 0] = 1
    lab[2:, 5, 5] = 2
    data, graph = tracks_from_labels(lab, {2: 1})
    # Track 1 ends at frame 1; its continuation (track 3) and daughter 2 start at 2.
    np.testing.assert_array_equal(np.unique(data[:, 0]), [1, 2, 3])
    np.testing.assert_array_equal(data[data[:, 0] == 1][:, 1], [0, 1])
    np.testing.assert_array_equal(data[data[:, 0] == 3][:, 1], [2, 3])
    assert graph == {2: [1], 3: [1]}


def test_3d_and_empty():
    lab = np.zeros((2, 3, 4, 4), np.uint8)
    lab[:, 0:2, 1, 1] = 9
    data, graph = tracks_from_labels(lab)
    np.testing.assert_allclose(data, [[9, 0, 0.5, 1, 1], [9, 1, 0.5, 1, 1]])
    assert graph == {}

    empty, g = tracks_from_labels(np.zeros((3, 4, 4), np.uint8))
    assert empty.shape == (0, 4) and g == {}


def test_invalid_labels():
    with pytest.raises(ValueError):
        tracks_from_labels(np.zeros((3, 4, 4), np.float32))
    with pytest.raises(ValueError):
        tracks_from_labels(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError):
        tracks_from_labels(np.full((2, 4, 4), -2, np.int8))


def test_napari_accepts_tracks_data():
    napari_tracks = pytest.importorskip("napari.layers").Tracks
    lab = np.zeros((4, 6, 6), np.int32)
    lab[:2, 1, 1] = 1
    lab[2:, 1, 1] = 2
    lab[2:, 4, 4] = 3
    data, graph = tracks_from_labels(lab, {2: 1, 3: 1})
    layer = napari_tracks(data, graph=graph)
    assert layer.data.shape == (6, 4)
    assert layer.graph == {2: [1], 3: [1]}
