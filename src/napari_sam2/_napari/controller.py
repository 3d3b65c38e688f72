"""The logic behind the "SAM 2 tracking" dock widget, usable without it.

:class:`TrackingController` owns the model, the :class:`~napari_sam2.video.session.VideoSession`
of the chosen image layer, the Labels / Points / Shapes layers it adds, the objects, and a
serial :class:`~napari_sam2._napari.jobs.JobQueue` that runs all model work in napari thread
workers. The widget is a thin view over it; scripts can drive it directly.

Threading: every session call happens inside a job (one at a time, in a worker thread). The
session writes its results straight into the Labels layer's array (the layer's data IS the
session's label volume); the main thread only refreshes the layer when a job reports a frame.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np
from psygnal import Signal

from ._exports import ExportsMixin
from ._help import SHORTCUTS
from ._many_cells import PRESETS, ManyCellsMixin
from ._model import (
    BUNDLED,
    DEVICES,
    LOAD_FROM_FILE,
    PRECISIONS,
    ModelMixin,
    bundled_model_installed,
    model_choices,
)
from ._prompts import PromptsMixin
from ._propagation import _REFRESH_INTERVAL, DIRECTIONS, PropagationMixin
from ._roi import ROI_LAYER_NAME, RoiMixin
from .jobs import Job, JobQueue
from .layers import (
    POSITIVE_COLOR,
    ImageInfo,
    base_volume,
    inspect_image_layer,
    label_volume_for,
    rgba,
)

# names re-exported for scripts that imported them from here before the split
__all__ = [
    "BUNDLED",
    "DEVICES",
    "DIRECTIONS",
    "LOAD_FROM_FILE",
    "PRECISIONS",
    "PRESETS",
    "ROI_LAYER_NAME",
    "TrackingController",
    "bundled_model_installed",
    "model_choices",
]


class TrackingController(
    ModelMixin, PromptsMixin, PropagationMixin, ManyCellsMixin, ExportsMixin, RoiMixin
):
    """Interactive SAM 2 tracking in a napari viewer (the widget's logic, scriptable).

    Args:
        viewer: the napari viewer.
        bind_keys: bind the keyboard shortcuts of :data:`~napari_sam2._napari._help.SHORTCUTS`
            on the viewer.

    Signals (main thread):
        status_changed(str), objects_changed(), model_changed(), image_changed(),
        busy_changed(bool), frame_done(int), progress_changed(int, int) (steps done, total of
        the running propagation or download; a few times per second), mask_shown(int, int)
        (frame, object id), settings_changed(), roi_changed() (:attr:`roi` or the region
        layer changed).

    Region of interest: :meth:`set_roi`, :meth:`roi_from_view`, :meth:`use_view_as_roi`
    (see :mod:`napari_sam2._napari._roi`).
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

    def __init__(self, viewer, *, bind_keys: bool = True) -> None:
        self.viewer = viewer
        self.jobs = JobQueue()
        self.jobs.busy_changed.connect(self._on_busy)
        self.jobs.progress.connect(lambda job, done, total: self.progress_changed.emit(done, total))
        self.model = None
        self.model_name: str | None = None
        self.model_choice: str | None = self._default_choice()
        self.device = "auto"
        self.precision = "fp32"
        self._settings = None  # MemorySettings, created on first use (importing torch is slow)
        self.info: ImageInfo | None = None
        self.channel: Any = None
        self.contrast = "auto"
        self.session = None
        # (object, region) pairs already told that the object is too small for the model
        self._small_hinted: set[tuple[int, Any]] = set()
        self.volume: np.ndarray | None = None  # (T, H, W) label volume (layer data or its base)
        #: a label TIFF path: new label volumes live there, memory-mapped (None: in memory, or
        #: in a temporary file above DISK_THRESHOLD_BYTES; see video._label_volume)
        self.labels_file: str | None = None
        self.labels_layer = None
        self.points_layer = None
        self.shapes_layer = None
        self._roi: tuple[int, int, int, int] | None = None  # region of interest (image px)
        self.roi_layer = None  # the "SAM 2 region" Shapes layer
        self.objects: list[int] = []
        self.current_id: int | None = None
        self.negative_mode = False
        self.follow = True
        self.scores: dict[tuple[int, int], float] = {}
        self.timings: dict[str, list[float]] = {"click_to_mask": [], "frame": []}
        self._suppress = 0
        self._click = (1, ())  # (button, modifiers) of the last press on the clicks layer
        self._n_shapes = 0
        self._resync_pairs: set[tuple[int, int]] = set()
        self._last_refresh = 0.0
        self._refresh_interval = _REFRESH_INTERVAL
        self._bound: dict[str, Any] = {}
        self._removed_layers: set[int] = set()
        self._status_extra = ""
        self._init_many_cells()
        from ._zoom import ZoomControl

        self.zoom = ZoomControl(self)  # cell size for automatic zoom, windows layer
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        if bind_keys:
            self.bind_shortcuts()

    @property
    def settings(self):
        """The :class:`~napari_sam2.video.memory_bank.MemorySettings` for the next job."""
        if self._settings is None:
            from napari_sam2.video.memory_bank import MemorySettings

            self._settings = MemorySettings()
        return self._settings

    @settings.setter
    def settings(self, value) -> None:
        self._settings = value

    # ================================================================== data
    def set_image_layer(self, layer, *, channel: Any = "default", contrast: str = "auto") -> None:
        """Track ``layer`` (an Image layer, or its name).

        Args:
            layer: napari Image layer (T, Y, X), (T, Y, X, 3) RGB or (T, C, Y, X).
            channel: for (T, C, Y, X): the channel index; for RGB: None (all three) or 0..2.
            contrast: "auto" (robust percentiles over time) or "layer" (the layer's contrast
                limits, i.e. what you see is what the model sees).

        Raises:
            UnsupportedLayerError: the layer cannot be tracked (the message says why).
        """
        if isinstance(layer, str):
            layer = self.viewer.layers[layer]
        info = inspect_image_layer(layer)
        if self.info is not None and info.layer is self.info.layer:
            self.set_channel(channel, contrast=contrast)
            return
        if self.jobs.busy:
            self.jobs.clear()
            self.wait()
        self.info = info
        self.channel = (
            info.channels[0][1]
            if (info.channels and channel == "default")
            else (None if channel == "default" else channel)
        )
        self.contrast = contrast
        self.session = None
        self.scores.clear()
        self._small_hinted.clear()
        self._forget_roi()
        self._make_layers()
        self.image_changed.emit()
        self.objects_changed.emit()
        self._emit_status()

    def set_channel(self, channel: Any, *, contrast: str | None = None) -> None:
        """Change the channel (and/or contrast mode) the model sees; prompts are re-run."""
        if self.info is None:
            raise RuntimeError("choose an image layer first")
        if channel == "default":
            channel = self.channel
        valid = [c for _, c in self.info.channels]
        if valid and channel not in valid:
            raise ValueError(f"channel must be one of {valid}, got {channel!r}")
        changed = channel != self.channel or (contrast is not None and contrast != self.contrast)
        self.channel = channel
        if contrast is not None:
            if contrast not in ("auto", "layer"):
                raise ValueError("contrast must be 'auto' or 'layer'")
            self.contrast = contrast
        if changed:
            self._rebuild_session()

    def _make_layers(self) -> None:
        """Create (or reuse) the Labels, clicks and boxes layers of the current image."""
        info = self.info
        img = info.layer
        name = f"{img.name} [SAM2 labels]"
        layers = self.viewer.layers
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

            vol = new_label_volume(expected, np.uint16, self.labels_file)
            labels = self.viewer.add_labels(
                label_volume_for(info, vol), name=name, scale=img.scale, translate=img.translate
            )
        self.volume = vol
        self.labels_layer = labels
        found = sorted(int(i) for i in np.unique(vol) if i) if labels is not None else []
        self.objects = found
        self.current_id = found[0] if found else None
        self.points_layer = self._prompt_layer(f"{img.name} [SAM2 clicks]", "points", info, img)
        self.shapes_layer = self._prompt_layer(f"{img.name} [SAM2 boxes]", "shapes", info, img)
        self._n_shapes = len(self.shapes_layer.data)
        self._connect_layers()
        self.viewer.layers.selection.active = self.points_layer
        self.points_layer.mode = "add"

    def _prompt_layer(self, name: str, kind: str, info: ImageInfo, img):
        import pandas as pd

        layers = self.viewer.layers
        if name in layers:
            with self._suppressed():
                layers.remove(name)
        features = pd.DataFrame(
            {"obj_id": pd.Series([], dtype=int), "positive": pd.Series([], dtype=bool)}
        )
        common = dict(name=name, ndim=info.ndim, scale=img.scale, translate=img.translate)
        if kind == "points":
            size = max(3.0, min(info.frame_shape) / 50)
            return self.viewer.add_points(
                None,
                features=features,
                size=size,
                border_width=0.25,
                border_width_is_relative=True,
                face_color=POSITIVE_COLOR,
                **common,
            )
        layer = self.viewer.add_shapes(
            None,
            features=features,
            edge_width=max(1.0, min(info.frame_shape) / 200),
            face_color=[0, 0, 0, 0],
            **common,
        )
        return layer

    def _connect_layers(self) -> None:
        self.points_layer.events.data.connect(self._on_points_data)
        self.points_layer.mouse_drag_callbacks.insert(0, self._record_click)
        self.shapes_layer.events.data.connect(self._on_shapes_data)
        self.labels_layer.events.data.connect(self._on_labels_data)
        self.labels_layer.events.selected_label.connect(self._on_selected_label)

    def _disconnect_layers(self) -> None:
        for layer, cbs in (
            (self.points_layer, [("data", self._on_points_data)]),
            (self.shapes_layer, [("data", self._on_shapes_data)]),
            (
                self.labels_layer,
                [("data", self._on_labels_data), ("selected_label", self._on_selected_label)],
            ),
        ):
            if layer is None:
                continue
            for ev, cb in cbs:
                with contextlib.suppress(Exception):
                    getattr(layer.events, ev).disconnect(cb)
        if self.points_layer is not None and self._record_click in (
            self.points_layer.mouse_drag_callbacks
        ):
            self.points_layer.mouse_drag_callbacks.remove(self._record_click)

    def _on_layer_removed(self, event) -> None:
        layer = event.value
        if self._suppress:
            return
        if self.info is not None and layer is self.info.layer:
            self.jobs.clear()
            self._disconnect_layers()
            self.info = None
            self.session = None
            self.labels_layer = self.points_layer = self.shapes_layer = None
            self._forget_roi()
            self.image_changed.emit()
            self._emit_status()
        elif self.roi_layer is not None and layer == self.roi_layer:
            self.roi_layer = None  # the region still applies; "Full frame" clears it
        elif layer in (self.labels_layer, self.points_layer, self.shapes_layer):
            # deleted by the user: it comes back (same data) when next needed
            self._removed_layers.add(id(layer))

    def _ensure_layers(self) -> None:
        """Re-add plugin layers the user deleted (their data are kept)."""
        if not self._removed_layers:
            return
        self._removed_layers.clear()
        layers = self.viewer.layers
        with self._suppressed():
            for layer in (self.labels_layer, self.points_layer, self.shapes_layer):
                if layer is not None and layer not in layers:
                    layers.append(layer)

    # ================================================================== frames & coordinates
    @property
    def num_frames(self) -> int:
        return 0 if self.info is None else self.info.num_frames

    def current_frame(self) -> int:
        """The frame under the time slider (data index of the image layer)."""
        info = self._need_image()
        pos = info.layer.world_to_data(self.viewer.dims.point[-info.ndim :])
        t = int(round(float(pos[info.t_axis])))
        return int(np.clip(t, 0, info.num_frames - 1))

    def _current_channel_coord(self) -> float:
        info = self.info
        if info.layer_axes != "TCYX":
            return 0.0
        pos = info.layer.world_to_data(self.viewer.dims.point[-info.ndim :])
        return float(round(float(pos[1])))

    def set_current_frame(self, t: int) -> None:
        """Move the time slider to frame ``t``."""
        info = self._need_image()
        coords = np.zeros(info.ndim)
        coords[info.t_axis] = t
        world = info.layer.data_to_world(coords)
        axis = self.viewer.dims.ndim - info.ndim + info.t_axis
        self.viewer.dims.set_point(axis, float(world[info.t_axis]))

    def _need_image(self) -> ImageInfo:
        if self.info is None:
            raise RuntimeError("choose an image layer first (Data section or set_image_layer)")
        self._ensure_layers()
        return self.info

    # ================================================================== objects
    def color(self, obj_id: int) -> np.ndarray:
        """(4,) RGBA of an object, as the Labels layer draws it."""
        if self.labels_layer is None:
            return np.array([1, 1, 1, 1], np.float32)
        return rgba(self.labels_layer.get_color(obj_id))

    def next_free_id(self) -> int:
        """One above every id in use: objects, labels on any frame, and the lineage."""
        used = max(self.objects, default=0)
        if self.volume is not None and self.volume.size:
            used = max(used, int(self.volume.max()))
        if self.session is not None and self.session.lineage:
            lineage = dict(self.session.lineage)
            used = max(used, *lineage, *lineage.values())
        return used + 1

    def add_object(self, obj_id: int | None = None) -> int:
        """Create an object (default: the next free id) and select it."""
        self._need_image()
        obj_id = self.next_free_id() if obj_id is None else int(obj_id)
        if not 1 <= obj_id <= np.iinfo(np.uint32).max:
            raise ValueError("object ids are 1 .. 4294967295 (0 is background)")
        if obj_id > np.iinfo(self.volume.dtype).max:
            self._widen_volume()
        if obj_id not in self.objects:
            self.objects.append(obj_id)
            self.objects.sort()
        self.select_object(obj_id)
        return obj_id

    def _widen_volume(self) -> None:
        """Switch the label volume to uint32 (ids above 65,535), keeping the layer and the
        session on the same array."""
        from napari_sam2.video._disk_volume import widened

        new = widened(self.volume)  # a memory-mapped volume stays on disk
        self.volume = new
        with self._suppressed():
            self.labels_layer.data = label_volume_for(self.info, new)

        def relink():
            if self.session is not None:
                self.session.set_label_volume(new)

        self._submit(Job("switching labels to 32 bits", relink, kind="prompt", total=0))

    def select_object(self, obj_id: int) -> None:
        if obj_id not in self.objects:
            raise ValueError(f"no object {obj_id}; objects: {self.objects}")
        self.current_id = int(obj_id)
        if self.labels_layer is not None and self.labels_layer.selected_label != obj_id:
            with self._suppressed():
                self.labels_layer.selected_label = int(obj_id)
        self.objects_changed.emit()

    def next_object(self, step: int = 1) -> int | None:
        """Select the next (step=1) or previous (step=-1) object; returns its id."""
        if not self.objects:
            return None
        if self.current_id not in self.objects:
            self.select_object(self.objects[0])
        else:
            i = (self.objects.index(self.current_id) + step) % len(self.objects)
            self.select_object(self.objects[i])
        return self.current_id

    def remove_object(self, obj_id: int | None = None, *, wait: bool = False) -> None:
        """Forget an object: its prompts, its memory and its labels on every frame."""
        obj_id = self.current_id if obj_id is None else int(obj_id)
        if obj_id not in self.objects:
            raise ValueError(f"no object {obj_id}; objects: {self.objects}")
        self.objects.remove(obj_id)
        if self.current_id == obj_id:
            self.current_id = self.objects[0] if self.objects else None
            if self.current_id is not None and self.labels_layer is not None:
                with self._suppressed():
                    self.labels_layer.selected_label = self.current_id
        self._remove_prompt_marks(obj_id)
        for k in [k for k in self.scores if k[1] == obj_id]:
            del self.scores[k]

        def work():
            s = self.session
            if s is not None and obj_id in s.obj_ids:
                s.remove_object(obj_id)
            if s is not None:  # its divisions go too (its daughters stay, without a mother)
                for d, m in list(s.lineage.items()):
                    if obj_id in (d, m):
                        del s.lineage[d]
            vol = self.volume
            for t in range(vol.shape[0]):
                frame = vol[t]
                hit = frame == obj_id
                if hit.any():
                    frame[hit] = 0
            return obj_id

        self._submit(
            Job(
                f"removing object {obj_id}",
                work,
                kind="prompt",
                total=0,
                on_result=lambda _: self._refresh_labels(force=True),
            )
        )
        self.objects_changed.emit()
        if wait:
            self.wait()

    def _remove_prompt_marks(self, obj_id: int, frame: int | None = None) -> None:
        """Delete an object's clicks and boxes from the prompt layers (optionally one frame)."""
        for layer in (self.points_layer, self.shapes_layer):
            if layer is None or len(layer.data) == 0:
                continue
            ids = np.asarray(layer.features["obj_id"])
            hit = ids == obj_id
            if frame is not None:
                hit &= np.array(
                    [self._layer_item_frame(layer, i) == frame for i in range(len(ids))]
                )
            idx = np.flatnonzero(hit)
            if len(idx):
                with self._suppressed():
                    if layer is self.points_layer:
                        layer.selected_data = set()
                        layer.remove(list(idx))
                    else:
                        layer.selected_data = set(int(i) for i in idx)
                        layer.remove_selected()
                if layer is self.shapes_layer:
                    self._n_shapes = len(layer.data)

    def _layer_item_frame(self, layer, i: int) -> int:
        coords = np.asarray(layer.data[i])
        if coords.ndim == 2:  # shape vertices
            coords = coords[0]
        return int(round(coords[self.info.t_axis]))

    # ================================================================== session
    def _ensure_session(self):
        """The session of the current image (built on first use; worker thread)."""
        if self.session is None:
            from napari_sam2.video.session import VideoSession

            if self.model is None:
                raise RuntimeError("no model loaded: choose one in the Model section")
            info = self._need_image()
            limits = None
            if self.contrast == "layer" and info.axes != "TYXC":
                limits = tuple(float(v) for v in info.layer.contrast_limits)
            s = VideoSession(
                self.model,
                info.data,
                axes=info.axes,
                channel=self.channel,
                contrast_limits=limits,
                settings=self.settings.replace(),
                precision=self.precision,
                roi=self._roi,
                cell_diameter=self.zoom.cell_diameter,
                zoom=self.zoom.mode,
            )
            s.set_label_volume(self.volume)
            self.session = s
        self.session.settings = self.settings.replace()
        self.session.precision = self.precision
        return self.session

    def _rebuild_session(self) -> None:
        """Rebuild the session (new model, device or channel) and re-run its prompts (a job);
        a new region of interest goes through :meth:`set_roi`, which does the same."""
        if self.info is None:
            return
        self._submit(
            Job(
                "re-running the prompts",
                self._replay_session,
                kind="prompt",
                total=0,
                on_result=lambda _: self._refresh_labels(force=True),
            )
        )

    def _replay_session(self) -> None:
        """Worker side of :meth:`_rebuild_session`: a new session (current model, channel,
        region of interest...) with the old one's prompts (painted mask prompts keep their
        exact pixels, as with "use my edit"); the prompted frames are encoded again."""
        old, self.session = self.session, None
        if self.model is None or self.info is None:
            return
        s = self._ensure_session()
        if old is None:
            return
        s.lineage.update(old.lineage)
        for obj in old.obj_ids:
            for t, p in sorted(old.prompts(obj).items()):
                if p.mask is not None:
                    s.add_mask(t, obj, p.mask)
                    lab = self.volume[t]
                    lab[(lab == obj) & ~p.mask] = 0
                    lab[p.mask] = obj
                    continue
                if p.box is not None:
                    s.add_box(t, obj, p.box)
                if len(p.points):
                    s.add_points(t, obj, p.points, p.labels)

    # ------------------------------------------------------------------ memory settings
    def set_memory_setting(self, name: str, value) -> None:
        """Change one :class:`~napari_sam2.video.memory_bank.MemorySettings` field; it reaches
        the session before the next prompt or propagation."""
        new = self.settings.replace(**{name: value})
        if self.model is not None:
            cfg = self.model.config
            new.validate(cfg.num_maskmem, cfg.max_obj_ptrs_in_encoder)
        else:
            new.validate()
        self.settings = new
        self.settings_changed.emit()

    # ================================================================== misc
    def toggle_negative(self) -> bool:
        self.negative_mode = not self.negative_mode
        self._emit_status()
        return self.negative_mode

    def wait(self, timeout: float | None = None) -> None:
        """Block (processing Qt events) until all queued work is done."""
        self.jobs.wait(timeout)

    @property
    def busy(self) -> bool:
        return self.jobs.busy

    def _maybe_wait(self, job: Job, wait: bool):
        if not wait:
            return job
        self.jobs.wait(job=job)
        if job.error is not None:
            raise job.error
        return job.result

    def _submit(self, job: Job) -> Job:
        return self.jobs.submit(job)

    def _on_busy(self, busy: bool) -> None:
        self.busy_changed.emit(busy)
        self._emit_status()

    def _refresh_labels(self, force: bool = False) -> None:
        if self.labels_layer is None:
            return
        now = time.perf_counter()
        if force or now - self._last_refresh >= _REFRESH_INTERVAL:
            self._last_refresh = now
            self.labels_layer.refresh()
            self.zoom.refresh()

    def status_text(self) -> str:
        parts = [self.model_description]
        if self.info is not None:
            parts.append(self.info.describe())
            if self.current_id is not None:
                sign = "negative" if self.negative_mode else "positive"
                parts.append(f"object {self.current_id}, {sign} clicks")
        if self.jobs.current is not None:
            parts.append(f"busy: {self.jobs.current.name}")
            if self.jobs.pending:
                parts.append(f"{len(self.jobs.pending)} waiting")
        elif self._status_extra:
            parts.append(self._status_extra)
        return " | ".join(parts)

    def _emit_status(self, extra: str | None = None) -> None:
        if extra is not None:
            self._status_extra = extra
        self.status_changed.emit(self.status_text())

    # ------------------------------------------------------------------ shortcuts
    def bind_shortcuts(self) -> None:
        """Bind :data:`SHORTCUTS` on the viewer (restored by :meth:`close`)."""
        actions = {
            "new_object": lambda v: self._safe(self.add_object),
            "next_object": lambda v: self.next_object(1),
            "previous_object": lambda v: self.next_object(-1),
            "propagate_forward": lambda v: self._safe(self.propagate, "forward"),
            "propagate_backward": lambda v: self._safe(self.propagate, "backward"),
            "cancel": lambda v: self.cancel(),
            "toggle_negative": lambda v: self.toggle_negative(),
            "use_edit": lambda v: self._safe(self.use_edit),
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
        self.jobs.close()
        self.unbind_shortcuts()
        self._disconnect_layers()
        with contextlib.suppress(Exception):
            self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
