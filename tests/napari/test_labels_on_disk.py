"""The widget's Labels layer on a memory-mapped label TIFF: on request (``labels_file``) or
above the size threshold; napari shows the memory map directly and propagation fills the file."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _open(viewer, movie, model):
    from napari_sam2._napari import open_widget

    layer = viewer.add_image(movie, name="movie")
    widget = open_widget(viewer)
    widget.controller.model.set_model(model)
    widget.controller.wait(timeout=60)
    return layer, widget


def test_labels_layer_on_a_requested_label_tiff(fresh_viewer, small_movie, tiny_model, tmp_path):
    from napari_sam2.io.tiff import load_labels_tiff

    path = tmp_path / "labels.tif"
    layer, widget = _open(fresh_viewer, small_movie[:4], tiny_model)
    widget.controller.labels_file = str(path)
    # made before the request: make it again
    fresh_viewer.layers.remove(widget.controller.labels_layer)
    widget.controller.set_image_layer(layer)
    data = widget.controller.labels_layer.data
    assert isinstance(data, np.memmap) and data.filename == str(path)
    widget.controller.prompts.add_point((0, 64, 64), wait=True)
    widget.controller.propagation.run("forward", wait=True)
    vol = widget.controller.volume
    assert vol is data and all(vol[t].any() for t in range(4))
    data.flush()
    np.testing.assert_array_equal(load_labels_tiff(path), np.asarray(vol))


def test_labels_layer_goes_to_disk_above_the_threshold(
    fresh_viewer, small_movie, tiny_model, monkeypatch
):
    from napari_sam2.video import _disk_volume

    monkeypatch.setattr(_disk_volume, "DISK_THRESHOLD_BYTES", 1000)
    with pytest.warns(UserWarning, match="kept on disk"):
        _, widget = _open(fresh_viewer, small_movie[:3], tiny_model)
    assert isinstance(widget.controller.labels_layer.data, np.memmap)
