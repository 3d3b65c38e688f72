"""Region of interest in the widget: set_roi / roi_from_view / use_view_as_roi, the
"SAM 2 region" Shapes layer, clicks outside the region, and re-running prompts when the region
changes (pytest-qt, shared hidden viewer, random tiny model).

Run under a virtual X server:
    OMP_NUM_THREADS=1 QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
        python -m pytest tests/napari/test_roi_widget.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
from gui_helpers import click, notifications_during

pytestmark = pytest.mark.gui

ROI = (16, 24, 80, 104)  # (y0, x0, y1, x1) in the 128 x 128 px movie


def _outside(vol: np.ndarray, roi) -> np.ndarray:
    y0, x0, y1, x1 = roi
    keep = np.ones(vol.shape[-2:], bool)
    keep[y0:y1, x0:x1] = False
    return vol[..., keep]


def test_set_roi_session_layer_and_labels(viewer_widget):
    from napari_sam2._napari._region import ROI_LAYER_NAME

    viewer, widget = viewer_widget
    c = widget.controller
    assert c.region.roi is None and ROI_LAYER_NAME not in viewer.layers
    assert "full frame" in widget.region_row.label.text()
    assert not widget.region_row.full_button.isEnabled()

    widget.controller.region.set(ROI, wait=True)
    assert c.region.roi == ROI
    # the rectangle, on the pixel edges, in a locked Shapes layer that did not take the focus
    layer = viewer.layers[ROI_LAYER_NAME]
    assert layer == c.region.layer and len(layer.data) == 1
    assert list(layer.shape_type) == ["rectangle"]
    verts = np.asarray(layer.data[0])
    np.testing.assert_allclose(verts.min(0), [15.5, 23.5])
    np.testing.assert_allclose(verts.max(0), [79.5, 103.5])
    assert not layer.editable and layer.mode == "pan_zoom"
    np.testing.assert_allclose(np.asarray(layer.face_color)[0, 3], 0.0)
    assert viewer.layers.selection.active == c.points_layer
    viewer.dims.ndisplay = 3  # napari makes Shapes layers editable again on the way back
    viewer.dims.ndisplay = 2
    assert not layer.editable
    assert "y 16:80, x 24:104" in widget.region_row.label.text()
    assert widget.region_row.full_button.isEnabled()

    # the session uses it; labels outside stay 0 through a propagation
    mask = widget.controller.prompts.add_point((0, 48, 60), wait=True)
    assert widget.controller.session.roi == ROI
    assert mask.shape == (128, 128) and not _outside(mask, ROI).any()
    done = widget.controller.propagation.run("forward", start=0, last=4, wait=True)
    assert done == [0, 1, 2, 3, 4]
    vol = widget.controller.labels_layer.data
    assert (vol[:5] == 1).any(), "the object was segmented inside the region"
    assert not _outside(vol, ROI).any(), "nothing outside the region"

    # full frame again: the layer goes, the session is rebuilt without a region
    widget.controller.region.set(None, wait=True)
    assert c.region.roi is None and c.region.layer is None
    assert ROI_LAYER_NAME not in viewer.layers
    assert widget.controller.session.roi is None and widget.controller.session.obj_ids == [1]
    assert "full frame" in widget.region_row.label.text()


def test_roi_from_view_after_zoom(viewer_widget):
    viewer, widget = viewer_widget
    c = widget.controller
    viewer.reset_view()
    assert c.region.from_view() == (0, 0, 128, 128), "the whole image is in view"
    viewer.camera.center = (0.0, 40.0, 70.0)
    viewer.camera.zoom = viewer.camera.zoom * 6
    roi = c.region.from_view()
    y0, x0, y1, x1 = roi
    assert 0 < y0 < 40 < y1 < 128 and 0 < x0 < 70 < x1 < 128, roi
    # what vispy draws: the canvas corners mapped to image pixels (napari's own transform)
    qcanvas = viewer.window._qt_viewer.canvas
    w, h = qcanvas.view.rect.size  # the view box (in a never-shown viewer not the canvas size)
    top_left = qcanvas._map_canvas2world((0, 0), qcanvas.view)[-2:]
    bottom_right = qcanvas._map_canvas2world((w, h), qcanvas.view)[-2:]
    # partly visible pixels (pixel i covers i - 0.5 .. i + 0.5) are in; end exclusive
    assert abs(y0 - top_left[0]) <= 0.51 and abs(x0 - top_left[1]) <= 0.51, (roi, top_left)
    assert abs(y1 - 1 - bottom_right[0]) <= 0.51 and abs(x1 - 1 - bottom_right[1]) <= 0.51
    widget.controller.region.use_view(wait=True)
    assert (
        c.region.roi == roi
        and widget.controller.session is not None
        and widget.controller.session.roi == roi
    )
    viewer.camera.center = (0.0, 5000.0, 5000.0)  # looking beside the image
    with pytest.raises(ValueError, match="not in view"):
        c.region.from_view()
    viewer.reset_view()


def test_click_outside_roi_notifies_and_adds_nothing(viewer_widget):
    viewer, widget = viewer_widget
    c = widget.controller
    widget.controller.region.set(ROI, wait=True)
    points = c.points_layer
    msgs = notifications_during(lambda: click(points, (0, 100, 10)))
    widget.controller.wait(timeout=60)
    assert any("outside the region of interest" in m and str(ROI) in m for m in msgs), msgs
    assert len(points.data) == 0 and c.objects.ids == []
    assert not widget.controller.labels_layer.data.any()
    with pytest.raises(ValueError, match="region of interest"):
        widget.controller.prompts.add_point((0, 5, 5))
    with pytest.raises(ValueError, match="region of interest"):
        widget.controller.prompts.add_box(0, (90, 0, 120, 20))
    assert c.objects.ids == [] and len(points.data) == 0
    # a click inside still works
    click(points, (0, 40, 50))
    widget.controller.wait(timeout=60)
    assert c.objects.ids == [1] and widget.controller.session.roi == ROI
    np.testing.assert_allclose(widget.controller.session.prompts(1)[0].points, [[40, 50]])


def test_changing_roi_replays_prompts(viewer_widget):
    viewer, widget = viewer_widget
    c = widget.controller
    widget.controller.prompts.add_point((0, 48, 60), wait=True)
    widget.controller.prompts.add_box(2, (30, 40, 70, 90), obj_id=2, wait=True)
    old = widget.controller.session
    assert old.roi is None and old.obj_ids == [1, 2]

    widget.controller.region.set(ROI, wait=True)
    s = widget.controller.session
    assert s is not old and s.roi == ROI and s.obj_ids == [1, 2]
    np.testing.assert_allclose(s.prompts(1)[0].points, [[48, 60]])
    np.testing.assert_allclose(s.prompts(2)[2].box, [30, 40, 70, 90])
    assert s.stats["image_encodings"] == 2, "the prompted frames were encoded again"
    vol = widget.controller.labels_layer.data
    assert not _outside(vol[[0, 2]], ROI).any(), "the prompted frames were re-run in the region"

    # a region that would leave a prompt out is refused and nothing changes
    msgs = notifications_during(
        lambda: pytest.raises(
            ValueError, widget.controller.region.set, (60, 60, 128, 128), wait=True
        )
    )
    assert any("leaves out" in m and "object 1 (frame 0)" in m for m in msgs), msgs
    assert c.region.roi == ROI and widget.controller.session is s
    assert np.asarray(c.region.layer.data[0]).min(0).tolist() == [15.5, 23.5]


def test_objects_too_small_for_the_model_get_a_hint_once(viewer_widget):
    viewer, widget = viewer_widget
    widget.controller.zoom.set_cell_diameter("off")  # automatic zoom would make them large
    s_box = (60, 60, 66, 67)  # 6 x 7 px of a 128-px frame: 12 x 14 px at the 256-px input
    msgs = notifications_during(
        lambda: widget.controller.prompts.add_box(0, s_box, obj_id=1, wait=True)
    )
    hints = [m for m in msgs if "object 1: this object spans only ~12 x 14 px" in m]
    assert len(hints) == 1 and "Region: use current view" in hints[0], msgs
    # 60 x 80 px: fine
    assert widget.controller.session.too_small_hint(box=(10, 10, 40, 50)) is None
    msgs = notifications_during(
        lambda: widget.controller.prompts.add_box(1, s_box, obj_id=1, wait=True)
    )
    assert not [m for m in msgs if "spans only" in m], "told once per object and region"
    msgs = notifications_during(
        lambda: widget.controller.prompts.add_box(0, (10, 10, 40, 50), obj_id=2, wait=True)
    )
    assert not [m for m in msgs if "spans only" in m], msgs
