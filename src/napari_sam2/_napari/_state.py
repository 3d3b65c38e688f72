"""What the parts of the tracking controller share, in one small object.

:class:`TrackingState` holds the viewer, the serial job queue, the signals, the chosen image
layer, the :class:`~napari_sam2.video.session.VideoSession`, the label volume and the three
layers the plugin adds (labels, clicks, boxes). The sub-controllers of
:class:`~napari_sam2._napari.controller.TrackingController` (model, objects, prompts,
propagation, many cells, region, exports, zoom) each receive it in their constructor, keep
their own state to themselves and talk to each other only through the arguments they are
given.

Threading: every session call happens inside a job (one at a time, in a worker thread). The
session writes its results straight into the Labels layer's array (the layer's data IS the
session's label volume); the main thread only refreshes the layer when a job reports a frame.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from psygnal import Signal

from .jobs import Job, JobQueue
from .layers import ImageInfo

__all__ = ["REFRESH_INTERVAL", "TrackingEvents", "TrackingState"]

#: Shortest time between display updates of the labels (s).
REFRESH_INTERVAL = 0.1


class TrackingEvents:
    """Signals of the tracking controller (all emitted on the main thread).

    Signals:
        status_changed(str): the status line.
        objects_changed(): objects added, removed or selected.
        model_changed(): a model was loaded, moved or downloaded.
        image_changed(): another image layer or channel is tracked (or none).
        busy_changed(bool): work started / all work finished.
        frame_done(int): a propagated frame.
        progress_changed(int, int): steps done and total of the running propagation, cell
            search or download (a few times per second).
        mask_shown(int, int): a prompt's mask is shown (frame, object id).
        settings_changed(): memory settings, divisions or preset changed.
        roi_changed(): the region of interest (or its layer) changed.
        labels_refreshed(): the Labels layer was redrawn.
    """

    status_changed = Signal(str)
    objects_changed = Signal()
    model_changed = Signal()
    image_changed = Signal()
    busy_changed = Signal(bool)
    frame_done = Signal(int)
    progress_changed = Signal(int, int)
    mask_shown = Signal(int, int)
    settings_changed = Signal()
    roi_changed = Signal()
    labels_refreshed = Signal()


class TrackingState:
    """The state shared by the tracking controller's parts.

    Args:
        viewer: the napari viewer.

    Attributes:
        viewer: the napari viewer.
        events: the :class:`TrackingEvents`.
        jobs: the serial :class:`~napari_sam2._napari.jobs.JobQueue` all model work runs in.
        info: the tracked image layer (None before one is chosen).
        channel: the channel the model sees (FrameSource ``channel``).
        contrast: "auto" (robust percentiles over time) or "layer" (the layer's limits).
        session: the :class:`~napari_sam2.video.session.VideoSession` (built on first use).
        volume: (T, H, W) label volume (the Labels layer's data or its base array).
        labels_file: a label TIFF path: new label volumes live there, memory-mapped (None: in
            memory, or in a temporary file above ``DISK_THRESHOLD_BYTES``).
        labels_layer, points_layer, shapes_layer: the layers the plugin added.
        scores: {(frame, object id): presence score} of propagated frames.
        describe: returns the status line (set by the controller, which knows its parts).
    """

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.events = TrackingEvents()
        self.jobs = JobQueue()
        self.info: ImageInfo | None = None
        self.channel: Any = None
        self.contrast = "auto"
        self.session: Any = None
        self.volume: np.ndarray | None = None
        self.labels_file: str | None = None
        self.labels_layer: Any = None
        self.points_layer: Any = None
        self.shapes_layer: Any = None
        self.scores: dict[tuple[int, int], float] = {}
        self.describe: Callable[[], str] = lambda: self.status_extra
        self.status_extra = ""
        self.removed_layers: set[int] = set()  # ids of plugin layers the user deleted
        self._suppress = 0
        self._last_refresh = 0.0

    # ------------------------------------------------------------------ layer events
    @contextlib.contextmanager
    def suppressed(self) -> Iterator[None]:
        """Changes made to the layers inside this block are not taken for user edits."""
        self._suppress += 1
        try:
            yield
        finally:
            self._suppress -= 1

    @property
    def suppressing(self) -> bool:
        """Whether layer events come from the plugin itself (see :meth:`suppressed`)."""
        return self._suppress > 0

    def ensure_layers(self) -> None:
        """Re-add plugin layers the user deleted (their data are kept)."""
        if not self.removed_layers:
            return
        self.removed_layers.clear()
        layers = self.viewer.layers
        with self.suppressed():
            for layer in (self.labels_layer, self.points_layer, self.shapes_layer):
                if layer is not None and layer not in layers:
                    layers.append(layer)

    # ------------------------------------------------------------------ frames & coordinates
    def need_image(self) -> ImageInfo:
        """The tracked image (its deleted plugin layers are re-added).

        Raises:
            RuntimeError: no image layer chosen.
        """
        if self.info is None:
            raise RuntimeError("choose an image layer first (Data section or set_image_layer)")
        self.ensure_layers()
        return self.info

    @property
    def num_frames(self) -> int:
        """T of the tracked image (0 without one)."""
        return 0 if self.info is None else self.info.num_frames

    def current_frame(self) -> int:
        """The frame under the time slider (data index of the image layer)."""
        info = self.need_image()
        pos = info.layer.world_to_data(self.viewer.dims.point[-info.ndim :])
        t = int(round(float(pos[info.t_axis])))
        return int(np.clip(t, 0, info.num_frames - 1))

    def set_current_frame(self, t: int) -> None:
        """Move the time slider to frame ``t``."""
        info = self.need_image()
        coords = np.zeros(info.ndim)
        coords[info.t_axis] = t
        world = info.layer.data_to_world(coords)
        axis = self.viewer.dims.ndim - info.ndim + info.t_axis
        self.viewer.dims.set_point(axis, float(world[info.t_axis]))

    def current_channel_coord(self) -> float:
        """The channel index under the channel slider of a (T, C, Y, X) layer (else 0)."""
        info = self.info
        if info is None or info.layer_axes != "TCYX":
            return 0.0
        pos = info.layer.world_to_data(self.viewer.dims.point[-info.ndim :])
        return float(round(float(pos[1])))

    def item_frame(self, layer: Any, i: int) -> int:
        """Frame index of item ``i`` of a Points or Shapes layer over the image."""
        coords = np.asarray(layer.data[i])
        if coords.ndim == 2:  # shape vertices
            coords = coords[0]
        return int(round(coords[self.info.t_axis]))

    # ------------------------------------------------------------------ jobs
    def submit(self, job: Job) -> Job:
        """Queue ``job`` (run after the jobs queued before it)."""
        return self.jobs.submit(job)

    def submit_edit(
        self, name: str, fn: Callable[[], Any], on_error: Callable[[Any], None] | None = None
    ) -> Job:
        """Queue ``fn`` as a prompt job that changes labels (no progress bar); the Labels
        layer is redrawn when it is done."""
        job = Job(name, fn, kind="prompt", total=0, on_error=on_error)
        job.on_result = lambda _: self.refresh_labels(force=True)
        return self.submit(job)

    def finish(self, job: Job, wait: bool) -> Any:
        """``job`` itself, or with ``wait=True`` its result once done (its error raised)."""
        if not wait:
            return job
        self.jobs.wait(job=job)
        if job.error is not None:
            raise job.error
        return job.result

    def relink_volume(self, volume: np.ndarray, name: str) -> None:
        """Make ``volume`` the label volume, and the session's too (in a job)."""
        self.volume = volume

        def relink() -> None:
            if self.session is not None:
                self.session.set_label_volume(volume)

        self.submit(Job(name, relink, kind="prompt", total=0))

    # ------------------------------------------------------------------ display
    def refresh_labels(self, force: bool = False) -> None:
        """Redraw the Labels layer (at most every :data:`REFRESH_INTERVAL` unless ``force``)."""
        if self.labels_layer is None:
            return
        now = time.perf_counter()
        if force or now - self._last_refresh >= REFRESH_INTERVAL:
            self._last_refresh = now
            self.labels_layer.refresh()
            self.events.labels_refreshed.emit()

    def report(self, extra: str | None = None) -> None:
        """Emit the status line; ``extra`` replaces its last part (what was done last)."""
        if extra is not None:
            self.status_extra = extra
        self.events.status_changed.emit(self.describe())
