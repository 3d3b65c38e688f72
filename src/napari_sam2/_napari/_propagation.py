"""The propagation part of the tracking controller (``controller.propagation``): tracking the
prompted objects through the movie in a cancellable job, optionally following cell divisions
(:func:`napari_sam2.video.division_propagation.propagate_with_divisions`), with a throttled
display."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._model import ModelControl
from ._objects import ObjectsControl
from ._sessions import SessionKeeper
from ._state import REFRESH_INTERVAL, TrackingState
from .jobs import Job

__all__ = ["DIRECTIONS", "PropagationControl"]

DIRECTIONS = ("forward", "backward", "both")
# While propagating, labels are written into the layer's data for every frame; the display
# catches up at most every REFRESH_INTERVAL (s), and only while the main thread keeps up (see
# ``_on_frame``).
#: The shortest interval (s) with a software-rendered canvas, where each redraw costs a few
#: hundred ms of CPU.
_REFRESH_INTERVAL_SOFTWARE_GL = 1.0
#: A propagated frame is shown only if the main thread receives it within this delay (s);
#: otherwise the display is skipped until it has caught up (slow software OpenGL, etc.).
_MAX_LAG = 0.1


class PropagationControl:
    """Tracking the prompted objects through the movie in a cancellable job.

    Args:
        state: the controller's shared :class:`~napari_sam2._napari._state.TrackingState`.
        objects: the object list (new objects found while following divisions are listed).
        model: queues loading the chosen model before the first propagation.
        sessions: gives the session to propagate.

    Attributes:
        follow: move the time slider along with the propagation.
        follow_divisions: forward propagations go through
            :func:`~napari_sam2.video.division_propagation.propagate_with_divisions`.
        frame_times: main-thread arrival time of every propagated frame
            (``time.perf_counter()`` seconds).
    """

    def __init__(
        self,
        state: TrackingState,
        objects: ObjectsControl,
        model: ModelControl,
        sessions: SessionKeeper,
    ) -> None:
        self._state = state
        self._objects = objects
        self._model = model
        self._sessions = sessions
        self.follow = True
        self.follow_divisions = False
        self.frame_times: list[float] = []
        self._division_fields: dict[str, Any] = {}
        self._division_settings: Any = None  # created on first use (importing torch is slow)
        self._last_refresh = 0.0
        self._refresh_interval = REFRESH_INTERVAL

    # ------------------------------------------------------------------ divisions
    @property
    def division_settings(self) -> Any:
        """The :class:`~napari_sam2.video.lineage.DivisionSettings` used when
        :attr:`follow_divisions` is on (from the preset; fields may be changed in place)."""
        if self._division_settings is None:
            from napari_sam2.video.lineage import DivisionSettings

            self._division_settings = DivisionSettings(**self._division_fields)
        return self._division_settings

    @division_settings.setter
    def division_settings(self, value: Any) -> None:
        value.validate()
        self._division_settings = value

    def set_division_setting(self, name: str, value: Any) -> None:
        """Change one :attr:`division_settings` field; used from the next propagation.

        Raises:
            ValueError: the value is out of range (the settings are unchanged).
        """
        from dataclasses import replace

        new = replace(self.division_settings, **{name: value})
        new.validate()
        self._division_settings = new
        self._state.events.settings_changed.emit()

    def set_follow_divisions(self, on: bool) -> None:
        """Follow cell divisions (and lost/found cells) in forward propagations (see
        :meth:`run`); used from the next propagation on."""
        self.follow_divisions = bool(on)
        self._state.events.settings_changed.emit()
        self._state.report("following divisions" if on else "not following divisions")

    def use_divisions(self, follow: bool, fields: dict[str, Any]) -> None:
        """Follow divisions or not, with ``DivisionSettings(**fields)`` (a cell preset)."""
        self.follow_divisions = bool(follow)
        self._division_fields = dict(fields)
        self._division_settings = None

    # ------------------------------------------------------------------ propagation
    def run(
        self,
        direction: str = "forward",
        *,
        start: int | None = None,
        first: int | None = None,
        last: int | None = None,
        obj_ids: Sequence[int] | None = None,
        wait: bool = False,
    ):
        """Track the prompted objects through the movie.

        With :attr:`follow_divisions` on, forward propagation goes through
        :func:`~napari_sam2.video.division_propagation.propagate_with_divisions` (settings:
        :attr:`division_settings`): a cell that divides continues as two new objects (new ids,
        recorded in ``session.lineage`` and used by the CTC export and the Tracks layer), and a
        lost cell that reappears gets a new id. Divisions are followed forward in time only:
        "backward" tracks as usual (daughters are kept off frames before their birth), and
        "both" runs the backward half first, then the forward half with divisions (the start
        frame is visited twice).

        Args:
            direction: "forward", "backward" or "both".
            start: first frame to visit (default: the frame under the time slider).
            first, last: optional frame range limiting the propagation (inclusive).
            obj_ids: objects to propagate (default: all objects with prompts).
            wait: block (processing events) until done.

        Returns:
            With ``wait=True`` the list of frames finished (in order), else the job.

        Raises:
            RuntimeError: no image layer, or no model loaded and none ready to load.
        """
        st = self._state
        info = st.need_image()
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self._model.ensure_queued()
        n = info.num_frames
        start = st.current_frame() if start is None else int(start)
        lo = 0 if first is None else int(first)
        hi = n - 1 if last is None else int(last)
        if not (0 <= lo <= hi < n):
            raise ValueError(f"frame range {lo}..{hi} must lie within 0..{n - 1}")
        start = int(np.clip(start, lo, hi))
        if direction == "forward":
            stop, total = hi, hi - start + 1
        elif direction == "backward":
            stop, total = lo, start - lo + 1
        else:
            stop, total = (lo, hi), hi - lo + 1
        divisions = bool(self.follow_divisions) and direction != "backward"
        if divisions and direction == "both":
            total += 1  # the start frame is visited by both halves
        division_settings = self.division_settings if self.follow_divisions else None
        ids = None if obj_ids is None else [int(i) for i in obj_ids]
        job = Job(
            f"propagating {direction} from frame {start}"
            + (" (following divisions)" if divisions else ""),
            lambda: None,
            kind="propagate",
            total=total,
        )

        def run():
            s = self._sessions.ensure()
            if division_settings is None:
                gen = s.propagate(start, direction, stop, ids)
            else:
                gen = self._division_frames(s, division_settings, start, direction, stop, ids)
            done = []
            try:
                for res in gen:
                    done.append(res.frame)
                    yield res.frame, res.obj_ids, res.scores, time.perf_counter()
                    if job.cancel.is_set():
                        break
            finally:
                gen.close()
            return done

        job.fn = run
        job.on_yield = self._on_frame

        def started() -> None:
            self._last_refresh = 0.0
            self._refresh_interval = self._min_refresh_interval()

        job.on_start = started
        job.on_result = self._done
        st.submit(job)
        return st.finish(job, wait)

    @staticmethod
    def _division_frames(s, settings, start, direction, stop, ids):
        """Worker side of a propagation with :attr:`follow_divisions` on: FrameResults of the
        backward half (plain; daughters kept off frames before their birth), then of the
        forward half (:func:`~napari_sam2.video.division_propagation.propagate_with_divisions`)."""
        from napari_sam2.video.division_propagation import propagate_with_divisions

        if direction in ("backward", "both"):
            lo = stop if direction == "backward" else stop[0]
            births = {
                d: s.prompted_frames(d)[0]
                for d in s.lineage
                if d in s.obj_ids and s.prompted_frames(d)
            }
            wanted = s.obj_ids if ids is None else ids
            # daughters born after the start frame have nothing to track backward from there
            back = [i for i in wanted if births.get(i, -1) <= start]
            if back or direction == "backward":  # (an empty list: "nothing to propagate")
                gen = s.propagate(start, "backward", lo, back)
                try:
                    for res in gen:
                        unborn = [d for d, b in births.items() if b > res.frame]
                        if unborn:
                            lab = s.labels()[res.frame]
                            lab[np.isin(lab, unborn)] = 0
                        yield res
                finally:
                    gen.close()
        if direction in ("forward", "both"):
            hi = stop if direction == "forward" else stop[1]
            yield from propagate_with_divisions(s, settings, start=start, stop=hi, obj_ids=ids)

    def _on_frame(self, value) -> None:
        t, ids, scores, sent = value
        for i, sc in zip(ids, np.asarray(scores).tolist()):
            self._state.scores[(t, int(i))] = float(sc)
        now = time.perf_counter()
        self.frame_times.append(now)
        caught_up = now - sent < _MAX_LAG
        if caught_up and now - self._last_refresh >= self._refresh_interval:
            self._show_frame(t)
            done = time.perf_counter()
            # keep the display's share of the main thread small: wait 3x its cost
            self._refresh_interval = max(self._min_refresh_interval(), 3 * (done - now))
            self._last_refresh = done
        self._state.events.frame_done.emit(t)

    @staticmethod
    def _min_refresh_interval() -> float:
        from .jobs import software_opengl

        return _REFRESH_INTERVAL_SOFTWARE_GL if software_opengl() else REFRESH_INTERVAL

    def _show_frame(self, t: int) -> None:
        """Show frame t's new labels: follow it with the time slider, or refresh the layer when
        it is the frame on screen."""
        st = self._state
        current = st.current_frame()
        if self.follow and t != current:
            st.set_current_frame(t)  # re-slices the layers, labels included
        elif t == current and st.labels_layer is not None:
            st.labels_layer.refresh()

    def _done(self, done: list[int]) -> None:
        from napari.utils.notifications import show_info

        st = self._state
        if done:
            self._show_frame(done[-1])
        self._objects.sync_from_session()
        st.refresh_labels(force=True)
        job = st.jobs.current
        if job is not None and job.cancel.is_set():
            show_info(
                f"SAM 2: propagation cancelled after {len(done)} frames; finished frames are kept"
            )
        st.report(f"propagated {len(done)} frames")
