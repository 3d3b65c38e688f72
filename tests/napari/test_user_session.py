"""The widget driven as a user drives it, with the bundled micro model and ground truth.

Opened through the plugin manifest; the model loaded by pressing "Load"; cells clicked with
mouse events sent to the canvas (Qt events on the vispy canvas widget, mapped from image pixels
through the layer's own transform); shortcuts sent as key events; "Propagate" pressed with
``qtbot``. The masks are compared with the synthetic movie's exact ground truth.
"""

from __future__ import annotations

import numpy as np
import pytest

from held_out import HELD_OUT_SEEDS
from napari_sam2.weights.registry import bundled_checkpoint_path

pytestmark = [
    pytest.mark.gui,
    pytest.mark.skipif(
        not bundled_checkpoint_path().exists(), reason="the bundled micro checkpoint is not built"
    ),
]

#: least IoU of a one-click mask (frame 0) and of the propagated masks (mean over frames)
CLICK_IOU = 0.6
TRACK_IOU = 0.6


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _movie_and_cells():
    """A held-out nuclei movie, its two nuclei nearest the centre and their (T, H, W) truth."""
    from napari_sam2.cli.demo import ancestor_labels, interior_points
    from napari_sam2.train.synthetic import make_movie

    mv = make_movie(
        kind="nuclei", n_frames=6, shape=(256, 256), n_cells=14, radius=(16.0, 24.0),
        seed=HELD_OUT_SEEDS[1],
    )  # fmt: skip
    seeds = interior_points(mv.labels[0])
    near = sorted(seeds.items(), key=lambda kv: (kv[1][0] - 128) ** 2 + (kv[1][1] - 128) ** 2)
    cells = [
        (p, ancestor_labels(mv.labels, mv.lineage, {tid}) == tid) for tid, p in near[:2]
    ]
    return mv.movie, cells


def _canvas_click(viewer, layer, qtbot, yx) -> None:
    """A left click on the canvas where image pixel ``yx`` (row, col) is shown."""
    from qtpy.QtCore import QPoint, Qt

    canvas = viewer.window._qt_viewer.canvas
    node = canvas.layer_to_visual[layer].node
    x, y = node.get_transform(map_from="visual", map_to="canvas").map([yx[1], yx[0]])[:2]
    qtbot.mouseClick(canvas.native, Qt.LeftButton, pos=QPoint(round(x), round(y)))


def _key(viewer, qtbot, key, shift: bool = False) -> None:
    from qtpy.QtCore import Qt

    canvas = viewer.window._qt_viewer.canvas.native
    modifier = Qt.ShiftModifier if shift else Qt.NoModifier
    qtbot.keyClick(canvas, key, modifier)


def _button(widget, text: str):
    from qtpy.QtWidgets import QPushButton

    found = [b for b in widget.findChildren(QPushButton) if b.text() == text]
    assert len(found) == 1, f"one {text!r} button expected, found {len(found)}"
    return found[0]


def test_click_cells_and_propagate_like_a_user(fresh_viewer, qtbot):
    from qtpy.QtCore import Qt

    from napari_sam2._napari.widget import SAM2Widget

    viewer = fresh_viewer
    movie, cells = _movie_and_cells()
    viewer.add_image(movie, name="cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 tracking")
    assert isinstance(widget, SAM2Widget)
    viewer.window._qt_viewer.canvas.native.resize(600, 600)
    viewer.reset_view()
    c = widget.controller

    index = widget.model_rows.model_combo.findData("micro")
    assert index >= 0
    widget.model_rows.model_combo.setCurrentIndex(index)
    qtbot.mouseClick(_button(widget, "Load"), Qt.LeftButton)
    widget.controller.wait(timeout=120)
    assert c.model.loaded is not None and c.model.loaded.config.name == "micro"
    viewer.dims.set_point(0, 0)
    image = viewer.layers["cells"]

    for k, (point, truth) in enumerate(cells, start=1):
        _key(viewer, qtbot, Qt.Key_N)  # shortcut: new object
        assert c.objects.current == k
        viewer.layers.selection.active = c.points_layer
        _canvas_click(viewer, image, qtbot, point)
        widget.controller.wait(timeout=60)
        got = widget.controller.labels_layer.data[0] == k
        assert _iou(got, truth[0]) >= CLICK_IOU, f"object {k}: {_iou(got, truth[0]):.3f}"
        np.testing.assert_allclose(
            widget.controller.session.prompts(k)[0].points, [point], atol=1.0
        )

    # Shift+T toggles negative clicks on and off (as key events)
    _key(viewer, qtbot, Qt.Key_T, shift=True)
    assert c.prompts.negative_mode
    _key(viewer, qtbot, Qt.Key_T, shift=True)
    assert not c.prompts.negative_mode

    widget.propagation_panel.direction.value = "forward"
    qtbot.mouseClick(widget.propagation_panel.run_button.native, Qt.LeftButton)
    widget.controller.wait(timeout=180)
    vol = widget.controller.labels_layer.data
    for k, (_, truth) in enumerate(cells, start=1):
        ious = [_iou(vol[t] == k, truth[t]) for t in range(len(movie))]
        assert min(ious) > 0 and np.mean(ious) >= TRACK_IOU, (k, np.round(ious, 3))

    # Shift+B propagates backward from the last frame, through the same session
    viewer.dims.set_point(0, len(movie) - 1)
    before = widget.controller.session.stats["frames_propagated"]
    _key(viewer, qtbot, Qt.Key_B, shift=True)
    widget.controller.wait(timeout=180)
    assert widget.controller.session.stats["frames_propagated"] > before
