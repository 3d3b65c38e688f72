"""The napari plugin of napari-sam2 (dock widget, reader, writer, sample data).

Only this subpackage imports napari / Qt. Scripted use::

    import napari
    from napari_sam2._napari import open_widget

    viewer = napari.Viewer()
    widget = open_widget(viewer)          # the "SAM 2 tracking" dock widget
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from .widget import SAM2Widget

__all__ = ["open_widget"]

PLUGIN_NAME = "napari-sam2"
WIDGET_NAME = "SAM 2 tracking"


def open_widget(viewer: napari.viewer.Viewer | None = None) -> SAM2Widget:
    """Dock the "SAM 2 tracking" widget in ``viewer`` (default: the current viewer, or a new
    one) through the plugin manifest, and return the widget."""
    import napari

    if viewer is None:
        viewer = napari.current_viewer() or napari.Viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN_NAME, WIDGET_NAME)
    return widget
