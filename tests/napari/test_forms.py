"""The widget's magicgui parts: the memory-bank form generated from MemorySettings, and the image
and seed-labels layer pickers that follow the viewer's layers."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_memory_form_is_generated_from_the_dataclass(qtbot):
    from magicgui.widgets import CheckBox, Container, SpinBox

    from napari_sam2._napari._forms import MemoryForm
    from napari_sam2.video.memory_settings import MemorySettings, setting_fields

    changes: list[tuple[str, object]] = []
    form = MemoryForm(lambda name, value: changes.append((name, value)))
    qtbot.addWidget(form.native)
    assert isinstance(form.container, Container)
    assert [w.name for w in form.container] == [f.name for f in setting_fields()]
    for f in setting_fields():
        widget = form.widgets[f.name]
        assert isinstance(widget, CheckBox if isinstance(f.default, bool) else SpinBox)
        assert widget.label == f.metadata["label"]
        assert widget.tooltip == f.metadata["tooltip"]

    natives = form.native_widgets()
    natives["num_memory_frames"].setValue(3)
    natives["offload_to_cpu"].setChecked(True)
    natives["max_prompted_frames"].setValue(2)
    natives["max_prompted_frames"].setValue(0)  # shown as "all"
    assert changes == [
        ("num_memory_frames", 3),
        ("offload_to_cpu", True),
        ("max_prompted_frames", 2),
        ("max_prompted_frames", None),
    ]
    assert natives["max_prompted_frames"].specialValueText() == "all"

    changes.clear()
    form.show(MemorySettings(num_memory_frames=1, non_overlap=True), num_maskmem=4, max_obj_ptrs=8)
    assert changes == []  # filling the form is not a user change
    assert form.widgets["num_memory_frames"].value == 1
    assert form.widgets["num_memory_frames"].max == 3
    assert form.widgets["max_object_pointers"].max == 8
    assert form.widgets["non_overlap"].value is True
    assert form.widgets["max_prompted_frames"].value == 0


def test_widget_memory_form_changes_the_settings(fresh_viewer, small_movie):
    from magicgui.widgets import Container

    from napari_sam2._napari import open_widget

    fresh_viewer.add_image(small_movie, name="movie")
    widget = open_widget(fresh_viewer)
    assert isinstance(widget.memory_form.container, Container)
    widget.memory_section.expand(animate=False)
    widget.memory_widgets["memory_stride"].setValue(3)
    widget.memory_widgets["max_prompted_frames"].setValue(2)
    s = widget.controller.model.settings
    assert (s.memory_stride, s.max_prompted_frames) == (3, 2)
    widget.memory_widgets["max_prompted_frames"].setValue(0)
    assert widget.controller.model.settings.max_prompted_frames is None


def test_layer_pickers_follow_the_viewer(fresh_viewer, small_movie, qtbot):
    from magicgui.widgets import ComboBox

    from napari_sam2._napari import open_widget

    viewer = fresh_viewer
    viewer.add_image(small_movie, name="movie")
    widget = open_widget(viewer)
    image, seeds = widget.image_picker, widget.many_cells.seed_picker
    assert isinstance(image.combo, ComboBox) and isinstance(seeds.combo, ComboBox)
    assert image.names == ["movie"] and image.current == "movie"
    assert seeds.names == []  # the plugin's own labels layer is never offered

    viewer.add_image(small_movie[:, ::2, ::2], name="half")
    first = viewer.add_labels(np.zeros(small_movie.shape[1:], np.uint16), name="cellpose")
    assert image.names == ["movie", "half"]
    assert image.current == "movie"  # adding a layer keeps the choice
    assert seeds.names == ["cellpose"] and seeds.current == "cellpose"
    viewer.add_labels(np.zeros(small_movie.shape[1:], np.uint16), name="stardist")
    assert seeds.names == ["cellpose", "stardist"] and seeds.current == "cellpose"

    viewer.layers.remove(first)
    assert seeds.names == ["stardist"] and seeds.current == "stardist"
    viewer.layers.remove(viewer.layers["half"])
    assert image.names == ["movie"]
    qtbot.wait(10)


def test_division_form_is_generated_from_the_dataclass(qtbot):
    from dataclasses import fields

    from magicgui.widgets import CheckBox, FloatSpinBox, SpinBox

    from napari_sam2._napari._forms import DivisionForm
    from napari_sam2.video.lineage import DivisionSettings

    changes: list[tuple[str, object]] = []
    form = DivisionForm(lambda name, value: changes.append((name, value)))
    qtbot.addWidget(form.native)
    shown = [f for f in fields(DivisionSettings) if f.name != "enabled"]  # the switch is apart
    assert [w.name for w in form.container] == [f.name for f in shown]
    kinds = {"min_frames": SpinBox, "min_fraction": FloatSpinBox, "lost_and_found": CheckBox}
    kinds["neck_ratio"] = FloatSpinBox  # float | None
    for name, kind in kinds.items():
        assert isinstance(form.widgets[name], kind), name
    assert form.widgets["min_frames"].label == "Min frames"
    assert "consecutive frames" in form.widgets["min_frames"].tooltip  # from the docstring
    assert "narrow necks" in form.widgets["neck_ratio"].tooltip  # continuation lines joined

    natives = form.native_widgets()
    natives["min_frames"].setValue(5)
    natives["min_score"].setValue(0.25)
    natives["neck_ratio"].setValue(0.5)
    natives["neck_ratio"].setValue(0.0)  # shown as "off"
    natives["lost_and_found"].setChecked(False)
    assert changes == [
        ("min_frames", 5),
        ("min_score", 0.25),
        ("neck_ratio", 0.5),
        ("neck_ratio", None),
        ("lost_and_found", False),
    ]
    assert natives["neck_ratio"].specialValueText() == "off"

    changes.clear()
    form.show(DivisionSettings(min_frames=2, neck_ratio=0.4))
    assert changes == []  # filling the form is not a user change
    assert form.widgets["min_frames"].value == 2
    assert form.widgets["neck_ratio"].value == pytest.approx(0.4)
    assert form.widgets["lost_and_found"].value is True


def test_widget_division_form_changes_the_settings(fresh_viewer, small_movie):
    from napari_sam2._napari import open_widget

    fresh_viewer.add_image(small_movie, name="movie")
    widget = open_widget(fresh_viewer)
    panel, propagation = widget.many_cells, widget.controller.propagation
    assert panel.division_form is None  # built when first opened (the engine imports torch)
    panel.section.expand(animate=False)
    panel.division_section.expand(animate=False)
    natives = panel.division_form.native_widgets()
    assert natives["min_frames"].value() == propagation.division_settings.min_frames

    natives["min_frames"].setValue(5)
    assert propagation.division_settings.min_frames == 5
    natives["min_fraction"].setValue(0.9)  # out of range (at most 0.5): refused, form reset
    assert propagation.division_settings.min_fraction == 0.2
    assert natives["min_fraction"].value() == pytest.approx(0.2)

    widget.controller.cells.set_preset("Bacteria")  # a preset's settings reach the form
    assert natives["neck_ratio"].value() == pytest.approx(0.5)
    natives["neck_ratio"].setValue(0.0)
    assert propagation.division_settings.neck_ratio is None


def test_memory_form_edit_reaches_the_session(viewer_widget):
    viewer, widget = viewer_widget
    c = widget.controller
    c.prompts.add_point((0, 64, 64), wait=True)
    assert c.session.settings.memory_stride == 1
    widget.memory_section.expand(animate=False)
    widget.memory_widgets["memory_stride"].setValue(3)
    widget.memory_widgets["num_memory_frames"].setValue(99)  # the box stops at the model's capacity
    assert widget.memory_widgets["num_memory_frames"].value() == c.model.settings.num_memory_frames
    c.propagation.run("forward", start=0, last=1, wait=True)  # the next job uses the edit
    assert c.session.settings.memory_stride == 3
    assert c.session.settings == c.model.settings


def test_propagation_panel_runs_the_range_it_shows(viewer_widget, qtbot):
    from magicgui.widgets import CheckBox, ComboBox, SpinBox
    from qtpy.QtCore import Qt

    viewer, widget = viewer_widget
    c = widget.controller
    panel = widget.propagation_panel
    assert isinstance(panel.direction, ComboBox) and isinstance(panel.use_range, CheckBox)
    assert isinstance(panel.first, SpinBox) and panel.last.value == c.num_frames - 1
    assert not panel.first.enabled and not panel.cancel_button.enabled

    panel.follow.value = False
    assert c.propagation.follow is False
    c.prompts.add_point((2, 64, 64), wait=True)
    c.set_current_frame(2)
    panel.use_range.value = True
    assert panel.first.enabled and panel.last.enabled
    panel.first.value, panel.last.value = 1, 4
    panel.direction.value = "both"
    qtbot.mouseClick(panel.run_button.native, Qt.LeftButton)
    c.wait(timeout=60)
    assert sorted({t for t, _ in c.scores}) == [1, 2, 3, 4]
    assert "frames" in panel.progress.format()
