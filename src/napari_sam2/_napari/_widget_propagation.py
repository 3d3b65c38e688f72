"""The "Propagation" section of the dock widget: direction, optional frame range, "follow in
viewer", Propagate / Cancel and the progress bar. The inputs are magicgui widgets; a thin view
over the controller's :class:`~napari_sam2._napari._propagation.PropagationControl`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, PushButton, SpinBox
from qtpy.QtWidgets import QGroupBox, QProgressBar, QVBoxLayout

from ._help import SHORTCUTS, shortcut_help
from ._propagation import DIRECTIONS

__all__ = ["PropagationPanel"]


class PropagationPanel:
    """The "Propagation" group box (:attr:`box`).

    Args:
        controller: the :class:`~napari_sam2._napari.controller.TrackingController` (its
            ``propagation``, ``cancel`` and job queue are used).
        safe: ``safe(func, *args)`` runs an action, turning errors into notifications.
    """

    def __init__(self, controller: Any, safe: Callable[..., Any]) -> None:
        self.controller = c = controller
        self.direction = ComboBox(
            choices=DIRECTIONS,
            value="forward",
            label="Direction",
            tooltip="Track from the current frame forward, backward or both",
        )
        self.use_range = CheckBox(
            text="frames", tooltip="Only propagate within this frame range (inclusive)"
        )
        self.first = SpinBox(min=0, max=0, enabled=False, tooltip="First frame of the range")
        self.last = SpinBox(min=0, max=0, enabled=False, tooltip="Last frame of the range")
        self.use_range.changed.connect(self._on_range_toggled)
        frames = Container(
            widgets=[self.use_range, self.first, self.last], layout="horizontal", labels=False
        )
        self.follow = CheckBox(
            text="follow in viewer",
            value=c.propagation.follow,
            tooltip="Move the time slider along with the propagation",
        )
        self.follow.changed.connect(lambda on: setattr(c.propagation, "follow", bool(on)))
        keys = f"{SHORTCUTS['propagate_forward'][0]} / {SHORTCUTS['propagate_backward'][0]}"
        self.run_button = PushButton(
            text="Propagate",
            tooltip=f"Track all prompted objects from the current frame ({keys})",
        )
        self.run_button.changed.connect(lambda *_: safe(self.run))
        self.cancel_button = PushButton(
            text="Cancel",
            enabled=False,
            tooltip="Stop; finished frames are kept" + shortcut_help("cancel"),
        )
        self.cancel_button.changed.connect(lambda *_: c.cancel())
        buttons = Container(
            widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False
        )
        self.form = Container(widgets=[self.direction, frames, self.follow, buttons])
        self.form.native.setContentsMargins(0, 0, 0, 0)
        # a plain QProgressBar: its text shows the unit ("%v / %m frames")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.progress.setToolTip(
            "Progress of the propagation (frames), cell search (steps) or download (MB)"
        )
        self.box = QGroupBox("Propagation")
        lay = QVBoxLayout(self.box)
        lay.addWidget(self.form.native)
        lay.addWidget(self.progress)
        c.events.progress_changed.connect(self._on_progress)
        c.events.busy_changed.connect(self._on_busy)

    def run(self) -> Any:
        """Propagate as the section says (direction, optional frame range)."""
        kw = {}
        if self.use_range.value:
            kw = {"first": self.first.value, "last": self.last.value}
        return self.controller.propagation.run(self.direction.value, **kw)

    def set_num_frames(self, n: int) -> None:
        """Let the frame range span a movie of ``n`` frames (the range becomes all of it)."""
        top = max(n - 1, 0)
        for spin in (self.first, self.last):
            spin.max = top
        self.last.value = top

    def _on_range_toggled(self, on: bool) -> None:
        self.first.enabled = self.last.enabled = bool(on)

    def _on_progress(self, done: int, total: int) -> None:
        job = self.controller.jobs.current
        unit = "frames" if job is None or job.kind == "propagate" else "steps"
        if job is not None and job.name.startswith("downloading"):
            unit = "MB"
        self.progress.setFormat(f"%v / %m {unit}")
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_busy(self, busy: bool) -> None:
        # no animated "busy" bar: every repaint of the window re-composites the canvas, which is
        # slow with software OpenGL; the status line says what runs, the bar shows propagation
        self.cancel_button.enabled = bool(busy)
