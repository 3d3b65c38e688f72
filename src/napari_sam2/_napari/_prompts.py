"""Prompt handling of :class:`~napari_sam2._napari.controller.TrackingController`: clicks in
the clicks (Points) layer, rectangles in the boxes (Shapes) layer, painted edits sent as masks,
and re-running a frame's prompts when the user deletes or moves a click or box.

Negative clicks: Alt+click or right-click in the clicks layer's add mode (napari uses no
modifier there; Shift / Ctrl only select points in select mode), or the "negative clicks"
toggle (Shift+T).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

import numpy as np

from .jobs import Job
from .layers import NEGATIVE_COLOR, POSITIVE_COLOR, base_volume

__all__ = ["PromptsMixin"]


class PromptsMixin:
    """Prompt methods of the tracking controller (see there for the attributes used)."""

    # ================================================================== prompts
    def _ensure_object(self) -> int:
        if self.current_id is None or self.current_id not in self.objects:
            self.add_object()
        return self.current_id

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
        info = self._need_image()
        t, y, x = (float(v) for v in coords)
        frame = int(round(t))
        self._check_point(frame, y, x)
        self._ensure_model_queued()
        obj = self._ensure_object() if obj_id is None else self._use_object(obj_id)
        with self._suppressed():
            self.points_layer.selected_data = set()
            self.points_layer.add(info.to_layer_coords(frame, y, x, self._current_channel_coord()))
        self._decorate_points([len(self.points_layer.data) - 1], obj, positive)
        if frame != self.current_frame():
            self.set_current_frame(frame)
        job = self._submit_points(frame, obj, [(y, x)], [positive])
        return self._maybe_wait(job, wait)

    def add_box(
        self, frame: int, box: Sequence[float], *, obj_id: int | None = None, wait: bool = False
    ):
        """Give an object's bounding box (y0, x0, y1, x1) in image pixels on ``frame``."""
        info = self._need_image()
        y0, x0, y1, x1 = (float(v) for v in box)
        h, w = info.frame_shape
        if not (y1 > y0 and x1 > x0 and y1 >= 0 and x1 >= 0 and y0 <= h - 1 and x0 <= w - 1):
            raise ValueError(f"box {tuple(box)} is empty or outside the image ({h} x {w})")
        if not 0 <= int(frame) < self.num_frames:
            raise ValueError(f"frame {frame} is outside the movie (0..{self.num_frames - 1})")
        self._check_box_in_roi((y0, x0, y1, x1))
        self._ensure_model_queued()
        obj = self._ensure_object() if obj_id is None else self._use_object(obj_id)
        c = self._current_channel_coord()
        corners = [
            info.to_layer_coords(frame, yy, xx, c)
            for yy, xx in ((y0, x0), (y0, x1), (y1, x1), (y1, x0))
        ]
        with self._suppressed():
            self.shapes_layer.add_rectangles(np.array(corners))
        self._n_shapes = len(self.shapes_layer.data)
        self._decorate_shape(self._n_shapes - 1, obj)
        if frame != self.current_frame():
            self.set_current_frame(frame)
        job = self._submit_box(int(frame), obj, (y0, x0, y1, x1))
        return self._maybe_wait(job, wait)

    def use_edit(self, obj_id: int | None = None, frame: int | None = None, *, wait: bool = False):
        """Send the painted pixels of an object on a frame (default: selected object, current
        frame) to the model as a mask prompt; the painted mask is kept exactly as painted."""
        self._need_image()
        obj = self.current_id if obj_id is None else int(obj_id)
        if obj is None:
            raise RuntimeError("select an object first")
        t = self.current_frame() if frame is None else int(frame)
        mask = np.asarray(self.volume[t] == obj)
        if not mask.any():
            from napari.utils.notifications import show_info

            show_info(
                f"Object {obj} has no painted pixels on frame {t}: paint it first "
                "(Labels layer, paint mode) and try again."
            )
            return None
        if obj not in self.objects:
            self.objects.append(obj)
            self.objects.sort()
            self.objects_changed.emit()
        self._remove_prompt_marks(obj, frame=t)

        def work():
            s = self._ensure_session()
            s.add_mask(t, obj, mask)
            lab = self.volume[t]  # keep the user's edit exactly
            lab[(lab == obj) & ~mask] = 0
            lab[mask] = obj
            return mask

        job = self._submit(
            Job(
                f"using your edit of object {obj} on frame {t}",
                work,
                kind="prompt",
                on_result=lambda _: self._shown(t, obj),
            )
        )
        return self._maybe_wait(job, wait)

    def _use_object(self, obj_id: int) -> int:
        if obj_id not in self.objects:
            self.add_object(obj_id)
        else:
            self.select_object(obj_id)
        return int(obj_id)

    def _check_point(self, frame: int, y: float, x: float) -> None:
        h, w = self.info.frame_shape
        if not (0 <= frame < self.num_frames):
            raise ValueError(f"frame {frame} is outside the movie (0..{self.num_frames - 1})")
        if not (0 <= y <= h - 1 and 0 <= x <= w - 1):
            raise ValueError(f"point (y={y:.1f}, x={x:.1f}) is outside the image ({h} x {w})")
        self._check_in_roi(y, x)

    def _submit_points(self, t: int, obj: int, pts, positives) -> Job:
        labels = [int(bool(p)) for p in positives]
        self._ensure_model_queued()

        def work():
            s = self._ensure_session()
            return s.add_points(t, obj, np.asarray(pts, float), labels)

        return self._submit(
            Job(
                f"segmenting object {obj} on frame {t}",
                work,
                kind="prompt",
                on_result=lambda mask: self._shown(t, obj, mask=mask),
            )
        )

    def _submit_box(self, t: int, obj: int, box) -> Job:
        self._ensure_model_queued()

        def work():
            return self._ensure_session().add_box(t, obj, box)

        return self._submit(
            Job(
                f"segmenting object {obj} in a box on frame {t}",
                work,
                kind="prompt",
                on_result=lambda _: self._shown(t, obj, box=box),
            )
        )

    def _shown(self, t: int, obj: int, mask=None, box=None) -> None:
        job = self.jobs.current
        if job is not None:
            self.timings["click_to_mask"].append(time.perf_counter() - job.submitted)
        self._refresh_labels(force=True)
        self.mask_shown.emit(t, obj)
        self._emit_status()
        if mask is not None or box is not None:
            self._hint_if_too_small(obj, mask, box)

    def _hint_if_too_small(self, obj: int, mask, box) -> None:
        """Tell the user (once per object) to zoom in when the object is too small for the
        model at the current region (:meth:`VideoSession.too_small_hint`)."""
        key = (obj, None if self.session is None else self.session.roi)
        if self.session is None or key in self._small_hinted:
            return
        hint = self.session.too_small_hint(mask=mask, box=box)
        if hint is not None:
            from napari.utils.notifications import show_info

            self._small_hinted.add(key)
            show_info(f"SAM 2: object {obj}: {hint}")

    def _decorate_points(self, indices: Sequence[int], obj: int, positive: bool) -> None:
        layer = self.points_layer
        idx = list(indices)
        with self._suppressed():
            feats = layer.features
            feats.loc[idx, "obj_id"] = obj
            feats.loc[idx, "positive"] = bool(positive)
            face = layer.face_color.copy()
            face[idx] = POSITIVE_COLOR if positive else NEGATIVE_COLOR
            layer.face_color = face
            border = layer.border_color.copy()
            border[idx] = self.color(obj)
            layer.border_color = border
            layer.selected_data = set()

    def _decorate_shape(self, i: int, obj: int) -> None:
        layer = self.shapes_layer
        with self._suppressed():
            layer.features.loc[i, "obj_id"] = obj
            layer.features.loc[i, "positive"] = True
            edge = np.asarray(layer.edge_color).copy()
            edge[i] = self.color(obj)
            layer.edge_color = edge

    # ------------------------------------------------------------------ layer events
    @contextlib.contextmanager
    def _suppressed(self) -> Iterator[None]:
        self._suppress += 1
        try:
            yield
        finally:
            self._suppress -= 1

    def _on_points_data(self, event) -> None:
        if self._suppress or self.info is None:
            return
        action = str(getattr(event, "action", ""))
        layer = self.points_layer
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
        return self._layer_item_frame(self.points_layer, i), int(
            self.points_layer.features["obj_id"].iloc[i]
        )

    def _points_added(self, idx: list[int]) -> None:
        from napari.utils.notifications import show_info

        layer = self.points_layer
        negative = self._is_negative_click()
        self._click = (1, ())
        keep, bad = [], []
        for i in idx:
            t, y, x = self.info.to_frame_coords(layer.data[i])
            try:
                self._check_point(int(round(t)), y, x)
                keep.append((i, int(round(t)), y, x))
            except ValueError as exc:
                bad.append(i)
                show_info(f"SAM 2: click ignored: {exc}")
        obj = self._ensure_object() if keep else None  # a click that is refused adds nothing
        if keep:
            self._decorate_points([k[0] for k in keep], obj, not negative)
        if bad:
            with self._suppressed():
                layer.selected_data = set()
                layer.remove(bad)
        try:
            for _, t, y, x in keep:
                self._submit_points(t, obj, [(y, x)], [not negative])
        except RuntimeError as exc:  # no model
            from napari.utils.notifications import show_error

            show_error(f"SAM 2: {exc}")
            with self._suppressed():
                layer.selected_data = set()
                layer.remove([k[0] for k in keep])

    def _on_shapes_data(self, event) -> None:
        if self._suppress or self.info is None:
            return
        action = str(getattr(event, "action", ""))
        layer = self.shapes_layer
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
        return self._layer_item_frame(self.shapes_layer, i), int(
            self.shapes_layer.features["obj_id"].iloc[i]
        )

    def _shape_box(self, i: int) -> tuple[int, tuple[float, float, float, float]]:
        verts = np.asarray(self.shapes_layer.data[i], dtype=float)
        yi, xi = self.info.spatial_axes
        t = int(round(verts[0, self.info.t_axis]))
        ys, xs = verts[:, yi], verts[:, xi]
        return t, (ys.min(), xs.min(), ys.max(), xs.max())

    def _shape_added(self, i: int) -> None:
        from napari.utils.notifications import show_info

        layer = self.shapes_layer
        stype = layer.shape_type[i]
        t, box = self._shape_box(i)
        h, w = self.info.frame_shape
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
                self._check_box_in_roi(box)
            except ValueError as exc:
                ok = False
                show_info(f"SAM 2: box ignored: {exc}")
        if not ok:
            with self._suppressed():
                layer.selected_data = {i}
                layer.remove_selected()
            self._n_shapes = len(layer.data)
            return
        obj = self._ensure_object()
        self._decorate_shape(i, obj)
        box = (max(y0, 0.0), max(x0, 0.0), min(y1, h - 1.0), min(x1, w - 1.0))
        try:
            self._submit_box(t, obj, box)
        except RuntimeError as exc:  # no model
            from napari.utils.notifications import show_error

            show_error(f"SAM 2: {exc}")
            with self._suppressed():
                layer.selected_data = {i}
                layer.remove_selected()
            self._n_shapes = len(layer.data)

    def _resync(self, t: int, obj: int) -> None:
        """Re-run an object's prompts on a frame from what the prompt layers now hold (after
        the user deleted or moved a click or box)."""
        pts, labs, box = [], [], None
        layer = self.points_layer
        for i in range(len(layer.data)):
            if self._point_pair(i) == (t, obj):
                _, y, x = self.info.to_frame_coords(layer.data[i])
                pts.append((y, x))
                labs.append(int(bool(layer.features["positive"].iloc[i])))
        for i in range(len(self.shapes_layer.data)):
            if self._shape_pair(i) == (t, obj):
                box = self._shape_box(i)[1]

        def work():
            s = self._ensure_session()
            if obj in s.obj_ids:
                s.clear_prompts(t, obj)
            if box is not None:
                s.add_box(t, obj, box)
            if pts:
                s.add_points(t, obj, np.asarray(pts, float), labs)

        self._submit(
            Job(
                f"updating object {obj} on frame {t}",
                work,
                kind="prompt",
                on_result=lambda _: self._shown(t, obj),
            )
        )

    def _on_labels_data(self, event) -> None:
        if self._suppress or self.labels_layer is None:
            return
        data = self.labels_layer.data
        vol = base_volume(data) if isinstance(data, np.ndarray) else None
        if vol is not None and vol is not self.volume and vol.shape == self.volume.shape:
            self.volume = vol

            def relink():
                if self.session is not None:
                    self.session.set_label_volume(vol)

            self._submit(Job("linking the new labels", relink, kind="prompt", total=0))

    def _on_selected_label(self, event) -> None:
        if self._suppress or self.labels_layer is None:
            return
        lab = int(self.labels_layer.selected_label)
        if lab in self.objects and lab != self.current_id:
            self.current_id = lab
            self.objects_changed.emit()
