"""Fixtures of the napari plugin tests (run GUI tests under Xvfb, see docs/usage.md)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

_HAS_DISPLAY = bool(
    os.environ.get("DISPLAY")
    or os.environ.get("WAYLAND_DISPLAY")
    or sys.platform in ("darwin", "win32")
)


def pytest_collection_modifyitems(config, items):
    if _HAS_DISPLAY:
        return
    skip = pytest.mark.skip(reason="no display: run under xvfb-run (see docs/usage.md)")
    for item in items:
        if "gui" in item.keywords and "tests/napari" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture
def tiny_model():
    """Random-weight 256-px model whose masks are not empty (object score forced positive)."""
    from napari_sam2 import load_model

    model = load_model("test_tiny_256", device="cpu")
    model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.data.fill_(6.0)
    return model


@pytest.fixture
def small_movie() -> np.ndarray:
    """(10, 128, 128) uint8 synthetic nuclei."""
    from napari_sam2.train.synthetic import make_movie

    return make_movie(kind="nuclei", n_frames=10, shape=(128, 128), n_cells=6, seed=3).movie


@pytest.fixture(scope="module")
def shared_viewer(qapp):
    """One hidden viewer per test module (a napari viewer takes seconds to build here)."""
    import napari._qt.qt_main_window as napari_main_window
    import napari.plugins as napari_plugins

    import napari

    # napari's make_napari_viewer fixture (used by other test modules) clears the lru_caches of
    # napari.plugins._initialize_plugins and of the Qt actions' init_qactions at setup, while
    # the global app-model registry still holds the commands an earlier shared viewer (of
    # another module) registered; a plain Viewer() would then register them a second time and
    # fail with "already registered". Tolerate exactly that while building the shared viewer.
    originals = {
        (napari_plugins, "_initialize_plugins"): napari_plugins._initialize_plugins,
        (napari_main_window, "init_qactions"): napari_main_window.init_qactions,
    }

    def once(func):
        def run() -> None:
            try:
                func()
            except ValueError as err:
                if "already registered" not in str(err):
                    raise

        return run

    for (module, name), func in originals.items():
        setattr(module, name, once(func))
    try:
        viewer = napari.Viewer(show=False)
    finally:
        for (module, name), func in originals.items():
            setattr(module, name, func)
    yield viewer
    viewer.window.remove_dock_widget("all")
    viewer.close()


@pytest.fixture
def fresh_viewer(shared_viewer, qtbot):
    """The shared viewer, emptied; plugin widgets docked during the test are closed after."""
    viewer = shared_viewer
    viewer.layers.clear()
    yield viewer
    from napari_sam2._napari.widget import SAM2Widget

    for dock in list(viewer.window.dock_widgets.values()):
        inner = dock.widget() if hasattr(dock, "widget") else dock
        for w in [inner, *inner.findChildren(SAM2Widget)]:
            if isinstance(w, SAM2Widget):
                w.controller.cancel()
                w.controller.wait(timeout=60)
                w.close_controller()
    viewer.window.remove_dock_widget("all")
    viewer.layers.clear()
    qtbot.wait(10)


@pytest.fixture
def viewer_widget(fresh_viewer, small_movie, tiny_model):
    """(viewer, widget) with a small movie chosen and the tiny model loaded."""
    from napari_sam2._napari import open_widget

    viewer = fresh_viewer
    viewer.add_image(small_movie, name="movie")
    widget = open_widget(viewer)
    widget.controller.model.set_model(tiny_model)
    widget.controller.wait(timeout=60)
    viewer.dims.set_point(0, 0)
    return viewer, widget
