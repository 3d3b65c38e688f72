"""One 3-D cell of a :class:`~napari_sam2.video.volume_time.VolumeTimeSession`: its session
through time, its central slices and its prompts (replayed into a new z-session of their
timepoint)."""

from __future__ import annotations

from .session import VideoSession

__all__ = ["Track", "replay", "window_side"]


class Track:
    """One 3-D object followed through time: its time session and central slices."""

    def __init__(self, obj_id: int, session: VideoSession) -> None:
        self.obj_id = obj_id
        self.time = session
        self.read_slice: dict[int, int] = {}  # t -> slice its time frame t was read from
        self.centre: dict[int, int] = {}  # t -> central slice of its 3-D mask at t (central_slice)
        self.prompted: set[int] = set()
        #: t -> the user's prompts at t, in the order given: ("points", z, points, labels) or
        #: ("box", z, box); replayed into a new z-session of t (one z-session lives at a time)
        self.prompts: dict[int, list[tuple]] = {}
        #: t -> the slice the object's fill along z starts from at a prompted t (its last prompt)
        self.clicked: dict[int, int] = {}
        #: automatic zoom: the window side (frame px) its first prompt was segmented in
        #: (None: whole slices); ``sized`` once that prompt has run. Masks handed between the
        #: time session and the z-sessions keep this side (``add_mask(window_side=...)``): the
        #: model's own masks are often wider than the cell, and a window sized from them can
        #: cross the whole-slice threshold (masks far too large at later timepoints).
        self.side: int | None = None
        self.sized = False
        #: divisions: last timepoint of a mother's track (None: not divided); whether the
        #: track is a daughter (born at its first prompted timepoint, followed forward only)
        self.ended: int | None = None
        self.born = False


def replay(session: VideoSession, obj_id: int, prompt: tuple) -> None:
    """Run a recorded prompt (see :attr:`Track.prompts`) in a z-session."""
    if prompt[0] == "points":
        session.add_points(prompt[1], obj_id, prompt[2], prompt[3])
    else:
        session.add_box(prompt[1], obj_id, prompt[2])


def window_side(session: VideoSession, obj_id: int, frame: int) -> int | None:
    """Side (frame px) of the window an object was segmented in on a frame (None: none)."""
    w = session.window(obj_id, frame)
    return None if w is None else int(w[2] - w[0])
