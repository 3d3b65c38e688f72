"""Helpers of the GUI tests: napari mouse clicks through napari's own callbacks, and the
notifications a call emits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Mouse:
    type: str
    position: tuple
    modifiers: tuple = ()
    button: int = 1
    pos: np.ndarray = field(default_factory=lambda: np.zeros(2))
    is_dragging: bool = False
    dims_displayed: tuple = (1, 2)
    dims_point: tuple | None = None
    view_direction: tuple | None = None
    handled: bool = False


def click(layer, world_position, modifiers=(), button=1):
    """A mouse click on a layer, through napari's own callbacks (as the canvas sends it)."""
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

    pos = tuple(float(v) for v in world_position)
    press = _Mouse("mouse_press", pos, tuple(modifiers), button)
    mouse_press_callbacks(layer, ReadOnlyWrapper(press, exceptions=("handled",)))
    release = _Mouse("mouse_release", pos, tuple(modifiers), button)
    mouse_release_callbacks(layer, ReadOnlyWrapper(release, exceptions=("handled",)))


def notifications_during(func):
    """Messages of the napari notifications emitted while ``func`` runs."""
    from napari.utils.notifications import notification_manager

    seen = []

    def grab(n):
        seen.append(str(n.message))

    notification_manager.notification_ready.connect(grab)
    try:
        func()
    finally:
        notification_manager.notification_ready.disconnect(grab)
    return seen
