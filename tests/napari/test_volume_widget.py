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


def _split_on_call(calls: list, when: int):
    """A stand-in for ``daughter_masks``: on its ``when``-th call the mask splits into its
    left and right halves (along x), otherwise no division."""

    def daughters(mask, mother_voxels, *args, **kwargs):
        calls.append(int(mask.sum()))
        if len(calls) != when:
            return None
        xs = np.nonzero(mask)[2]
        cut = int(np.median(xs))
        left, right = mask.copy(), mask.copy()
        left[..., cut:] = False
        right[..., :cut] = False
        return (left, right) if left.any() and right.any() else None

    return daughters


def test_both_follows_divisions_into_list_labels_ctc_and_tracks(
    fresh_viewer, tiny_model, qtbot, monkeypatch, tmp_path
):
    """3-D + time: "Follow divisions" is on by default; a division found at timepoint 2 (forced
    there by a stand-in for ``daughter_masks``) gives two daughters, listed by the widget,
    labelled in the Labels layer, linked in the CTC folder and the Tracks layer."""
    import napari_sam2.video.volume_time as volume_time
    from napari_sam2._napari._volume_widget import VolumeWidget

    viewer = fresh_viewer
    viewer.add_image(_movie(t=4), name="cells", axis_labels=("t", "z", "y", "x"))
    widget = VolumeWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SAM 2 3-D")
    assert not widget.divisions_check.isEnabled()  # no layer in use yet
    c = widget.controller
    c.model = tiny_model
    widget._use_layer()
    assert c.axes == "TZYX" and c.follow_divisions and c.session.divisions
    assert widget.divisions_check.isEnabled() and widget.divisions_check.isChecked()

    calls: list = []
    monkeypatch.setattr(volume_time, "daughter_masks", _split_on_call(calls, when=2))
    c.add_point([0, 2, 16, 20])
    widget.mode_combo.setCurrentText("both")
    widget._run()
    qtbot.waitUntil(lambda: not c.busy and widget.objects_list.count() >= 3, timeout=30_000)
    assert len(calls) >= 2  # looked for at timepoints 1 and 2 (daughters wait MIN_CYCLE)
    assert c.session.lineage == {2: 1, 3: 1} and c.object_ids == [1, 2, 3]
    texts = [widget.objects_list.item(i).text() for i in range(widget.objects_list.count())]
    assert "object 2 (daughter of 1)" in texts and "object 3 (daughter of 1)" in texts
    labels = c.labels_layer.data  # the layer's data is the session's label volume
    assert set(np.unique(labels[1])) == {0, 1}
    assert {2, 3} <= set(np.unique(labels[2])) and not (labels[2] == 1).any()
    assert "daughters [2, 3]" in widget.status.text()
    assert c.new_object() == 4  # past the daughters' ids

    folder = c.export_ctc(str(tmp_path / "01_RES"))
    rows = {
        int(r[0]): [int(v) for v in r[1:]]
        for r in (line.split() for line in (folder / "res_track.txt").read_text().splitlines())
    }
    assert rows[1] == [0, 1, 0] and rows[2][0::2] == [2, 1] and rows[3][0::2] == [2, 1]
    assert len(list(folder.glob("mask*.tif"))) == 4
    tracks = c.tracks_layer()
    assert tracks.graph == {2: [1], 3: [1]} and tracks.data.shape[1] == 5  # id, t, z, y, x

    widget.divisions_check.setChecked(False)  # scripted: c.set_follow_divisions(False)
    assert not c.follow_divisions and not c.session.divisions


def test_divisions_need_time(fresh_viewer, tiny_model):
    from napari_sam2._napari._volume import VolumeController

    viewer = fresh_viewer
    stack = viewer.add_image(_movie()[0], name="stack", axis_labels=("z", "y", "x"))
    c = VolumeController(viewer, tiny_model)
    with pytest.raises(ValueError, match="needs a time axis"):
        c.set_image_layer(stack, divisions=True)
    assert c.set_image_layer(stack) == "ZYX" and not c.follow_divisions
    with pytest.raises(ValueError, match="needs a time axis"):
        c.set_follow_divisions(True)
    with pytest.raises(ValueError, match="needs a time axis"):
        c.export_ctc("unused")
    zt = viewer.add_image(
        _movie().transpose(1, 0, 2, 3), name="zt", axis_labels=("z", "t", "y", "x")
    )
    assert c.set_image_layer(zt, divisions=False) == "ZTYX" and not c.session.divisions
    c.set_follow_divisions(True)
    assert c.session.divisions
    with pytest.raises(ValueError, match="puts time first"):
        c.tracks_layer()
