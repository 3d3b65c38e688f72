"""Building the :class:`~napari_sam2.video.session.VideoSession` of the tracked image, and
building it again (new model, device, channel or region) with the old one's prompts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._state import TrackingState

__all__ = ["SessionKeeper"]


class SessionKeeper:
    """Builds the session on first use and rebuilds it when what it was built from changes.

    Args:
        state: the controller's shared :class:`~napari_sam2._napari._state.TrackingState`.
        options: returns what the next session is built with, as a dict: ``model`` (a loaded
            SAM2Model or None), ``settings`` (MemorySettings), ``precision``, ``roi``,
            ``cell_diameter`` and ``zoom`` (read when a job needs the session).
    """

    def __init__(self, state: TrackingState, options: Callable[[], dict[str, Any]]) -> None:
        self._state = state
        self._options = options

    def ensure(self) -> Any:
        """The session of the current image, built on first use (worker thread); the current
        memory settings and precision are applied to it."""
        st = self._state
        opts = self._options()
        if st.session is None:
            from napari_sam2.video.session import VideoSession

            if opts["model"] is None:
                raise RuntimeError("no model loaded: choose one in the Model section")
            info = st.need_image()
            limits = None
            if st.contrast == "layer" and info.axes != "TYXC":
                limits = tuple(float(v) for v in info.layer.contrast_limits)
            s = VideoSession(
                opts["model"],
                info.data,
                axes=info.axes,
                channel=st.channel,
                contrast_limits=limits,
                settings=opts["settings"].replace(),
                precision=opts["precision"],
                roi=opts["roi"],
                cell_diameter=opts["cell_diameter"],
                zoom=opts["zoom"],
                fit_masks="auto",
            )
            s.set_label_volume(st.volume)
            st.session = s
        st.session.settings = opts["settings"].replace()
        st.session.precision = opts["precision"]
        return st.session

    def rebuild(self) -> None:
        """Queue :meth:`replay` (a job); the labels are redrawn when it is done."""
        st = self._state
        if st.info is None:
            return
        st.submit_edit("re-running the prompts", self.replay)

    def replay(self) -> None:
        """Worker side of :meth:`rebuild`: a new session (current model, channel, region of
        interest...) with the old one's prompts (painted mask prompts keep their exact pixels,
        as with "use my edit"); the prompted frames are encoded again."""
        st = self._state
        old, st.session = st.session, None
        if self._options()["model"] is None or st.info is None:
            return
        s = self.ensure()
        if old is None:
            return
        s.lineage.update(old.lineage)
        for obj in old.obj_ids:
            for t, p in sorted(old.prompts(obj).items()):
                if p.mask is not None:
                    s.add_mask(t, obj, p.mask)
                    lab = st.volume[t]
                    lab[(lab == obj) & ~p.mask] = 0
                    lab[p.mask] = obj
                    continue
                if p.box is not None:
                    s.add_box(t, obj, p.box)
                if len(p.points):
                    s.add_points(t, obj, p.points, p.labels)
