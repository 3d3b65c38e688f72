"""Automatic zoom in the widget: the "Cell size (auto / px)" row, the session it builds, the
"SAM 2 windows" layer, on a small-cell movie with the bundled model (pytest-qt, shared hidden
viewer).

Run under a virtual X server:
    OMP_NUM_THREADS=1 QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \\
        python -m pytest tests/napari/test_zoom_widget.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

pytestmark = pytest.mark.gui


def test_cell_size_row_windows_layer_and_small_cells(fresh_viewer):
    from napari_sam2 import load_model
    from napari_sam2._napari import open_widget
    from napari_sam2._napari._zoom import WINDOWS_LAYER_NAME, parse_cell_size
    from napari_sam2.train.synthetic import make_movie

    mv = make_movie(
        kind="nuclei", shape=(384, 384), radius=(8, 11), n_cells=4, n_frames=3, seed=7,
        enter_leave=0.0, division_rate=0.0,
    )
    viewer = fresh_viewer
    viewer.add_image(mv.movie, name="movie")
    widget = open_widget(viewer)
    widget.controller.model.set_model(load_model("micro", device="cpu"))
    widget.controller.wait(timeout=60)
    viewer.dims.set_point(0, 0)
    c = widget.controller

    row = widget.zoom_row
    assert row.edit.text() == "auto" and c.zoom.cell_diameter is None
    row.edit.setText(" 18 ")
    row.edit.editingFinished.emit()
    assert c.zoom.cell_diameter == 18.0 and row.edit.text() == "18"
    with pytest.raises(ValueError, match="type 'auto' or the typical cell diameter"):
        parse_cell_size("big")
    c.zoom.set_cell_diameter("off")
    assert c.zoom.mode == "off" and c.zoom.cell_diameter is None
    row.apply("18")
    assert c.zoom.mode == "auto" and row.edit.text() == "18"
    row.windows_box.setChecked(True)

    obj = int(mv.labels[0][mv.labels[0] > 0][0])
    truth = mv.labels[:, :, :] == obj
    dist = ndimage.distance_transform_edt(truth[0])
    y, x = np.unravel_index(np.argmax(dist), dist.shape)
    mask = widget.controller.prompts.add_point((0, int(y), int(x)), wait=True)
    assert widget.controller.session.cell_diameter == 18.0
    assert widget.controller.session.fit.mode == "auto"  # small cells' masks fitted
    iou0 = np.count_nonzero(mask & truth[0]) / np.count_nonzero(mask | truth[0])
    assert iou0 > 0.6  # on a 384-px frame the whole-frame model gets ~0.2
    window = widget.controller.session.window(c.objects.current, 0)
    assert window is not None and window[2] - window[0] == widget.controller.session._zoom.side_for(
        18.0
    )

    done = widget.controller.propagation.run("forward", start=0, last=2, wait=True)
    assert done == [0, 1, 2]
    vol = np.asarray(c.labels_layer.data)
    ious = [
        np.count_nonzero((vol[t] == c.objects.current) & truth[t])
        / np.count_nonzero((vol[t] == c.objects.current) | truth[t])
        for t in range(3)
    ]
    assert min(ious) > 0.5, ious
    c.zoom.refresh()
    layer = viewer.layers[WINDOWS_LAYER_NAME]
    assert len(layer.data) == 1 and not layer.editable
    verts = np.asarray(layer.data[0])
    np.testing.assert_allclose(verts.min(0), np.array(window[:2]) - 0.5)
    c.zoom.set_show_windows(False)
    assert WINDOWS_LAYER_NAME not in viewer.layers
