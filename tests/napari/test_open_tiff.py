"""Opening TIFFs with the plugin installed (File > Open and ``viewer.open``).

napari asks the user to pick a reader whenever two plugins' filename patterns match a file
(``MultipleReaderError`` in ``viewer.open``, a reader-choice dialog in File > Open). napari's own
reader claims every ``*.tif``, so the plugin's reader must not match a plain movie TIFF.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

pytestmark = pytest.mark.gui


@pytest.fixture
def movie_tif(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "embryo_t001.tif"
    tifffile.imwrite(path, rng.integers(0, 4000, (5, 48, 64), dtype=np.uint16), imagej=True)
    return path


def test_plain_movie_tiff_has_one_reader(movie_tif):
    from napari.plugins import _initialize_plugins, _npe2

    _initialize_plugins()
    readers = _npe2.get_readers(str(movie_tif))
    assert list(readers) == ["napari"], readers
    for name in ("movie.tif", "Movie.TIFF", "cells_t01.tiff", "stack.tif"):
        assert "napari-sam2" not in _npe2.get_readers(name), name


def test_label_tiff_names_reach_the_plugin_reader():
    from napari.plugins import _initialize_plugins, _npe2

    _initialize_plugins()
    for name in ("labels.tif", "movie_labels.tiff", "mask000.tif", "man_seg012.tif"):
        assert "napari-sam2" in _npe2.get_readers(name), name


def test_viewer_open_plain_movie_without_error(fresh_viewer, movie_tif):
    # plugin=None: let napari choose, as File > Open does (the default, "napari", would not ask)
    layers = fresh_viewer.open(str(movie_tif), plugin=None)
    assert len(layers) == 1
    assert layers[0]._type_string == "image"
    assert layers[0].data.shape == (5, 48, 64)


def test_file_open_shows_no_reader_dialog(fresh_viewer, movie_tif, monkeypatch, qtbot):
    """The File > Open path (QtViewer._qt_open) opens the movie without the choice dialog."""
    import napari._qt.qt_viewer as qt_viewer

    dialogs: list[object] = []
    monkeypatch.setattr(qt_viewer, "handle_gui_reading", lambda *a, **k: dialogs.append(a))
    fresh_viewer.window._qt_viewer._qt_open([str(movie_tif)], stack=False)
    qtbot.wait(10)
    assert dialogs == []
    assert [layer.name for layer in fresh_viewer.layers] == ["embryo_t001"]
    assert fresh_viewer.layers[0].data.shape == (5, 48, 64)


def test_label_tiff_opens_as_labels_with_the_plugin(fresh_viewer, tmp_path):
    from napari_sam2.io.tiff import save_labels_tiff

    labels = np.zeros((3, 32, 40), np.uint16)
    labels[:, 5:15, 8:20] = 1
    labels[1:, 20:28, 25:35] = 2
    path = save_labels_tiff(tmp_path / "run_labels.tif", labels)
    layers = fresh_viewer.open(str(path), plugin="napari-sam2")
    assert [layer._type_string for layer in layers] == ["labels"]
    np.testing.assert_array_equal(np.asarray(layers[0].data), labels)
