"""The logic behind the "SAM 2 tracking" dock widget, usable without it.

:class:`TrackingController` owns one small part per job, each with its own state, all sharing
one :class:`~napari_sam2._napari._state.TrackingState` (viewer, job queue, signals, image,
session, label volume, layers) that is handed to them in their constructors:

=====================  ==================================================================
``model``              :class:`~napari_sam2._napari._model.ModelControl`: load, device,
                       precision, memory settings
``objects``            :class:`~napari_sam2._napari._objects.ObjectsControl`: add, select,
                       remove objects
``prompts``            :class:`~napari_sam2._napari._prompts.PromptsControl`: clicks, boxes,
                       painted edits
``propagation``        :class:`~napari_sam2._napari._propagation.PropagationControl`: track
                       through the movie, follow divisions
``cells``              :class:`~napari_sam2._napari._many_cells.ManyCellsControl`: presets,
                       seed from labels, find all cells
``region``             :class:`~napari_sam2._napari._region.RegionControl`: region of interest
``zoom``               :class:`~napari_sam2._napari._zoom.ZoomControl`: cell size, windows
``exports``            :class:`~napari_sam2._napari._exports.ExportsControl`: TIFF, CTC, CSV,
                       tracks
=====================  ==================================================================

The controller itself chooses the image layer (and channel), makes the plugin's layers, writes
the status line and binds the keyboard shortcuts. Scripts call the parts directly, e.g.
``controller.prompts.add_point((0, 120, 80))`` then ``controller.propagation.run("forward")``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from ._exports import ExportsControl
from ._help import SHORTCUTS
from ._many_cells import ManyCellsControl
from ._model import ModelControl
from ._objects import ObjectsControl
from ._prompts import PromptsControl
from ._propagation import PropagationControl
from ._region import RegionControl
from ._sessions import SessionKeeper
from ._state import TrackingEvents, TrackingState
from ._zoom import ZoomControl
from .jobs import JobQueue
from .layers import POSITIVE_COLOR, ImageInfo, base_volume, inspect_image_layer, label_volume_for

__all__ = ["TrackingController"]


class TrackingController:
    """Interactive SAM 2 tracking in a napari viewer (the widget's logic, scriptable).

    Args:
        viewer: the napari viewer.
        bind_keys: bind the keyboard shortcuts of :data:`~napari_sam2._napari._help.SHORTCUTS`
            on the viewer.

    Attributes:
        events: the :class:`~napari_sam2._napari._state.TrackingEvents` (signals).
        model, objects, prompts, propagation, cells, region, zoom, exports: the parts (see
            the module docstring).
    """

    def __init__(self, viewer: Any, *, bind_keys: bool = True) -> None:
        st = self._state = TrackingState(viewer)
        st.describe = self.status_text
        st.jobs.busy_changed.connect(self._on_busy)
        st.jobs.progress.connect(
            lambda job, done, total: st.events.progress_changed.emit(done, total)
        )
        self.sessions = SessionKeeper(st, self._session_options)
        self.model = ModelControl(st, self.sessions)
        self.region = RegionControl(st, self.sessions)
        self.zoom = ZoomControl(st)
        self.objects = ObjectsControl(st)
        self.prompts = PromptsControl(st, self.objects, self.model, self.region, self.sessions)
        self.propagation = PropagationControl(st, self.objects, self.model, self.sessions)
        self.cells = ManyCellsControl(st, self.objects, self.model, self.sessions, self.propagation)
        self.exports = ExportsControl(st)
        self._bound: dict[str, Any] = {}
        viewer.layers.events.removed.connect(self._on_layer_removed)
        if bind_keys:
            self.bind_shortcuts()

    def _session_options(self) -> dict[str, Any]:
        return {
            "model": self.model.loaded,
            "settings": self.model.settings,
            "precision": self.model.precision,
            "roi": self.region.roi,
            "cell_diameter": self.zoom.cell_diameter,
            "zoom": self.zoom.mode,
        }

    # ================================================================== shared state (read)
    @property
    def viewer(self) -> Any:
        return self._state.viewer

    @property
    def events(self) -> TrackingEvents:
        return self._state.events

    @property
    def jobs(self) -> JobQueue:
        return self._state.jobs

    @property
    def info(self) -> ImageInfo | None:
        """The tracked image layer (None before one is chosen)."""
        return self._state.info

    @property
    def channel(self) -> Any:
        return self._state.channel

    @property
    def session(self) -> Any:
        """The current :class:`~napari_sam2.video.session.VideoSession` (None before the first
        prompt)."""
        return self._state.session

    @property
    def volume(self) -> np.ndarray | None:
        """(T, H, W) label volume (the Labels layer's data or its base array)."""
        return self._state.volume

    @property
    def labels_layer(self) -> Any:
        return self._state.labels_layer

    @property
    def points_layer(self) -> Any:
        return self._state.points_layer

    @property
    def shapes_layer(self) -> Any:
        return self._state.shapes_layer

    @property
    def scores(self) -> dict[tuple[int, int], float]:
        """{(frame, object id): presence score} of the propagated frames."""
        return self._state.scores

    @property
    def labels_file(self) -> str | None:
        """A label TIFF path new label volumes live in, memory-mapped (None: in memory, or in
        a temporary file above ``DISK_THRESHOLD_BYTES``; see ``video._disk_volume``)."""
        return self._state.labels_file

    @labels_file.setter
    def labels_file(self, path: str | None) -> None:
        self._state.labels_file = path

    @property
    def num_frames(self) -> int:
        return self._state.num_frames

    def current_frame(self) -> int:
        """The frame under the time slider (data index of the image layer)."""
        return self._state.current_frame()

    def set_current_frame(self, t: int) -> None:
        """Move the time slider to frame ``t``."""
        self._state.set_current_frame(t)

    # ================================================================== image & layers
    def set_image_layer(self, layer: Any, *, channel: Any = "default", contrast: str = "auto"):
        """Track ``layer`` (an Image layer, or its name).

        Args:
            layer: napari Image layer (T, Y, X), (T, Y, X, 3) RGB or (T, C, Y, X).
            channel: for (T, C, Y, X): the channel index; for RGB: None (all three) or 0..2.
            contrast: "auto" (robust percentiles over time) or "layer" (the layer's contrast
                limits, i.e. what you see is what the model sees).

        Raises:
            UnsupportedLayerError: the layer cannot be tracked (the message says why).
        """
        st = self._state
        if isinstance(layer, str):
            layer = st.viewer.layers[layer]
        info = inspect_image_layer(layer)
        if st.info is not None and info.layer is st.info.layer:
            self.set_channel(channel, contrast=contrast)
            return
        if st.jobs.busy:
            st.jobs.clear()
            st.jobs.wait()
        st.info = info
        st.channel = (
            info.channels[0][1]
            if (info.channels and channel == "default")
            else (None if channel == "default" else channel)
        )
        st.contrast = contrast
        st.session = None
        st.scores.clear()
        self.region.forget()
        self._make_layers()
        st.events.image_changed.emit()
        st.events.objects_changed.emit()
        st.report()

    def set_channel(self, channel: Any, *, contrast: str | None = None) -> None:
        """Change the channel (and/or contrast mode) the model sees; prompts are re-run."""
        st = self._state
        if st.info is None:
            raise RuntimeError("choose an image layer first")
        if channel == "default":
            channel = st.channel
        valid = [c for _, c in st.info.channels]
        if valid and channel not in valid:
            raise ValueError(f"channel must be one of {valid}, got {channel!r}")
        if contrast is not None and contrast not in ("auto", "layer"):
            raise ValueError("contrast must be 'auto' or 'layer'")
        changed = channel != st.channel or (contrast is not None and contrast != st.contrast)
        st.channel = channel
        if contrast is not None:
            st.contrast = contrast
        if changed:
            self.sessions.rebuild()
            st.events.image_changed.emit()

    def _make_layers(self) -> None:
        """Create (or reuse) the Labels, clicks and boxes layers of the current image."""
        st = self._state
        info = st.info
        img = info.layer
        name = f"{img.name} [SAM2 labels]"
        layers = st.viewer.layers
        labels = layers[name] if name in layers else None
        expected = (info.num_frames, *info.frame_shape)
        vol = None
        if labels is not None:
            data = labels.data
            if isinstance(data, np.ndarray) and data.dtype.kind in "iu":
                cand = base_volume(data)
                if cand.shape == expected:
                    vol = cand
            if vol is None:
                labels.name = f"{name} (old)"
                labels = None
        self._disconnect_layers()
        if vol is None:
            from napari_sam2.video._disk_volume import new_label_volume

            vol = new_label_volume(expected, np.uint16, st.labels_file)
            labels = st.viewer.add_labels(
                label_volume_for(info, vol), name=name, scale=img.scale, translate=img.translate
            )
        st.volume = vol
        st.labels_layer = labels
        self.objects.reset([int(i) for i in np.unique(vol) if i])
        st.points_layer = self._prompt_layer(f"{img.name} [SAM2 clicks]", "points", info)
        st.shapes_layer = self._prompt_layer(f"{img.name} [SAM2 boxes]", "shapes", info)
        self._connect_layers()
        st.viewer.layers.selection.active = st.points_layer
        st.points_layer.mode = "add"

    def _prompt_layer(self, name: str, kind: str, info: ImageInfo) -> Any:
        import pandas as pd

        st = self._state
        img = info.layer
        if name in st.viewer.layers:
            with st.suppressed():
                st.viewer.layers.remove(name)
        features = pd.DataFrame(
            {"obj_id": pd.Series([], dtype=int), "positive": pd.Series([], dtype=bool)}
        )
        common = dict(name=name, ndim=info.ndim, scale=img.scale, translate=img.translate)
        if kind == "points":
            return st.viewer.add_points(
                None,
                features=features,
                size=max(3.0, min(info.frame_shape) / 50),
                border_width=0.25,
                border_width_is_relative=True,
                face_color=POSITIVE_COLOR,
                **common,
            )
        return st.viewer.add_shapes(
            None,
            features=features,
            edge_width=max(1.0, min(info.frame_shape) / 200),
            face_color=[0, 0, 0, 0],
            **common,
        )

    def _connect_layers(self) -> None:
        labels = self._state.labels_layer
        self.prompts.attach()
        labels.events.data.connect(self._on_labels_data)
        labels.events.selected_label.connect(self.objects.on_selected_label)

    def _disconnect_layers(self) -> None:
        self.prompts.detach()
        labels = self._state.labels_layer
        if labels is None:
            return
        for ev, cb in (
            ("data", self._on_labels_data),
            ("selected_label", self.objects.on_selected_label),
        ):
            with contextlib.suppress(Exception):
                getattr(labels.events, ev).disconnect(cb)

    def _on_labels_data(self, event: Any = None) -> None:
        """The Labels layer got a new array (e.g. from the console): the session writes there."""
        st = self._state
        if st.suppressing or st.labels_layer is None:
            return
        data = st.labels_layer.data
        vol = base_volume(data) if isinstance(data, np.ndarray) else None
        if vol is not None and vol is not st.volume and vol.shape == st.volume.shape:
            st.relink_volume(vol, "linking the new labels")

    def _on_layer_removed(self, event: Any) -> None:
        st = self._state
        layer = event.value
        if st.suppressing:
            return
        if st.info is not None and layer is st.info.layer:
            st.jobs.clear()
            self._disconnect_layers()
            st.info = None
            st.session = None
            st.labels_layer = st.points_layer = st.shapes_layer = None
            self.region.forget()
            st.events.image_changed.emit()
            st.report()
        elif self.region.on_layer_removed(layer):
            return
        elif layer in (st.labels_layer, st.points_layer, st.shapes_layer):
            # deleted by the user: it comes back (same data) when next needed
            st.removed_layers.add(id(layer))

    # ================================================================== jobs & status
    def wait(self, timeout: float | None = None) -> None:
        """Block (processing Qt events) until all queued work is done."""
        self._state.jobs.wait(timeout)

    @property
    def busy(self) -> bool:
        return self._state.jobs.busy

    def cancel(self) -> bool:
        """Stop the running propagation, cell search or download (finished frames are kept)
        and drop queued ones. Prompts already given keep their place in the queue."""
        hit = self._state.jobs.cancel()
        if hit:
            self._state.report("cancelling...")
        return hit

    def _on_busy(self, busy: bool) -> None:
        self._state.events.busy_changed.emit(busy)
        self._state.report()

    def status_text(self) -> str:
        """The status line: model, image, selected object and click sign, running job."""
        st = self._state
        parts = [self.model.description]
        if st.info is not None:
            parts.append(st.info.describe())
            if self.objects.current is not None:
                sign = "negative" if self.prompts.negative_mode else "positive"
                parts.append(f"object {self.objects.current}, {sign} clicks")
        if st.jobs.current is not None:
            parts.append(f"busy: {st.jobs.current.name}")
            if st.jobs.pending:
                parts.append(f"{len(st.jobs.pending)} waiting")
        elif st.status_extra:
            parts.append(st.status_extra)
        return " | ".join(parts)

    # ================================================================== shortcuts
    def bind_shortcuts(self) -> None:
        """Bind :data:`SHORTCUTS` on the viewer (restored by :meth:`close`)."""
        actions = {
            "new_object": lambda v: self._safe(self.objects.add),
            "next_object": lambda v: self.objects.next(1),
            "previous_object": lambda v: self.objects.next(-1),
            "propagate_forward": lambda v: self._safe(self.propagation.run, "forward"),
            "propagate_backward": lambda v: self._safe(self.propagation.run, "backward"),
            "cancel": lambda v: self.cancel(),
            "toggle_negative": lambda v: self.prompts.toggle_negative(),
            "use_edit": lambda v: self._safe(self.prompts.use_edit),
        }
        for action, (key, _) in SHORTCUTS.items():
            func = actions[action]
            func.__name__ = f"sam2_{action}"
            func.__doc__ = SHORTCUTS[action][1]
            prev = self.viewer.bind_key(key, func, overwrite=True)
            self._bound[key] = prev

    def unbind_shortcuts(self) -> None:
        for key, prev in self._bound.items():
            with contextlib.suppress(Exception):
                self.viewer.bind_key(key, prev, overwrite=True)
        self._bound.clear()

    def _safe(self, func, *args, **kwargs):
        """Run an action from the GUI: errors become notifications."""
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported to the user
            from napari.utils.notifications import show_error

            show_error(f"SAM 2: {exc}")
            return None

    def close(self) -> None:
        """Stop work, unbind shortcuts and disconnect from the layers."""
        self._state.jobs.close()
        self.unbind_shortcuts()
        self._disconnect_layers()
        with contextlib.suppress(Exception):
            self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
