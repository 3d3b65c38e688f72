"""The options of :func:`napari_sam2.pipeline.segment_movie`, grouped in small frozen dataclasses.

Options that travel together form one group; :class:`SegmentOptions` holds one of each:

* :class:`ModelOptions`: ``model``, ``device``, ``precision``;
* :class:`MovieOptions`: ``axes``, ``channel``, ``contrast_limits``, ``allow_partial``;
* :class:`SeedOptions`: ``boxes``, ``seed_labels``, ``seed_frame``, ``find_cells``,
  ``find_options``;
* :class:`RegionOptions`: ``zoom``, ``cell_diameter``, ``roi``, ``tile``, ``tile_margin``;
* :class:`TrackOptions`: ``settings``, ``direction``, ``divisions``;
* :class:`OutputOptions`: ``out``, ``labels_path``, ``progress``, ``cancel``.

Every value is checked when its group is built, and combinations that cannot work (``tile`` with
``roi``, ``find_cells`` or ``divisions``; divisions tracked backward; ``out`` with
``labels_path``; options that have no 3-D meaning with a Z axis, divisions of a z-stack without
time) are refused when the
:class:`SegmentOptions` is built, before any model is loaded or frame is read. No torch import.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..io.label_checks import check_labels
from ._autofit import check_fit_masks

__all__ = [
    "ModelOptions",
    "MovieOptions",
    "OutputOptions",
    "Progress",
    "RegionOptions",
    "SeedOptions",
    "SegmentOptions",
    "Segmentation",
    "TrackOptions",
]

#: ``progress`` option: None (silent), ``"tqdm"`` (a bar on stderr) or ``callback(done, total)``
#: called after every frame with the frames finished so far and the frames to do in all.
Progress = Callable[[int, int], None] | str | None

_DEVICES = ("auto", "cpu", "cuda", "mps")
_PRECISIONS = ("fp32", "bf16")
_DIRECTIONS = ("forward", "backward", "both")
_ZOOMS = ("auto", "off")


def _whole(value: Any, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class ModelOptions:
    """Which model runs, where, and in which precision.

    Attributes:
        model: a loaded SAM2Model, a model name (``"micro"``, ``"sam2.1_hiera_tiny"``, a config
            name such as ``"test_tiny_256"`` for random weights), a checkpoint path, or None
            (the first cached official SAM 2.1 model, else the bundled micro model).
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"`` (or ``"cuda:N"``)
            or ``"mps"``; used when ``model`` is not loaded yet.
        precision: ``"fp32"`` or ``"bf16"``.
    """

    model: Any = None
    device: str = "auto"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if str(self.device).split(":")[0] not in _DEVICES:
            raise ValueError(f"device must be one of {', '.join(_DEVICES)}, got {self.device!r}")
        if self.precision not in _PRECISIONS:
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")


@dataclass(frozen=True)
class MovieOptions:
    """How the movie is read.

    Attributes:
        axes: axes of the movie, e.g. ``"TYX"``, ``"TCYX"`` (None: inferred when obvious).
            ``"ZYX"`` / ``"CZYX"`` segments a z-stack along z (prompts carry ``z``; the labels
            are (Z, Y, X); ``direction`` "forward" is increasing z); ``"TZYX"`` / ``"TCZYX"``
            follows 3-D cells through time from prompts with ``frame`` and ``z`` (labels
            (T, Z, Y, X), see :mod:`napari_sam2.video.volumes`).
        channel: the channel the model sees in multi-channel movies (or up to 3 as R, G, B).
        contrast_limits: (lo, hi) intensity window (None: robust percentiles of the movie).
        allow_partial: a TIFF cut off after frame k-1 (fewer complete frames than its metadata
            promise) is segmented as frames 0..k-1, with a warning, instead of raising
            :class:`~napari_sam2.video.frames.DamagedMovieError`.
    """

    axes: str | None = None
    channel: int | Sequence[int] | None = None
    contrast_limits: tuple[float, float] | None = None
    allow_partial: bool = False

    def __post_init__(self) -> None:
        if self.axes is not None and (not isinstance(self.axes, str) or not self.axes.isalpha()):
            raise ValueError(f"axes must be letters such as 'TYX' or 'TCYX', got {self.axes!r}")
        if self.channel is not None:
            channels = [self.channel] if np.ndim(self.channel) == 0 else list(self.channel)
            if not 1 <= len(channels) <= 3:
                raise ValueError(f"channel takes 1 to 3 channels, got {len(channels)}")
            for c in channels:
                _whole(c, "channel", 0)
        if self.contrast_limits is not None:
            lo, hi = (float(v) for v in self.contrast_limits)
            if not lo < hi:
                raise ValueError(f"contrast_limits must be (lo, hi) with lo < hi, got {lo}, {hi}")

    @property
    def is_3d(self) -> bool:
        """Whether ``axes`` names a Z axis (a z-stack or 3-D + time)."""
        return self.axes is not None and "Z" in self.axes.upper()


@dataclass(frozen=True, eq=False)
class SeedOptions:
    """Prompts beyond clicks: boxes, a label image and cells found automatically.

    Attributes:
        boxes: boxes ``(frame, y0, x0, y1, x1, obj_id)`` as dicts with those keys, tuples, an
            (N, 6) array, :class:`~napari_sam2.video.prompts.BoxPrompt` items or a box CSV
            path.
        seed_labels: a label image seeding ``seed_frame``: every label becomes an object (its
            value is the id) with its mask as the prompt. A (H, W) image, a (T, H, W) volume
            (frame ``seed_frame`` is used) or a label TIFF / ``.npy`` path (see
            :func:`~napari_sam2.io.seed_labels.seed_label_image`). Combinable with clicks and
            boxes (same id space).
        seed_frame: the frame that ``seed_labels`` seeds.
        find_cells: a frame on which to find cells automatically
            (:meth:`~napari_sam2.video.session.VideoSession.find_objects`); each new cell
            (:func:`~napari_sam2.video.found_cells.new_cell_labels`) becomes an object, ids
            continuing after the largest id of the other prompts.
        find_options: keyword arguments of ``find_objects``, e.g. ``{"points_per_side": 32}``.
    """

    boxes: Any = None
    seed_labels: Any = None
    seed_frame: int = 0
    find_cells: int | None = None
    find_options: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        _whole(self.seed_frame, "seed_frame", 0)
        if self.find_cells is not None:
            _whole(self.find_cells, "find_cells (a frame)", 0)
        if self.find_options is not None:
            if not isinstance(self.find_options, Mapping):
                raise ValueError("find_options must be a dict of find_objects keyword arguments")
            if self.find_cells is None:
                raise ValueError("find_options is given without find_cells: add find_cells=FRAME")


@dataclass(frozen=True)
class RegionOptions:
    """Which part of each frame the model sees, and how zoomed in.

    Attributes:
        zoom: ``"auto"``: objects too small for the model at the whole-frame input run in
            windows of the frame that follow them (:mod:`napari_sam2.video.windows`);
            ``"off"``: the model sees the whole frame.
        cell_diameter: typical cell diameter in pixels for sizing the windows of clicked
            objects (None: estimated around each first click).
        roi: region of interest ``(y0, x0, y1, x1)`` in frame pixels (end exclusive): only it
            is resized to the model's input; prompts must lie inside it, the labels stay
            full-size and are 0 outside it.
        tile: split the frame into ``tile`` x ``tile`` px tiles, each run zoomed in as its own
            region of interest (see :mod:`napari_sam2.video.tiling`).
        tile_margin: context around each tile in px; larger than a cell travels in the movie.
    """

    zoom: str = "auto"
    cell_diameter: float | None = None
    roi: Sequence[int] | None = None
    tile: int | None = None
    tile_margin: int = 32

    def __post_init__(self) -> None:
        if self.zoom not in _ZOOMS:
            raise ValueError(f"zoom must be 'auto' or 'off', got {self.zoom!r}")
        if self.cell_diameter is not None and not float(self.cell_diameter) > 0:
            raise ValueError(f"cell_diameter must be > 0 pixels, got {self.cell_diameter}")
        if self.roi is not None:
            if len(self.roi) != 4:
                raise ValueError(f"roi must be (y0, x0, y1, x1), got {tuple(self.roi)}")
            y0, x0, y1, x1 = self.roi
            if min(y0, x0) < 0 or y1 <= y0 or x1 <= x0:
                raise ValueError(
                    f"roi (y0={y0}, x0={x0}, y1={y1}, x1={x1}) needs 0 <= y0 < y1 and "
                    "0 <= x0 < x1 (frame pixels, end exclusive)"
                )
        if self.tile is not None:
            _whole(self.tile, "tile", 1)
            if self.roi is not None:
                raise ValueError("tile cannot be combined with roi (yet): use one of them")
        _whole(self.tile_margin, "tile_margin", 0)


@dataclass(frozen=True, eq=False)
class TrackOptions:
    """How objects are followed through the movie.

    Attributes:
        settings: :class:`~napari_sam2.video.memory_settings.MemorySettings` (None: defaults).
        direction: ``"forward"``, ``"backward"`` or ``"both"`` (see
            :func:`~napari_sam2.video.movie_run.propagate_frames`).
        divisions: None or False (no division tracking), True (default
            :class:`~napari_sam2.video.lineage.DivisionSettings`) or a ``DivisionSettings``:
            a cell whose mask splits ends its track and its daughters continue with new ids.
            3-D + time (axes ``"TZYX"``) takes True: a 3-D mask that falls apart
            (:mod:`napari_sam2.video.volume_divisions`).
        fit_masks: each object's masks keep the pixels as bright (or dark) as the object
            (:mod:`napari_sam2.video._volume_fit`); False keeps the model's masks as drawn.
            None (default): True for 3-D data (masks along z), ``"auto"`` for 2-D movies:
            only small objects seen through magnifying zoom windows that stand out from their
            surroundings are fitted, each frame's masks as they are written
            (:mod:`napari_sam2.video._autofit`); True fits every object of a 2-D movie.
            ``"auto"`` on 3-D data is its default, True.
    """

    settings: Any = None
    direction: str = "both"
    divisions: Any = None
    fit_masks: bool | str | None = None

    def __post_init__(self) -> None:
        if self.direction not in _DIRECTIONS:
            raise ValueError(
                f"direction must be 'forward', 'backward' or 'both', got {self.direction!r}"
            )
        if self.tracks_divisions:
            if self.direction == "backward":
                raise ValueError(
                    "division tracking runs forward in time: use direction 'forward' or 'both'"
                )
            if self.divisions is not True:
                self.divisions.validate()
        if self.fit_masks is not None:  # one check, the session's (numpy bools become bool)
            object.__setattr__(self, "fit_masks", check_fit_masks(self.fit_masks))

    def fits(self, is_3d: bool) -> bool | str:
        """Which masks are fitted to the image: ``fit_masks``; None or ``"auto"`` is True on
        3-D data and ``"auto"`` on 2-D movies."""
        if self.fit_masks is None or self.fit_masks == "auto":
            return True if is_3d else "auto"
        return self.fit_masks

    @property
    def tracks_divisions(self) -> bool:
        """Whether cell divisions are tracked."""
        return self.divisions is not None and self.divisions is not False


@dataclass(frozen=True, eq=False)
class OutputOptions:
    """Where the labels go, and how the run reports and stops.

    Attributes:
        out: a (T, Y, X) integer array to write the labels into (e.g. a memmap); it is filled
            frame by frame, so it holds every finished frame even if the run stops early.
        labels_path: write the labels into this label TIFF as they are computed (the result
            is a :class:`numpy.memmap` of the file; memory use does not grow with the movie's
            length). Without it (and without ``out``) label volumes above 1 GB go to a
            temporary file (with a warning naming it), smaller ones stay in memory.
        progress: None, ``"tqdm"`` (a bar on stderr) or ``callback(done, total)`` per frame.
        cancel: a ``threading.Event``; setting it stops after the current frame.
    """

    out: np.ndarray | None = None
    labels_path: str | os.PathLike | None = None
    progress: Progress = None
    cancel: threading.Event | None = None

    def __post_init__(self) -> None:
        if self.out is not None and self.labels_path is not None:
            raise ValueError(
                "out and labels_path both say where the labels go: give one of them "
                "(np.memmap of a file as out, or labels_path for a label TIFF)"
            )
        if self.out is not None:
            check_labels(self.out, name="out", check_values=False)
        if not (self.progress is None or self.progress == "tqdm" or callable(self.progress)):
            raise ValueError(
                f"progress must be None, 'tqdm' or a callable (done, total); got {self.progress!r}"
            )
        if self.cancel is not None and not callable(getattr(self.cancel, "is_set", None)):
            raise ValueError("cancel must be a threading.Event (or have is_set())")

    @property
    def cancelled(self) -> bool:
        """Whether ``cancel`` is set."""
        return self.cancel is not None and self.cancel.is_set()


@dataclass(frozen=True, eq=False)
class SegmentOptions:
    """All options of one segmentation, one group each; checked together when built.

    Build it from groups (``SegmentOptions(region=RegionOptions(tile=256))``) or from the
    keywords of :func:`~napari_sam2.pipeline.segment_movie`
    (``SegmentOptions.from_keywords(tile=256, direction="forward")``).

    Raises:
        ValueError: a value out of range (from the group that holds it) or a combination that
            cannot work: ``tile`` with ``find_cells`` or ``divisions``; ``seed_labels``,
            ``find_cells``, ``roi`` or ``tile`` with 3-D ``axes``; ``divisions`` on a z-stack
            without time, or other than True on 3-D + time.
    """

    model: ModelOptions = field(default_factory=ModelOptions)
    movie: MovieOptions = field(default_factory=MovieOptions)
    seeds: SeedOptions = field(default_factory=SeedOptions)
    region: RegionOptions = field(default_factory=RegionOptions)
    track: TrackOptions = field(default_factory=TrackOptions)
    output: OutputOptions = field(default_factory=OutputOptions)

    def __post_init__(self) -> None:
        if self.region.tile is not None:
            for name, set_ in (
                ("find_cells", self.seeds.find_cells is not None),
                ("divisions", self.track.tracks_divisions),
                ("fit_masks", self.track.fit_masks is True),
            ):
                if set_:
                    raise ValueError(f"tile cannot be combined with {name} (yet): use one of them")
        if self.movie.is_3d:
            self.check_3d()

    def check_3d(self, axes: str | None = None) -> None:
        """Refuse the options that have no 3-D meaning (for a z-stack or 3-D + time).

        Args:
            axes: the movie's 3-D axes (default: ``movie.axes``; a TIFF may name them).
        """
        axes = (axes or self.movie.axes or "").upper()
        for name, value in self.options_without_3d(axes):
            if value is not None and value is not False:
                raise ValueError(
                    f"{name} is not available for 3-D data (axes {axes}): give clicks or boxes"
                )
        if self.track.tracks_divisions and self.track.divisions is not True:
            raise ValueError(
                "divisions of 3-D cells take divisions=True (the 3-D rule of "
                "napari_sam2.video.volume_divisions); DivisionSettings are for 2-D movies"
            )

    def options_without_3d(self, axes: str | None = None) -> list[tuple[str, Any]]:
        """(name, value) of the options that have no 3-D meaning (``divisions`` has one on
        3-D + time, axes with a T: :mod:`napari_sam2.video.volume_divisions`).

        Args:
            axes: the movie's 3-D axes (default: ``movie.axes``).
        """
        axes = (axes or self.movie.axes or "").upper()
        out = [
            ("seed_labels", self.seeds.seed_labels),
            ("find_cells", self.seeds.find_cells),
            ("roi", self.region.roi),
            ("tile", self.region.tile),
        ]
        if "T" not in axes:
            out.insert(2, ("divisions", self.track.divisions))
        return out

    @classmethod
    def keywords(cls) -> dict[str, str]:
        """Every option keyword -> the name of the group (field of this class) that holds it."""
        out: dict[str, str] = {}
        for group in dataclasses.fields(cls):
            for f in dataclasses.fields(group.default_factory()):  # type: ignore[misc]
                out[f.name] = group.name
        return out

    @classmethod
    def from_keywords(cls, base: SegmentOptions | None = None, **keywords: Any) -> SegmentOptions:
        """Options from :func:`~napari_sam2.pipeline.segment_movie`'s keywords (``base``, or the
        defaults, with ``keywords`` set).

        Raises:
            TypeError: a keyword that is no option (the message lists the options).
            ValueError: as when the options are built.
        """
        groups = cls.keywords()
        unknown = sorted(set(keywords) - set(groups))
        if unknown:
            raise TypeError(
                f"unknown option(s) {', '.join(unknown)}; the options are "
                f"{', '.join(sorted(groups))}"
            )
        base = base if base is not None else cls()
        changes: dict[str, dict[str, Any]] = {}
        for name, value in keywords.items():
            changes.setdefault(groups[name], {})[name] = value
        return dataclasses.replace(
            base,
            **{g: dataclasses.replace(getattr(base, g), **kw) for g, kw in changes.items()},
        )


@dataclass(frozen=True, eq=False)
class Segmentation:
    """What :func:`~napari_sam2.pipeline.segment` returns.

    Attributes:
        labels: (T, Y, X) labels (uint16, uint32 for ids above 65535; ``out`` itself when
            given, a memmap with ``labels_path``); 0 = background, otherwise the object id.
            Frames not reached (cancelled run) are 0. 3-D data: (Z, Y, X) or (T, Z, Y, X).
        lineage: the divisions found, ``{daughter_id: mother_id}`` (empty without division
            tracking), as :func:`napari_sam2.io.ctc.save_ctc` takes it.
    """

    labels: np.ndarray
    lineage: dict[int, int] = field(default_factory=dict)
