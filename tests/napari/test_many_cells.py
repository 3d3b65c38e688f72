"""Many cells in the widget: seeding from a Labels layer, finding all cells on a frame, cell
presets and following divisions (pytest-qt, shared hidden viewer, random tiny model).

Run under a virtual X server:
    OMP_NUM_THREADS=1 QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
        python -m pytest tests/napari/test_many_cells.py -q
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from gui_helpers import notifications_during

pytestmark = pytest.mark.gui


def _disk(cy: int, cx: int, r: int, shape=(128, 128)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


# --------------------------------------------------------------------------------- seeding


def test_seed_from_labels_layer(viewer_widget):
    viewer, widget = viewer_widget
    c = widget.controller
    assert widget.controller.objects.add(3) == 3
    vol = widget.controller.labels_layer.data
    vol[2, 60:70, 40:70] = 3
    # object 3 on frame 2, exactly as painted
    widget.controller.prompts.use_edit(3, frame=2, wait=True)
    vol[5, :4, :4] = 9  # painted by hand on another frame
    vol[2, :4, :4] = 20  # and on this one
    before = vol.copy()
    n_clicks = len(c.points_layer.data)

    seeds = np.zeros((128, 128), np.uint16)
    seeds[50:80, 50:80] = 3  # id taken by object 3, and overlapping its pixels
    seeds[5:25, 100:120] = 5  # a free id
    seeds[100:120, 5:30] = 9  # id taken by the painted label
    seeds[:3, :3] = 7  # entirely on the painted label: skipped
    layer = viewer.add_labels(seeds, name="seeds")
    assert widget.many_cells.seed_combo.findText("seeds") >= 0
    # not our own layer
    assert widget.many_cells.seed_combo.findText(widget.controller.labels_layer.name) < 0

    mapping = widget.controller.cells.seed_from_labels(layer, frame=2, wait=True)
    assert mapping == {3: 21, 5: 5, 9: 22}
    assert set(c.objects.ids) == {3, 5, 21, 22}
    for value, obj in mapping.items():
        seed = seeds == value
        np.testing.assert_array_equal(vol[2] == obj, seed & (before[2] == 0), err_msg=str(obj))
        np.testing.assert_array_equal(widget.controller.session.prompts(obj)[2].mask, vol[2] == obj)
    np.testing.assert_array_equal(vol[2] == 3, before[2] == 3)  # existing object kept
    assert (vol[2, :4, :4] == 20).all() and 7 not in widget.controller.session.obj_ids
    np.testing.assert_array_equal(np.delete(vol, 2, axis=0), np.delete(before, 2, axis=0))
    assert len(c.points_layer.data) == n_clicks  # mask prompts leave no click marks

    # a (T, Y, X) layer: its slice at the current frame
    stack = np.zeros((10, 128, 128), np.uint8)
    stack[7, 30:50, 30:50] = 1
    stack[4, 30:50, 30:50] = 2  # other frames are ignored
    viewer.add_labels(stack, name="stack")
    c.set_current_frame(7)
    mapping = widget.controller.cells.seed_from_labels("stack", wait=True)
    assert mapping == {1: 1}
    assert (vol[7] == 1).sum() == 400 and widget.controller.session.prompted_frames(1) == [7]

    # refused with a clear message
    with pytest.raises(ValueError, match="holds the tracked objects"):
        widget.controller.cells.seed_from_labels(widget.controller.labels_layer)
    viewer.add_labels(np.ones((64, 64), np.uint8), name="small")
    with pytest.raises(ValueError, match="64 x 64 pixels"):
        widget.controller.cells.seed_from_labels("small")
    # seeding the same labels again: every id is taken now, all are renumbered (and said so)
    msgs = notifications_during(
        lambda: widget.controller.cells.seed_from_labels("seeds", frame=0, wait=True)
    )
    assert any("3 -> 23, 5 -> 24, 9 -> 25" in m for m in msgs), msgs

    # the seeded objects propagate like any other
    done = widget.controller.propagation.run("forward", start=2, last=4, wait=True)
    assert done == [2, 3, 4] and {5, 21, 22} & set(np.unique(vol[4]).tolist())


def test_refuses_without_image_or_model(fresh_viewer, small_movie):
    from napari_sam2._napari import open_widget

    viewer = fresh_viewer
    widget = open_widget(viewer)
    with pytest.raises(RuntimeError, match="image layer"):
        widget.controller.cells.find()
    with pytest.raises(RuntimeError, match="image layer"):
        widget.controller.cells.seed_from_labels()
    viewer.add_image(small_movie, name="movie")  # picked automatically
    assert widget.controller.info is not None
    widget.controller.model.choice = None  # nothing loaded, nothing chosen
    seeds = np.zeros((128, 128), np.uint8)
    seeds[10:20, 10:20] = 1
    viewer.add_labels(seeds, name="seeds")
    with pytest.raises(RuntimeError, match="no model"):
        widget.controller.cells.seed_from_labels("seeds")
    with pytest.raises(RuntimeError, match="no model"):
        widget.controller.cells.find(0)
    assert widget.controller.objects.ids == [] and not widget.controller.labels_layer.data.any()
    msgs = notifications_during(lambda: widget._safe(widget.many_cells._seed_from_gui))
    assert any("no model" in m for m in msgs), msgs


# --------------------------------------------------------------------------------- find cells


def test_find_cells_adds_objects_and_can_be_cancelled(viewer_widget, monkeypatch, qtbot):

    viewer, widget = viewer_widget
    c = widget.controller
    vol = widget.controller.labels_layer.data
    vol[0, :12, :12] = 50  # painted by hand
    before = vol.copy()
    progress = []
    c.events.progress_changed.connect(lambda done, total: progress.append((done, total)))
    # (the random test model's predicted IoUs are low and its blobs large: no filters here)
    kw = dict(points_per_side=8, pred_iou_thresh=0.0, stability_thresh=0.0, max_area=128 * 128)
    ids = widget.controller.cells.find(0, wait=True, **kw)
    assert ids and ids == list(range(51, 51 + len(ids)))
    assert (3, 3) in progress
    assert c.objects.ids == ids and c.objects.current == ids[0]
    assert (vol[0, :12, :12] == 50).all()  # the painted label is kept
    assert not vol[1:].any()
    for obj in ids:
        mask = vol[0] == obj
        assert mask.sum() >= 16
        assert not (mask & (before[0] != 0)).any()
        np.testing.assert_array_equal(widget.controller.session.prompts(obj)[0].mask, mask)

    # prune one, then propagate the rest (and a clicked object)
    widget.controller.objects.remove(ids[-1], wait=True)
    assert ids[-1] not in c.objects.ids and not (vol == ids[-1]).any()
    clicked = widget.controller.objects.add()
    widget.controller.prompts.add_point((0, 100, 100), wait=True)
    widget.controller.propagation.run("forward", start=0, last=1, wait=True)
    assert (vol[1] != 0).any() and set(np.unique(vol[1])) <= {0, clicked, *ids[:-1]}

    # a second search finds the same cells again: they are objects now, so whatever it adds
    # lies on pixels that were free
    snapshot = vol.copy()
    again = widget.controller.cells.find(0, wait=True, **kw)
    for obj in again:
        assert obj > clicked and not ((vol[0] == obj) & (snapshot[0] != 0)).any()
    np.testing.assert_array_equal(vol[0][snapshot[0] != 0], snapshot[0][snapshot[0] != 0])

    # cancelled while searching: it stops after the current batch of clicks, nothing is added
    from napari_sam2.video import seeding

    original = seeding.find_objects_steps
    batches = []

    def slow(*args, **kwargs):
        for step in original(*args, **kwargs):
            batches.append(step)
            time.sleep(0.5)
            yield step
        return [], np.zeros(0, np.float32)

    monkeypatch.setattr(seeding, "find_objects_steps", slow)
    objects = list(c.objects.ids)
    snapshot = vol.copy()
    job = widget.controller.cells.find(0, **{**kw, "points_per_side": 16})  # 256 clicks: 4 batches
    assert job.total == 4 + 2
    qtbot.waitUntil(lambda: len(batches) >= 1, timeout=20000)
    assert widget.controller.cancel()
    widget.controller.wait(timeout=60)
    assert job.done and job.result is None
    assert len(batches) < 4 and batches[0] == (1, 4)
    assert c.objects.ids == objects
    np.testing.assert_array_equal(vol, snapshot)
    assert "cancelled" in widget.status.text()


# --------------------------------------------------------------------------------- divisions


def _fake_propagate_frame(self, t, objects, reverse, ahead=None):
    """A stand-in for the model while propagating: object 1 is one disk before frame 3 and two
    disks from frame 3 on (a division); any other object keeps the mask of its first prompt."""
    from napari_sam2.video._sparse import MaskCrop
    from napari_sam2.video.session import FrameResult

    masks = []
    for obj in objects:
        if obj.obj_id == 1:
            m = _disk(64, 64, 15) if t < 3 else _disk(64, 40, 10) | _disk(64, 88, 10)
        else:
            m = obj.prompts[min(obj.prompts)].mask
        masks.append(m)
        obj.tracked[t] = reverse
    ids = [o.obj_id for o in objects]
    masks = np.stack(masks)
    self.label_volume.write(t, ids, [MaskCrop(0, 0, np.where(m, 10.0, -10.0)) for m in masks])
    return FrameResult(t, ids, masks, np.ones(len(ids), np.float32))


def test_follow_divisions_records_lineage(viewer_widget, monkeypatch, tmp_path):
    import napari_sam2.video.division_propagation as lineage_mod
    from napari_sam2.video.session import VideoSession

    viewer, widget = viewer_widget
    c = widget.controller
    widget.controller.prompts.add_point((0, 64, 64), wait=True)  # object 1
    monkeypatch.setattr(VideoSession, "_propagate_frame", _fake_propagate_frame)
    calls = []
    original = lineage_mod.propagate_with_divisions

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(lineage_mod, "propagate_with_divisions", spy)
    vol = widget.controller.labels_layer.data

    # off (Generic): the plain path, the two pieces keep the mother's id
    assert not c.propagation.follow_divisions
    widget.controller.propagation.run("forward", start=0, wait=True)
    assert not calls and widget.controller.session.lineage == {}
    assert set(np.unique(vol[8])) == {0, 1}

    # on (the check box): daughters get new ids, linked to their mother
    widget.many_cells.divisions_check.setChecked(True)
    assert c.propagation.follow_divisions
    done = widget.controller.propagation.run("forward", start=0, wait=True)
    assert len(calls) == 1 and done == list(range(10))
    assert widget.controller.session.lineage == {2: 1, 3: 1}
    assert {1, 2, 3} <= set(c.objects.ids) and widget.objects_list.count() == 3
    assert set(np.unique(vol[1])) == {0, 1}
    assert set(np.unique(vol[8])) == {0, 2, 3}
    assert (vol[3] == 2).any() and not (vol[3] == 1).any()  # relabelled from the split on

    # the lineage reaches the CTC export and the Tracks layer
    folder = widget.controller.exports.ctc(tmp_path / "01_RES")
    rows = {
        int(r[0]): [int(v) for v in r[1:]]
        for r in (line.split() for line in (folder / "res_track.txt").read_text().splitlines())
    }
    assert rows[1] == [0, 2, 0] and rows[2] == [3, 9, 1] and rows[3] == [3, 9, 1]
    tracks = widget.controller.exports.tracks_layer()
    assert tracks.graph == {2: [1], 3: [1]}

    # "both" runs the backward half first, then the forward half with divisions
    done = widget.controller.propagation.run("both", start=5, wait=True)
    assert done == [5, 4, 3, 2, 1, 0, 5, 6, 7, 8, 9]
    assert widget.controller.session.lineage == {2: 1, 3: 1}
    # removing a daughter drops her lineage entry
    widget.controller.objects.remove(3, wait=True)
    assert widget.controller.session.lineage == {2: 1}


# --------------------------------------------------------------------------------- presets


def test_presets_change_settings(viewer_widget):
    from napari_sam2.video.memory_bank import MemorySettings

    viewer, widget = viewer_widget
    c = widget.controller
    widget.many_cells.section.expand(animate=False)
    assert c.cells.preset == "Generic" and not c.propagation.follow_divisions
    assert widget.many_cells.preset_combo.currentText() == "Generic"
    defaults = MemorySettings()
    assert c.model.settings == defaults  # Generic is the plain default behaviour
    # not managed by presets: kept
    widget.controller.model.set_memory_setting("num_memory_frames", 3)

    i = widget.many_cells.preset_combo.findText("Bacteria")
    widget.many_cells.preset_combo.setCurrentIndex(i)
    widget.many_cells._on_preset_activated(i)  # what a user's choice in the combo box calls
    assert c.cells.preset == "Bacteria"
    assert c.model.settings.non_overlap and c.propagation.follow_divisions
    assert c.propagation.division_settings.neck_ratio == 0.5 and c.cells.points_per_side == 32
    assert (
        widget.many_cells.divisions_check.isChecked()
        and widget.many_cells.points_spin.value() == 32
    )
    assert c.model.settings.num_memory_frames == 3

    widget.controller.cells.set_preset("Nuclei (fluorescence)")
    assert widget.many_cells.preset_combo.currentText() == "Nuclei (fluorescence)"
    assert c.model.settings.fill_holes_area == 16 and c.model.settings.non_overlap
    assert c.propagation.division_settings.neck_ratio is None and c.propagation.follow_divisions

    widget.many_cells.divisions_check.setChecked(False)  # the user may override the preset
    assert not c.propagation.follow_divisions
    widget.many_cells.points_spin.setValue(12)
    assert c.cells.points_per_side == 12

    widget.controller.cells.set_preset("Generic")
    assert c.model.settings == defaults.replace(num_memory_frames=3)
    assert not c.propagation.follow_divisions and not widget.many_cells.divisions_check.isChecked()
    assert c.cells.points_per_side == 16
    with pytest.raises(ValueError, match="preset must be one of"):
        widget.controller.cells.set_preset("Yeast")
