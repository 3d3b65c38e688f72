"""The "SAM 2 tracking" dock widget, end to end (pytest-qt, one shared hidden napari viewer).

Run under a virtual X server:
    OMP_NUM_THREADS=1 QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
        python -m pytest tests/napari -q
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from gui_helpers import click, notifications_during

pytestmark = pytest.mark.gui


# --------------------------------------------------------------------------------- opening


def test_open_through_manifest_with_sample(fresh_viewer):
    from napari_sam2._napari._model import bundled_model_installed
    from napari_sam2._napari.widget import SAM2Widget

    viewer = fresh_viewer
    viewer.open_sample("napari-sam2", "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 tracking")
    assert isinstance(widget, SAM2Widget)
    c = widget.controller
    assert c.info is not None and c.info.layer.name == "synthetic nuclei"
    t, h, w = viewer.layers["synthetic nuclei"].data.shape
    lab = viewer.layers["synthetic nuclei [SAM2 labels]"]
    assert lab.data.shape == (t, h, w) and lab.data.dtype == np.uint16
    assert lab.data is c.volume
    assert viewer.layers["synthetic nuclei [SAM2 clicks]"].ndim == 3
    assert viewer.layers["synthetic nuclei [SAM2 boxes]"].ndim == 3
    assert widget.layer_combo.currentText() == "synthetic nuclei"
    if not bundled_model_installed():
        assert "not installed" in widget.status.text()
        with pytest.raises(RuntimeError, match="no model"):
            widget.controller.prompts.add_point((0, 10, 10))
    viewer.open_sample("napari-sam2", "phase")
    assert widget.layer_combo.count() == 2


# --------------------------------------------------------------------------------- prompts


def test_clicks_and_boxes_show_masks_at_once(viewer_widget):
    from napari_sam2._napari.layers import NEGATIVE_COLOR, POSITIVE_COLOR

    viewer, widget = viewer_widget
    c = widget.controller
    c.set_current_frame(4)
    points = c.points_layer
    click(points, (4, 60, 64))  # a plain click: positive
    assert widget.controller.busy  # runs in a worker
    widget.controller.wait(timeout=60)
    obj = c.objects.current
    assert obj == 1 and c.objects.ids == [1]
    vol = widget.controller.labels_layer.data
    assert (vol[4] == obj).sum() > 0, "mask shown on the clicked frame"
    assert not np.delete(vol, 4, axis=0).any(), "no other frame touched"
    np.testing.assert_allclose(points.face_color[0], POSITIVE_COLOR)
    np.testing.assert_allclose(points.border_color[0], c.objects.color(obj), atol=1e-6)
    click(points, (4, 20, 20), modifiers=("Alt",))  # Alt+click: negative
    click(points, (4, 100, 30), button=2)  # right click: negative
    widget.controller.wait(timeout=60)
    np.testing.assert_allclose(points.face_color[1], NEGATIVE_COLOR)
    assert list(points.features["positive"]) == [True, False, False]
    p = widget.controller.session.prompts(obj)[4]
    np.testing.assert_array_equal(p.labels, [1, 0, 0])
    np.testing.assert_allclose(p.points, [[60, 64], [20, 20], [100, 30]])
    assert len(c.prompts.click_to_mask_s) == 3
    # deleting a click re-runs the frame without it
    points.selected_data = {2}
    points.remove_selected()
    widget.controller.wait(timeout=60)
    np.testing.assert_array_equal(widget.controller.session.prompts(obj)[4].labels, [1, 0])
    # a click outside the image is ignored with a notice
    msgs = notifications_during(lambda: click(points, (4, 500, 500)))
    assert any("outside" in m for m in msgs) and len(points.data) == 2

    # a box drawn in the boxes layer (napari's rectangle tool sends an "added" data event)
    obj = widget.controller.objects.add()  # object 2
    c.set_current_frame(2)
    c.shapes_layer.add_rectangles(np.array([[2, 30, 30], [2, 30, 80], [2, 70, 80], [2, 70, 30]]))
    widget.controller.wait(timeout=60)
    assert (widget.controller.labels_layer.data[2] == obj).any()
    np.testing.assert_allclose(widget.controller.session.prompts(obj)[2].box, [30, 30, 70, 80])
    np.testing.assert_allclose(c.shapes_layer.edge_color[0], c.objects.color(obj), atol=1e-6)
    # a scripted box on another frame for a third object
    obj2 = widget.controller.objects.add()
    mask = widget.controller.prompts.add_box(6, (10, 10, 40, 50), wait=True)
    assert mask.shape == (128, 128) and mask.any()
    assert (widget.controller.labels_layer.data[6] == obj2).any()
    assert c.current_frame() == 6


# --------------------------------------------------------------------------------- propagation


def test_propagate_labels_every_frame(viewer_widget):
    viewer, widget = viewer_widget
    widget.controller.objects.add()
    widget.controller.prompts.add_point((3, 64, 64), positive=True, wait=True)
    widget.controller.objects.add()
    widget.controller.prompts.add_point((3, 30, 90), positive=True)
    done = widget.controller.propagation.run("both", wait=True)
    assert sorted(done) == list(range(10))
    vol = widget.controller.labels_layer.data
    for t in range(10):
        assert (vol[t] == 1).any() and (vol[t] == 2).any(), f"frame {t}"
    assert widget.controller.scores[(7, 2)] > 0.5
    assert widget.controller.labels_layer.data.dtype == np.uint16

    # a new object, propagated backward within a frame range, touches only those frames
    widget.controller.objects.add()
    widget.controller.prompts.add_point((5, 100, 20), wait=True)
    before = vol.copy()
    done = widget.controller.propagation.run("backward", start=5, first=2, obj_ids=[3], wait=True)
    assert done == [5, 4, 3, 2]
    changed = [t for t in range(10) if (vol[t] != before[t]).any()]
    assert set(changed) <= {2, 3, 4, 5} and (vol[5] == 3).any()
    assert not (vol[[0, 1, 6, 7, 8, 9]] == 3).any()


def test_cancel_keeps_finished_frames(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    c = widget.controller
    widget.controller.prompts.add_point((0, 64, 64), wait=True)
    seen = []
    c.events.frame_done.connect(seen.append)
    job = widget.controller.propagation.run("forward")
    qtbot.waitUntil(lambda: len(seen) >= 3, timeout=60000)
    assert widget.controller.cancel()
    widget.controller.wait(timeout=60)
    done = job.result
    assert 3 <= len(done) < 10, done
    vol = widget.controller.labels_layer.data
    for t in range(10):
        assert bool(vol[t].any()) == (t in done), t
    # propagating again finishes the rest
    widget.controller.propagation.run("forward", start=done[-1], wait=True)
    assert all(vol[t].any() for t in range(10))


def test_error_becomes_notification_and_keeps_frames(viewer_widget, monkeypatch):
    from napari_sam2.video.session import VideoSession

    viewer, widget = viewer_widget
    widget.controller.objects.add()
    widget.controller.prompts.add_point((0, 64, 64), wait=True)
    widget.controller.objects.add()
    widget.controller.prompts.add_point((0, 20, 20), wait=True)
    original = VideoSession._propagate_frame

    def failing(self, t, objects, reverse, ahead=None):
        if t == 4:
            raise RuntimeError("out of memory (simulated)")
        return original(self, t, objects, reverse, ahead)

    monkeypatch.setattr(VideoSession, "_propagate_frame", failing)

    def run():
        widget.controller.propagation.run("forward", start=0)
        widget.controller.wait(timeout=60)

    msgs = notifications_during(run)
    assert any("out of memory (simulated)" in m for m in msgs), msgs
    vol = widget.controller.labels_layer.data
    assert all((vol[t] == 1).any() and (vol[t] == 2).any() for t in range(4))
    assert not vol[4:].any()
    with pytest.raises(RuntimeError, match="simulated"):
        widget.controller.propagation.run("forward", start=0, wait=True)


def test_corrections_and_manual_edits(viewer_widget):
    viewer, widget = viewer_widget
    c = widget.controller
    widget.controller.prompts.add_point((0, 64, 64), wait=True)
    widget.controller.propagation.run("forward", start=0, wait=True)
    vol = widget.controller.labels_layer.data
    vol[5, :6, :6] = 9  # a manual label of another object: never overwritten
    before = vol.copy()
    # a correction on frame 5 shows at once, then re-propagation from there
    widget.controller.prompts.add_point((5, 100, 100), positive=False, wait=True)
    assert 5 in widget.controller.session.prompted_frames(1)
    np.testing.assert_array_equal(vol[:5], before[:5])
    widget.controller.propagation.run("forward", wait=True)  # from the current frame (5)
    np.testing.assert_array_equal(vol[:5], before[:5]), "frames before 5 untouched"
    assert (vol[5, :6, :6] == 9).all()
    # paint object 1 on frame 7 and send it as a mask prompt: kept exactly as painted
    vol[7][vol[7] == 1] = 0
    painted = np.zeros((128, 128), bool)
    painted[40:70, 50:90] = True
    vol[7][painted] = 1
    widget.controller.prompts.use_edit(frame=7, wait=True)
    np.testing.assert_array_equal(vol[7] == 1, painted)
    assert widget.controller.session.prompts(1)[7].mask is not None
    assert c.objects.current == 1


def test_objects_and_shortcuts(viewer_widget):
    from napari.utils.key_bindings import coerce_keybinding

    from napari_sam2._napari._help import SHORTCUTS

    viewer, widget = viewer_widget
    c = widget.controller
    widget.controller.labels_layer.data[0, :3, :3] = 4  # painted by hand: ids stay unique
    assert widget.controller.objects.add() == 5
    widget.controller.prompts.add_point((1, 64, 64), wait=True)
    assert widget.controller.objects.add() == 6
    widget.controller.prompts.add_point((1, 20, 20), wait=True)
    assert widget.objects_list.count() == 2
    icon = widget.objects_list.item(0).icon().pixmap(14, 14).toImage().pixelColor(7, 7)
    expected = (np.asarray(c.objects.color(5))[:3] * 255).round()
    assert abs(icon.red() - expected[0]) <= 1 and abs(icon.green() - expected[1]) <= 1
    widget.objects_list.setCurrentRow(0)
    assert c.objects.current == 5 and widget.controller.labels_layer.selected_label == 5
    c.objects.next()
    assert c.objects.current == 6
    widget.controller.objects.remove(5, wait=True)
    assert c.objects.ids == [6] and 5 not in widget.controller.session.obj_ids
    assert not (widget.controller.labels_layer.data == 5).any()
    assert (widget.controller.labels_layer.data[1] == 6).any()
    assert list(c.points_layer.features["obj_id"]) == [6]

    # ids above 65,535 switch the labels to uint32, still shared by layer and session
    assert widget.controller.objects.add(70000) == 70000
    widget.controller.prompts.add_point((2, 64, 64), wait=True)
    assert (
        widget.controller.labels_layer.data.dtype == np.uint32
        and widget.controller.labels_layer.data is c.volume
    )
    assert widget.controller.session.labels() is c.volume and (c.volume[2] == 70000).any()
    assert (c.volume[1] == 6).any()
    widget.controller.objects.remove(70000, wait=True)

    # keyboard shortcuts (bound on the viewer)
    keymap = viewer.keymap
    funcs = {a: keymap[coerce_keybinding(k)] for a, (k, _) in SHORTCUTS.items()}
    funcs["new_object"](viewer)
    funcs["new_object"](viewer)
    assert c.objects.ids == [6, 7, 8] and c.objects.current == 8
    funcs["previous_object"](viewer)
    assert c.objects.current == 7
    funcs["next_object"](viewer)
    assert c.objects.current == 8
    funcs["toggle_negative"](viewer)
    assert c.prompts.negative_mode and "negative clicks" in widget.status.text()
    funcs["toggle_negative"](viewer)
    assert not c.prompts.negative_mode
    widget.controller.prompts.add_point((4, 64, 64), wait=True)
    funcs["propagate_forward"](viewer)
    funcs["cancel"](viewer)
    widget.controller.wait(timeout=60)
    funcs["propagate_backward"](viewer)
    widget.controller.wait(timeout=60)
    assert widget.controller.labels_layer.data[0].any()
    # none of them is one of napari's default shortcuts
    from napari.utils.shortcuts import default_shortcuts

    napari_keys = {coerce_keybinding(k) for keys in default_shortcuts.values() for k in keys}
    assert not {coerce_keybinding(k) for k, _ in SHORTCUTS.values()} & napari_keys


# --------------------------------------------------------------------------------- settings


def test_settings_reach_the_session(viewer_widget, monkeypatch, tiny_model):
    import torch

    from napari_sam2.video.memory_bank import MemoryBank

    viewer, widget = viewer_widget
    widget.memory_section.expand(animate=False)
    spin = widget.memory_widgets["num_memory_frames"]
    assert spin.toolTip().startswith("How many past frames the model remembers")
    assert spin.maximum() == widget.controller.model.loaded.config.num_maskmem - 1
    widget.controller.prompts.add_point((0, 64, 64), wait=True)
    spin.setValue(2)
    widget.memory_widgets["non_overlap"].setChecked(True)
    assert widget.controller.model.settings.num_memory_frames == 2
    used = []
    original = MemoryBank.select

    def spy(self, t, settings, *args, **kwargs):
        used.append((settings.num_memory_frames, settings.non_overlap))
        return original(self, t, settings, *args, **kwargs)

    monkeypatch.setattr(MemoryBank, "select", spy)
    widget.controller.propagation.run("forward", start=0, wait=True)
    assert used and set(used) == {(2, True)}
    assert widget.controller.session.settings.num_memory_frames == 2
    # out-of-range values are refused with a notice, not applied
    msgs = notifications_during(
        lambda: widget.controller._safe(
            widget.controller.model.set_memory_setting, "num_memory_frames", 99
        )
    )
    assert any("num_memory_frames" in m for m in msgs)
    assert widget.controller.model.settings.num_memory_frames == 2

    # precision and a model swap: prompts are re-run on the new model, settings kept
    widget.controller.model.set_precision("bf16")
    assert "bf16" in widget.status.text()
    widget.controller.model.set_model(tiny_model)
    widget.controller.wait(timeout=60)
    assert widget.controller.session.precision == "bf16"
    assert widget.controller.session.settings.num_memory_frames == 2
    assert widget.controller.session.prompted_frames(1) == [0]
    assert (widget.controller.labels_layer.data[0] == 1).any()
    # device: moving the model rebuilds the session in the same job (prompts kept)
    old_session = widget.controller.session
    widget.controller.model.set_device("cpu", wait=True)
    assert (
        widget.controller.session is not old_session
        and widget.controller.session.prompted_frames(1) == [0]
    )
    if not torch.cuda.is_available():
        msgs = notifications_during(
            lambda: (widget.controller.model.set_device("cuda"), widget.controller.wait(timeout=60))
        )
        assert any("CUDA is not available" in m for m in msgs), msgs
        assert (
            widget.controller.model.device == "cpu"
            and widget.model_rows.device_combo.currentText() == "cpu"
        )
        assert widget.controller.session.prompted_frames(1) == [0]


def test_download_cancel(viewer_widget, monkeypatch):
    import napari_sam2.weights.download as dl
    from napari_sam2.weights.download import DownloadCancelled

    viewer, widget = viewer_widget
    seen = {}

    def fake_ensure(name, progress=None, cancel=None, **kw):
        for i in range(200):
            if cancel.is_set():
                raise DownloadCancelled("download cancelled")
            progress((i + 1) << 20, 200 << 20)
            cancel.wait(0.02)
        seen["finished"] = True
        return None

    monkeypatch.setattr(dl, "ensure_weights", fake_ensure)
    monkeypatch.setattr(dl, "is_cached", lambda name: False)
    model_before = widget.controller.model.loaded
    job = widget.controller.model.set_model("sam2.1_hiera_tiny")
    assert widget.controller.busy
    msgs = notifications_during(
        lambda: (widget.controller.cancel(), widget.controller.wait(timeout=30))
    )
    assert any("cancelled" in m for m in msgs), msgs
    assert "finished" not in seen and job.done
    assert widget.controller.model.loaded is model_before  # nothing lost


# --------------------------------------------------------------------------------- data


def test_refuses_unusable_layers(fresh_viewer):
    from napari_sam2._napari import open_widget
    from napari_sam2._napari.layers import UnsupportedLayerError

    viewer = fresh_viewer
    widget = open_widget(viewer)
    flat = viewer.add_image(np.zeros((64, 64), np.uint8), name="flat")
    zstack = viewer.add_image(np.zeros((6, 20, 32, 32), np.uint16), name="zt")
    with pytest.raises(UnsupportedLayerError, match="2-D"):
        widget.controller.set_image_layer(flat)
    with pytest.raises(UnsupportedLayerError, match="time axis"):
        widget.controller.set_image_layer(zstack)
    widget.layer_combo.setCurrentIndex(widget.layer_combo.findData("flat"))
    msgs = notifications_during(
        lambda: widget._on_layer_activated(widget.layer_combo.findData("flat"))
    )
    assert any("2-D" in m for m in msgs)
    assert widget.controller.info is None
    # (T, C, Y, X) with a channel choice; RGB with RGB / single-colour choices
    tc = viewer.add_image(np.zeros((5, 2, 32, 32), np.uint16), name="tc")
    widget.controller.set_image_layer(tc, channel=1)
    assert widget.controller.info.axes == "TCYX" and widget.channel_combo.count() == 2
    assert widget.controller.labels_layer.data.shape == (5, 2, 32, 32)
    assert widget.controller.volume.shape == (5, 32, 32)
    rgb = viewer.add_image(np.zeros((4, 32, 32, 3), np.uint8), name="rgb", rgb=True)
    widget.controller.set_image_layer(rgb)
    assert widget.controller.info.axes == "TYXC" and widget.channel_combo.count() == 4


def test_multichannel_dask_movie(fresh_viewer, tiny_model):
    da = pytest.importorskip("dask.array")
    from napari_sam2._napari import open_widget

    viewer = fresh_viewer
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (4, 2, 64, 64), dtype=np.uint8)
    data = da.from_array(arr, chunks=(1, 1, 64, 64))
    layer = viewer.add_image(data, name="tc")
    widget = open_widget(viewer)
    widget.controller.model.set_model(tiny_model)
    widget.controller.set_image_layer(layer, channel=1)
    widget.controller.prompts.add_point((1, 30, 30), wait=True)
    widget.controller.propagation.run("forward", start=1, wait=True)
    assert widget.controller.session.frames.backend == "dask"
    assert widget.controller.session.frames.channels[0] == 1
    vol = widget.controller.volume
    assert all(vol[t].any() for t in (1, 2, 3)) and not vol[0].any()
    # the labels layer shows the same labels on every channel
    assert (
        widget.controller.labels_layer.data[2, 0] == widget.controller.labels_layer.data[2, 1]
    ).all()


# --------------------------------------------------------------------------------- export


def test_export_label_tiff_and_more(viewer_widget, tmp_path):
    viewer, widget = viewer_widget
    widget.controller.prompts.add_point((0, 64, 64), wait=True)
    widget.controller.objects.add()
    widget.controller.prompts.add_point((0, 20, 100), wait=True)
    widget.controller.propagation.run("forward", start=0, wait=True)
    path = widget.controller.exports.labels(tmp_path / "labels.tif")
    back = tifffile.imread(path)
    vol = widget.controller.labels_layer.data
    assert back.shape == (10, 128, 128) and back.dtype == np.uint16
    np.testing.assert_array_equal(back, vol)
    assert set(np.unique(back)) <= {0, 1, 2} and (back == 2).any()
    csv = widget.controller.exports.measurements(tmp_path / "m.csv")
    lines = csv.read_text().splitlines()
    assert lines[0].startswith("frame,obj_id,area") and "score" in lines[0]
    assert len(lines) == 1 + sum(len(set(np.unique(vol[t])) - {0}) for t in range(10))
    folder = widget.controller.exports.ctc(tmp_path / "01_RES")
    assert (folder / "res_track.txt").exists() and (folder / "mask009.tif").exists()
    tracks = widget.controller.exports.tracks_layer()
    assert tracks is not None and set(tracks.data[:, 0]) >= {1, 2}


# --------------------------------------------------------------------------------- keys
