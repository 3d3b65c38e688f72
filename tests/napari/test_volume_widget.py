"""The "SAM 2 3-D" widget on 3-D and 4-D Image layers (pytest-qt, shared hidden viewer, random
tiny model).

Run under a virtual X server:
    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
        python -m pytest tests/napari/test_volume_widget.py -q
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _movie(t=3, z=5, h=32, w=40) -> np.ndarray:
    zz, yy, xx = np.mgrid[:z, :h, :w]
    vol = np.full((z, h, w), 100.0)
    vol[((zz - 2) * 3) ** 2 + (yy - 16) ** 2 + (xx - 20) ** 2 < 64] = 1000.0
    return np.stack([vol] * t).astype(np.uint16)


def test_4d_layer_axes_clicks_and_both(fresh_viewer, tiny_model, qtbot):
    from napari_sam2._napari._volume_widget import VolumeWidget

    viewer = fresh_viewer
    layer = viewer.add_image(_movie(), name="cells")  # napari's default axis labels
    widget = VolumeWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SAM 2 3-D")
    assert widget.layer_combo.currentText() == "cells"
    assert widget.axes_combo.currentText() == "TZYX"
    assert "does not say" in widget.axes_note.text()  # it asks which axis is which
    c = widget.controller
    c.model = tiny_model
    with pytest.raises(ValueError, match="does not say which axis is z and which is time"):
        c.set_image_layer(layer)
    widget._use_layer()  # with the axes shown in the widget
    assert c.axes == "TZYX" and c.labels_layer.data.shape == layer.data.shape
    assert c.points_layer.ndim == 4

    viewer.dims.set_point(0, 1)  # timepoint 1
    c.points_layer.add(np.array([[1, 2, 16, 20]]))  # a click on slice 2 of timepoint 1
    labels = c.labels_layer.data
    assert (labels[1, 2] == 1).any() and not (labels[1, [0, 1, 3, 4]] == 1).any()

    c.run("through z")
    qtbot.waitUntil(lambda: not c.busy, timeout=60_000)
    assert (labels[1] == 1).any(axis=(1, 2)).sum() >= 1

    c.run("through time")  # followed on its slice through time
    qtbot.waitUntil(lambda: not c.busy, timeout=60_000)
    assert all((labels[t] == 1).any() for t in range(3))
    assert c.labels_layer.data.shape == layer.data.shape

    c.run("both")
    qtbot.waitUntil(lambda: not c.busy, timeout=60_000)
    assert all((labels[t] == 1).any() for t in range(3))  # followed through time
    assert "done" in c.status

    viewer.dims.ndisplay = 3  # the 3-D view shows the result
    viewer.dims.ndisplay = 2


def test_labelled_layers_and_zstack(fresh_viewer, tiny_model, tmp_path):
    from napari_sam2._napari._volume import VolumeController, guess_axes

    viewer = fresh_viewer
    zt = viewer.add_image(
        _movie().transpose(1, 0, 2, 3), name="zt", axis_labels=("z", "t", "y", "x")
    )
    assert guess_axes(zt) == ("ZTYX", True)
    stack = viewer.add_image(_movie()[0], name="stack", axis_labels=("z", "y", "x"))
    c = VolumeController(viewer, tiny_model)
    assert c.set_image_layer(stack) == "ZYX"
    mask = c.add_point([2, 16, 20])
    assert mask.shape == (32, 40) and mask.any()
    c.run("through z", wait=True)
    assert c.labels_layer.data.shape == (5, 32, 40) and (c.labels_layer.data == 1).any()
    with pytest.raises(ValueError, match="no time axis"):
        c.run("both", wait=True)
    out = c.export(str(tmp_path / "z.tif"), voxel_size=(2.0, 0.5, 0.5))
    assert out.exists()
    assert c.set_image_layer(zt) == "ZTYX"  # time second: the labels keep the layer's order
    c.add_point([2, 0, 16, 20])
    c.run("both", wait=True)
    assert c.labels_layer.data.shape == zt.data.shape
    assert all((c.labels_layer.data[:, t] == 1).any() for t in range(3))
