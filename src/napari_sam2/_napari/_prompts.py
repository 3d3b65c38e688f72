"""The prompts part of the tracking controller (``controller.prompts``): clicks in
the clicks (Points) layer, rectangles in the boxes (Shapes) layer, painted edits sent as masks,
and re-running a frame's prompts when the user deletes or moves a click or box.

Negative clicks: Alt+click or right-click in the clicks layer's add mode (napari uses no
modifier there; Shift / Ctrl only select points in select mode), or the "negative clicks"
toggle (Shift+T).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._model import ModelControl
from ._objects import ObjectsControl
from ._region import RegionControl
from ._sessions import SessionKeeper
from ._state import TrackingState
from .jobs import Job
from .layers import NEGATIVE_COLOR, POSITIVE_COLOR

__all__ = ["PromptsControl"]


class PromptsControl:
    """Clicks, boxes and painted edits given to the model, from a script or the prompt layers.

    Args:
        state: the controller's shared :class:`~napari_sam2._napari._state.TrackingState`.
        objects: the object list (prompts go to the selected object).
        model: queues loading the chosen model before the first prompt.
        region: refuses prompts outside the region of interest.
        sessions: gives the session the prompts go to.

    Attributes:
        negative_mode: clicks mark background (the "negative clicks" toggle).
        click_to_mask_s: seconds from each prompt to its mask on screen.
    """

    def __init__(
        self,
        state: TrackingState,
        objects: ObjectsControl,
        model: ModelControl,
        region: RegionControl,
        sessions: SessionKeeper,
    ) -> None:
        self._state = state
        self._objects = objects
        self._model = model
        self._region = region
        self._sessions = sessions
        self.negative_mode = False
        self.click_to_mask_s: list[float] = []
        self._click: tuple[int, tuple] = (1, ())  # (button, modifiers) of the last press
        self._n_shapes = 0
        self._resync_pairs: set[tuple[int, int]] = set()
        # (object, region) pairs already told that the object is too small for the model
        self._small_hinted: set[tuple[int, Any]] = set()
        objects.removed.connect(self.remove_marks)

    def toggle_negative(self) -> bool:
        """Switch clicks between positive and negative; returns the new mode."""
        self.negative_mode = not self.negative_mode
        self._state.report()
        return self.negative_mode

    # ------------------------------------------------------------------ layers
    def attach(self) -> None:
        """Listen to the state's clicks and boxes layers (after they were made)."""
        st = self._state
        self._small_hinted.clear()
        self._n_shapes = len(st.shapes_layer.data)
        st.points_layer.events.data.connect(self._on_points_data)
        st.points_layer.mouse_drag_callbacks.insert(0, self._record_click)
        st.shapes_layer.events.data.connect(self._on_shapes_data)

    def detach(self) -> None:
        """Stop listening to the clicks and boxes layers."""
        st = self._state
        for layer, cb in (
            (st.points_layer, self._on_points_data),
            (st.shapes_layer, self._on_shapes_data),
        ):
            if layer is not None:
                with contextlib.suppress(Exception):
                    layer.events.data.disconnect(cb)
        if st.points_layer is not None and self._record_click in (
            st.points_layer.mouse_drag_callbacks
        ):
            st.points_layer.mouse_drag_callbacks.remove(self._record_click)

    def remove_marks(self, obj_id: int, frame: int | None = None) -> None:
        """Delete an object's clicks and boxes from the prompt layers (optionally one frame)."""
        st = self._state
        for layer in (st.points_layer, st.shapes_layer):
            if layer is None or len(layer.data) == 0:
                continue
            ids = np.asarray(layer.features["obj_id"])
            hit = ids == obj_id
            if frame is not None:
                hit &= np.array([st.item_frame(layer, i) == frame for i in range(len(ids))])
            idx = np.flatnonzero(hit)
            if len(idx):
                with st.suppressed():
                    if layer is st.points_layer:
                        layer.selected_data = set()
                        layer.remove(list(idx))
                    else:
                        layer.selected_data = set(int(i) for i in idx)
                        layer.remove_selected()
                if layer is st.shapes_layer:
                    self._n_shapes = len(layer.data)

    def _is_negative_click(self) -> bool:
        button, modifiers = self._click
        alt = "Alt" in modifiers
        return self.negative_mode != (button == 2 or alt)

    def _record_click(self, layer, event) -> None:
        """First mouse-drag callback of the clicks layer: remember button and modifiers (the
        point itself is added by napari's add mode right after)."""
        self._click = (
            int(getattr(event, "button", 1) or 1),
            tuple(getattr(event, "modifiers", ()) or ()),
        )

    def add_point(
        self,
        coords: Sequence[float],
        positive: bool = True,
        *,
        obj_id: int | None = None,
        wait: bool = False,
    ):
        """Click on an object at ``coords`` = (t, y, x) (image pixels, t = frame index).

        The point is added to the clicks layer, the time slider moves to frame t, and the
        object's mask on that frame is computed in the background and shown at once.

        Returns:
            With ``wait=True`` the (H, W) bool mask of the object on that frame, else the job.
        """
        st = self._state
        info = st.need_image()
        t, y, x = (float(v) for v in coords)
        frame = int(round(t))
        self._check_point(frame, y, x)
        self._model.ensure_queued()
        obj = self._objects.ensure_current() if obj_id is None else self._objects.use(obj_id)
        with st.suppressed():
            st.points_layer.selected_data = set()
            st.points_layer.add(info.to_layer_coords(frame, y, x, st.current_channel_coord()))
        self._decorate_points([len(st.points_layer.data) - 1], obj, positive)
        if frame != st.current_frame():
            st.set_current_frame(frame)
        job = self._submit_points(frame, obj, [(y, x)], [positive])
        return self._state.finish(job, wait)

    def add_box(
        self, frame: int, box: Sequence[float], *, obj_id: int | None = None, wait: bool = False
    ):
        """Give an object's bounding box (y0, x0, y1, x1) in image pixels on ``frame``."""
        info = self._state.need_image()
        y0, x0, y1, x1 = (float(v) for v in box)
        h, w = info.frame_shape
        if not (y1 > y0 and x1 > x0 and y1 >= 0 and x1 >= 0 and y0 <= h - 1 and x0 <= w - 1):
            raise ValueError(f"box {tuple(box)} is empty or outside the image ({h} x {w})")
        if not 0 <= int(frame) < info.num_frames:
            raise ValueError(f"frame {frame} is outside the movie (0..{info.num_frames - 1})")
        self._region.check_box((y0, x0, y1, x1))
        self._model.ensure_queued()
        obj = self._objects.ensure_current() if obj_id is None else self._objects.use(obj_id)
        c = self._state.current_channel_coord()
        corners = [
            info.to_layer_coords(frame, yy, xx, c)
            for yy, xx in ((y0, x0), (y0, x1), (y1, x1), (y1, x0))
        ]
        with self._state.suppressed():
            self._state.shapes_layer.add_rectangles(np.array(corners))
        self._n_shapes = len(self._state.shapes_layer.data)
        self._decorate_shape(self._n_shapes - 1, obj)
        if frame != self._state.current_frame():
            self._state.set_current_frame(frame)
        job = self._submit_box(int(frame), obj, (y0, x0, y1, x1))
        return self._state.finish(job, wait)

    def use_edit(self, obj_id: int | None = None, frame: int | None = None, *, wait: bool = False):
        """Send the painted pixels of an object on a frame (default: selected object, current
        frame) to the model as a mask prompt; the painted mask is kept exactly as painted."""
        st = self._state
        st.need_image()
        obj = self._objects.current if obj_id is None else int(obj_id)
        if obj is None:
            raise RuntimeError("select an object first")
        t = self._state.current_frame() if frame is None else int(frame)
        mask = np.asarray(st.volume[t] == obj)
        if not mask.any():
            from napari.utils.notifications import show_info

            show_info(
                f"Object {obj} has no painted pixels on frame {t}: paint it first "
                "(Labels layer, paint mode) and try again."
            )
            return None
        self._objects.include(obj)
        self.remove_marks(obj, frame=t)

        def work():
            s = self._sessions.ensure()
            s.add_mask(t, obj, mask)
            lab = st.volume[t]  # keep the user's edit exactly
            lab[(lab == obj) & ~mask] = 0
            lab[mask] = obj
            return mask

        job = self._state.submit(
            Job(
                f"using your edit of object {obj} on frame {t}",
                work,
                kind="prompt",
                on_result=lambda _: self._show(t, obj),
            )
        )
        return self._state.finish(job, wait)

    def _check_point(self, frame: int, y: float, x: float) -> None:
        info = self._state.info
        h, w = info.frame_shape
        if not (0 <= frame < info.num_frames):
            raise ValueError(f"frame {frame} is outside the movie (0..{info.num_frames - 1})")
        if not (0 <= y <= h - 1 and 0 <= x <= w - 1):
            raise ValueError(f"point (y={y:.1f}, x={x:.1f}) is outside the image ({h} x {w})")
        self._region.check_point(y, x)

    def _submit_points(self, t: int, obj: int, pts, positives) -> Job:
        labels = [int(bool(p)) for p in positives]
        self._model.ensure_queued()

        def work():
            s = self._sessions.ensure()
            return s.add_points(t, obj, np.asarray(pts, float), labels)

        return self._state.submit(
            Job(
                f"segmenting object {obj} on frame {t}",
                work,
                kind="prompt",
                on_result=lambda mask: self._show(t, obj, mask=mask),
            )
        )

    def _submit_box(self, t: int, obj: int, box) -> Job:
        self._model.ensure_queued()

        def work():
            return self._sessions.ensure().add_box(t, obj, box)

        return self._state.submit(
            Job(
                f"segmenting object {obj} in a box on frame {t}",
                work,
                kind="prompt",
                on_result=lambda _: self._show(t, obj, box=box),
            )
        )

    def _show(self, t: int, obj: int, mask=None, box=None) -> None:
        st = self._state
        job = st.jobs.current
        if job is not None:
            self.click_to_mask_s.append(time.perf_counter() - job.submitted)
        st.refresh_labels(force=True)
        st.events.mask_shown.emit(t, obj)
        st.report()
        if mask is not None or box is not None:
            self._hint_if_too_small(obj, mask, box)

    def _hint_if_too_small(self, obj: int, mask, box) -> None:
        """Tell the user (once per object) to zoom in when the object is too small for the
        model at the current region (:meth:`VideoSession.too_small_hint`)."""
        session = self._state.session
        key = (obj, None if session is None else session.roi)
        if session is None or key in self._small_hinted:
            return
        hint = session.too_small_hint(mask=mask, box=box)
        if hint is not None:
            from napari.utils.notifications import show_info

            self._small_hinted.add(key)
            show_info(f"SAM 2: object {obj}: {hint}")

    def _decorate_points(self, indices: Sequence[int], obj: int, positive: bool) -> None:
        layer = self._state.points_layer
        idx = list(indices)
        with self._state.suppressed():
            feats = layer.features
            feats.loc[idx, "obj_id"] = obj
            feats.loc[idx, "positive"] = bool(positive)
            face = layer.face_color.copy()
            face[idx] = POSITIVE_COLOR if positive else NEGATIVE_COLOR
            layer.face_color = face
            border = layer.border_color.copy()
            border[idx] = self._objects.color(obj)
            layer.border_color = border
            layer.selected_data = set()

    def _decorate_shape(self, i: int, obj: int) -> None:
        layer = self._state.shapes_layer
        with self._state.suppressed():
            layer.features.loc[i, "obj_id"] = obj
            layer.features.loc[i, "positive"] = True
            edge = np.asarray(layer.edge_color).copy()
            edge[i] = self._objects.color(obj)
            layer.edge_color = edge

    # ------------------------------------------------------------------ layer events
    def _on_points_data(self, event) -> None:
        if self._state.suppressing or self._state.info is None:
            return
        action = str(getattr(event, "action", ""))
        layer = self._state.points_layer
        n = len(layer.data)
        if action.endswith("added"):
            idx = sorted({int(i) % n for i in event.data_indices if n})
            self._points_added(idx)
        elif action.endswith("removing") or action.endswith("changing"):
            for i in event.data_indices:
                if 0 <= int(i) < n:
                    self._resync_pairs.add(self._point_pair(int(i)))
        elif action.endswith("removed") or action.endswith("changed"):
            if action.endswith("changed"):
                for i in event.data_indices:
                    if 0 <= int(i) < n:
                        self._resync_pairs.add(self._point_pair(int(i)))
            pairs, self._resync_pairs = self._resync_pairs, set()
            for t, obj in sorted(pairs):
                self._resync(t, obj)

    def _point_pair(self, i: int) -> tuple[int, int]:
        return self._state.item_frame(self._state.points_layer, i), int(
            self._state.points_layer.features["obj_id"].iloc[i]
        )

    def _points_added(self, idx: list[int]) -> None:
        from napari.utils.notifications import show_info

        layer = self._state.points_layer
        negative = self._is_negative_click()
        self._click = (1, ())
        keep, bad = [], []
        for i in idx:
            t, y, x = self._state.info.to_frame_coords(layer.data[i])
            try:
                self._check_point(int(round(t)), y, x)
                keep.append((i, int(round(t)), y, x))
            except ValueError as exc:
                bad.append(i)
                show_info(f"SAM 2: click ignored: {exc}")
        # a click that is refused adds nothing
        obj = self._objects.ensure_current() if keep else None
        if keep:
            self._decorate_points([k[0] for k in keep], obj, not negative)
        if bad:
            with self._state.suppressed():
                layer.selected_data = set()
                layer.remove(bad)
        try:
            for _, t, y, x in keep:
                self._submit_points(t, obj, [(y, x)], [not negative])
        except RuntimeError as exc:  # no model
            from napari.utils.notifications import show_error

            show_error(f"SAM 2: {exc}")
            with self._state.suppressed():
                layer.selected_data = set()
                layer.remove([k[0] for k in keep])

    def _on_shapes_data(self, event) -> None:
        if self._state.suppressing or self._state.info is None:
            return
        action = str(getattr(event, "action", ""))
        layer = self._state.shapes_layer
        n = len(layer.data)
        if action.endswith("added"):
            new = list(range(self._n_shapes, n))
            self._n_shapes = n
            for i in reversed(new):
                self._shape_added(i)
        elif action.endswith("removing") or action.endswith("changing"):
            for i in event.data_indices:
                if 0 <= int(i) < n:
                    self._resync_pairs.add(self._shape_pair(int(i)))
        elif action.endswith("removed") or action.endswith("changed"):
            if action.endswith("changed"):
                for i in event.data_indices:
                    if 0 <= int(i) < n:
                        self._resync_pairs.add(self._shape_pair(int(i)))
            self._n_shapes = n
            pairs, self._resync_pairs = self._resync_pairs, set()
            for t, obj in sorted(pairs):
                self._resync(t, obj)

    def _shape_pair(self, i: int) -> tuple[int, int]:
        return self._state.item_frame(self._state.shapes_layer, i), int(
            self._state.shapes_layer.features["obj_id"].iloc[i]
        )

    def _shape_box(self, i: int) -> tuple[int, tuple[float, float, float, float]]:
        verts = np.asarray(self._state.shapes_layer.data[i], dtype=float)
        yi, xi = self._state.info.spatial_axes
        t = int(round(verts[0, self._state.info.t_axis]))
        ys, xs = verts[:, yi], verts[:, xi]
        return t, (ys.min(), xs.min(), ys.max(), xs.max())

    def _shape_added(self, i: int) -> None:
        from napari.utils.notifications import show_info

        layer = self._state.shapes_layer
        stype = layer.shape_type[i]
        t, box = self._shape_box(i)
        h, w = self._state.info.frame_shape
        y0, x0, y1, x1 = box
        ok = stype == "rectangle" and y1 - y0 >= 2 and x1 - x0 >= 2
        ok = ok and y1 >= 0 and x1 >= 0 and y0 <= h - 1 and x0 <= w - 1
        if not ok:
            show_info(
                "SAM 2: draw a rectangle (mode 'R') around the object; "
                f"a {stype} of {y1 - y0:.0f} x {x1 - x0:.0f} px was ignored"
            )
        else:
            try:
                self._region.check_box(box)
            except ValueError as exc:
                ok = False
                show_info(f"SAM 2: box ignored: {exc}")
        if not ok:
            with self._state.suppressed():
                layer.selected_data = {i}
                layer.remove_selected()
            self._n_shapes = len(layer.data)
            return
        obj = self._objects.ensure_current()
        self._decorate_shape(i, obj)
        box = (max(y0, 0.0), max(x0, 0.0), min(y1, h - 1.0), min(x1, w - 1.0))
        try:
            self._submit_box(t, obj, box)
        except RuntimeError as exc:  # no model
            from napari.utils.notifications import show_error

            show_error(f"SAM 2: {exc}")
            with self._state.suppressed():
                layer.selected_data = {i}
                layer.remove_selected()
            self._n_shapes = len(layer.data)

    def _resync(self, t: int, obj: int) -> None:
        """Re-run an object's prompts on a frame from what the prompt layers now hold (after
        the user deleted or moved a click or box)."""
        pts, labs, box = [], [], None
        layer = self._state.points_layer
        for i in range(len(layer.data)):
            if self._point_pair(i) == (t, obj):
                _, y, x = self._state.info.to_frame_coords(layer.data[i])
                pts.append((y, x))
                labs.append(int(bool(layer.features["positive"].iloc[i])))
        for i in range(len(self._state.shapes_layer.data)):
            if self._shape_pair(i) == (t, obj):
                box = self._shape_box(i)[1]

        def work():
            s = self._sessions.ensure()
            if obj in s.obj_ids:
                s.clear_prompts(t, obj)
            if box is not None:
                s.add_box(t, obj, box)
            if pts:
                s.add_points(t, obj, np.asarray(pts, float), labs)

        self._state.submit(
            Job(
                f"updating object {obj} on frame {t}",
                work,
                kind="prompt",
                on_result=lambda _: self._show(t, obj),
            )
        )
