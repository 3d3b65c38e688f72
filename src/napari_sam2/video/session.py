"""The video session: prompts on any frames in, a mask for every object on every frame out.

A :class:`VideoSession` holds the model, a :class:`~.frames.FrameSource`, the objects (prompts,
one memory bank each) and three parts: a :class:`~._model_runner.ModelRunner` (encoding cache,
device, precision, batched steps), a :class:`~._label_volume.LabelVolume` ((T, H, W) labels, in
memory or on disk) and a :class:`~._model_scale.ModelScale` (sizes at the model's input, zoom
windows). A region of interest is all the model sees; a frame's objects share one encoding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..model.sam2 import FrameFeatures, SAM2Model
from ._frame_fit import FrameFit
from ._label_volume import LabelVolume
from ._model_runner import ModelRunner
from ._model_scale import MIN_OBJECT_PX, ModelScale
from ._objects import TrackedObject
from ._propagate_plan import ThreadGuard, check_frame_index, plan_passes
from ._steps import commit_pending, prompt_frame, seed_masks, track_frame
from .frame_result import FrameResult
from .frames import FrameSource, frame_source_for
from .memory_bank import MemorySettings
from .prompts import (
    FramePrompts,
    check_obj_id,
    inside_region,
    validate_box,
    validate_mask,
    validate_points,
)
from .windows import Window, ZoomPlanner

__all__ = ["MIN_OBJECT_PX", "FrameResult", "VideoSession"]


class VideoSession:
    """Interactive SAM 2 video segmentation of a time-lapse.

    Args:
        model: a loaded :class:`~napari_sam2.model.sam2.SAM2Model`.
        movie: numpy / memmap / dask / zarr array or a TIFF path (see
            :class:`~napari_sam2.video.frames.FrameSource`).
        axes: "TYX", "TCYX", "TYXC" or "YX"; inferred when obvious.
        channel: channel index, or up to 3 indices mapped to RGB.
        contrast_limits: (lo, hi) intensity window; default: robust percentiles over time.
        settings: memory-bank settings (:class:`MemorySettings`).
        precision: "fp32" or "bf16" (autocast on CPU and CUDA).
        object_chunk_size: most objects run through the model at once (None: automatic).
        keep_labels: maintain the (T, H, W) label volume (default). With False the session keeps
            no per-frame output at all (memory independent of movie length); consume the
            :class:`FrameResult` stream instead (e.g. write each frame to disk).
        roi: region of interest ``(y0, x0, y1, x1)`` in frame pixels (end exclusive): only this
            region is resized to the model's input, so small cells stay large enough for it
            (see :attr:`roi`). None: the whole frame (or the ROI of a given ``FrameSource``).
        workers: independent work of a propagated frame (object chunks, the next frame's
            encoding) run side by side in this many threads, one intra-op thread each. None:
            the CPU's threads for small models (input <= 512 px) on a CPU, else 1 (PyTorch's own
            threading). Results equal sequential processing.
        allow_partial: a TIFF ``movie`` cut off after frame k-1 is used as frames 0..k-1
            (with a warning) instead of raising ``DamagedMovieError``.
        zoom: "auto" (default): objects too small for the model at the whole-frame input run in
            windows of the frame that follow them (see :mod:`napari_sam2.video.windows`);
            "off": every object sees the whole frame (or ROI).
        cell_diameter: typical cell diameter in frame pixels, used to size the windows of
            objects given by clicks unless the model's size there is confidently more than
            2x off (None: estimated from the image around the first click).
        fit_masks: cut objects' written masks to their image level set on their prompt frame
            (:mod:`._frame_fit`): True every object; "auto" (default) only small objects in
            magnifying zoom windows that stand out from their surroundings (:mod:`._autofit`);
            False the model's masks.
    """

    def __init__(
        self,
        model: SAM2Model,
        movie,
        *,
        axes: str | None = None,
        channel: int | Sequence[int] | None = None,
        contrast_limits: tuple[float, float] | None = None,
        settings: MemorySettings | None = None,
        precision: str = "fp32",
        object_chunk_size: int | None = None,
        keep_labels: bool = True,
        roi: Sequence[int] | None = None,
        workers: int | None = None,
        allow_partial: bool = False,
        zoom: str = "auto",
        cell_diameter: float | None = None,
        fit_masks: bool | str = "auto",
    ) -> None:
        self.model = model.eval()
        cfg = model.config
        if isinstance(movie, FrameSource):
            self.frames = movie
            if roi is not None:
                movie.roi = roi
        else:
            self.frames = frame_source_for(
                movie, cfg, axes=axes, channel=channel, contrast_limits=contrast_limits,
                roi=roi, allow_partial=allow_partial,
            )  # fmt: skip
        settings = settings or MemorySettings()
        settings.validate(cfg.num_maskmem, cfg.max_obj_ptrs_in_encoder)
        #: the model runner: encodings, device, precision, batched model steps
        self.runner = ModelRunner(
            model, self.frames, settings,
            precision=precision, object_chunk_size=object_chunk_size, workers=workers,
        )  # fmt: skip
        self._objects: dict[int, TrackedObject] = {}
        #: the (T, H, W) labels results are written into
        shape = (self.num_frames, *self.frame_shape)
        self.label_volume = LabelVolume(shape, keep_labels, lambda: max(self._objects, default=0))
        #: the optional fit of the written masks to the image (``fit_masks``)
        self.fit = FrameFit(self.frames, fit_masks, cfg.image_size)
        self._zoom = ZoomPlanner(zoom, cfg.object_size_range, cfg.image_size,
                                 self.runner.region(), cell_diameter)  # fmt: skip
        #: object sizes at the model's input and the zoom windows objects run in
        self.scale = ModelScale(self.frames, cfg.image_size, self._zoom, self.model)
        self._guard = ThreadGuard("VideoSession")  # one thread at a time
        #: divisions found while tracking: {daughter_id: mother_id} (see ``video.lineage``)
        self.lineage: dict[int, int] = {}

    # ------------------------------------------------------------------ properties
    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return self.frames.num_frames

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(H, W) of the original frames."""
        return (self.frames.height, self.frames.width)

    @property
    def roi(self) -> tuple[int, int, int, int] | None:
        """Region of interest ``(y0, x0, y1, x1)`` in frame pixels (end exclusive), or None.

        Only this region is cropped and resized to the model's input. Prompts stay in full-frame
        (y, x) pixels and must lie inside the region (the part of a mask prompt outside it is
        ignored); masks and labels stay full-frame (H, W), empty outside the region.
        Settable only while the session has no objects (call :meth:`reset` first); setting it
        drops the cached frame encodings.
        """
        return self.frames.roi

    @roi.setter
    def roi(self, value: Sequence[int] | None) -> None:
        if self._objects:
            raise ValueError("cannot change the region of interest while the session has "
                             "objects (prompts or results): call reset() first")
        self.frames.roi = value  # validates it
        self.runner.clear_cache()

    @property
    def zoom(self) -> str:
        """"auto" (small objects run in windows that follow them) or "off"; applies to
        objects prompted after it is set."""
        return self._zoom.mode

    @zoom.setter
    def zoom(self, value: str) -> None:
        self._zoom.mode = value

    @property
    def cell_diameter(self) -> float | None:
        """Typical cell diameter (frame px) for sizing the windows of clicked objects, or None
        (estimated per object); applies to objects prompted after it is set."""
        return self._zoom.cell_diameter

    @cell_diameter.setter
    def cell_diameter(self, value: float | None) -> None:
        self._zoom.cell_diameter = value

    def window(self, obj_id: int, frame: int) -> Window | None:
        """The window (y0, x0, y1, x1) an object was segmented in on a frame (frame pixels),
        or None (the whole frame / ROI, or not segmented there)."""
        obj = self._objects.get(check_obj_id(obj_id))
        return None if obj is None else obj.windows.get(int(frame))

    @property
    def obj_ids(self) -> list[int]:
        """Ids of the objects, ascending."""
        return sorted(self._objects)

    @property
    def device(self) -> torch.device:
        """The model's device."""
        return self.model.device

    def prompts(self, obj_id: int) -> dict[int, FramePrompts]:
        """Prompts of one object, by frame (a copy)."""
        return dict(self._objects[obj_id].prompts) if obj_id in self._objects else {}

    def prompted_frames(self, obj_id: int | None = None) -> list[int]:
        """Frames carrying prompts (of one object, or of any)."""
        objs = [self._objects[obj_id]] if obj_id is not None else self._objects.values()
        return sorted({t for o in objs for t in o.prompts})

    @property
    def settings(self) -> MemorySettings:
        """Memory-bank settings (assign a new :class:`MemorySettings` to change them)."""
        return self.runner.settings

    @settings.setter
    def settings(self, value: MemorySettings) -> None:
        self.runner.settings = value

    @property
    def precision(self) -> str:
        """"fp32" or "bf16" (autocast)."""
        return self.runner.precision

    @precision.setter
    def precision(self, value: str) -> None:
        self.runner.precision = value

    @property
    def object_chunk_size(self) -> int | None:
        """Most objects run through the model at once (None: automatic)."""
        return self.runner.object_chunk_size

    @object_chunk_size.setter
    def object_chunk_size(self, value: int | None) -> None:
        self.runner.object_chunk_size = value

    @property
    def keep_labels(self) -> bool:
        """Whether the session keeps a label volume (see the constructor)."""
        return self.label_volume.keep

    @property
    def workers(self) -> int:
        """Threads a propagated frame's independent work runs in (see the constructor)."""
        return self.runner.pool.size

    @property
    def stats(self) -> dict[str, int]:
        """Counters: "image_encodings", "window_encodings", "frames_propagated"."""
        return self.runner.stats

    def features(self, frame: int) -> FrameFeatures:
        """Image encoding of a frame (batch 1), from the LRU cache when possible."""
        return self.runner.features(check_frame_index(frame, self.num_frames))

    def labels(self, dtype=None) -> np.ndarray:
        """The (T, H, W) label volume (uint16, or uint32 once ids exceed 65,535).

        Returns the session's own array (results keep streaming into it); copy it to keep a
        snapshot.

        Raises:
            RuntimeError: the session was made with ``keep_labels=False``.
        """
        vol = self.label_volume.array()
        return vol if dtype is None or vol.dtype == dtype else vol.astype(dtype)

    def set_label_volume(self, volume: np.ndarray) -> None:
        """Write results into ``volume`` (T, H, W) (e.g. a napari Labels layer's data) from now
        on; its existing values (manual edits) are kept."""
        self.label_volume.use(volume)

    def too_small_hint(
        self, mask: np.ndarray | None = None, box: Sequence[float] | None = None
    ) -> str | None:
        """A sentence telling the user to zoom in when an object (its (H, W) bool mask or box
        (y0, x0, y1, x1)) is too small for the model, else None (``scale.too_small_hint``)."""
        return self.scale.too_small_hint(mask, box)

    # ------------------------------------------------------------------ prompts
    def _obj(self, obj_id) -> TrackedObject:
        obj_id = check_obj_id(obj_id)
        if obj_id not in self._objects:
            self._objects[obj_id] = TrackedObject(obj_id, self.model.config.num_maskmem)
        return self._objects[obj_id]

    def add_points(self, frame: int, obj_id: int, points, labels) -> np.ndarray:
        """Add clicks for an object on a frame and segment it there at once.

        Args:
            frame: frame index t.
            obj_id: object id (>= 1; a new id creates the object).
            points: (N, 2) clicks as (y, x) full-frame pixels, inside the :attr:`roi` if set.
            labels: (N,) 1 = on the object, 0 = background.

        Returns:
            (H, W) bool mask of the object on that frame.
        """
        frame = check_frame_index(frame, self.num_frames)
        pts, lab = validate_points(points, labels, self.frame_shape)
        inside_region(self.runner.region(), points=pts)
        obj = self._obj(obj_id)
        p = obj.prompts.get(frame)
        if p is None or p.mask is not None:
            p = FramePrompts()
        p = FramePrompts(np.concatenate([p.points, pts]), np.concatenate([p.labels, lab]), p.box)
        obj.prompts[frame] = p
        return self._run_prompt(obj, frame)

    def add_box(self, frame: int, obj_id: int, box) -> np.ndarray:
        """Set the box (y0, x0, y1, x1) of an object on a frame (clicks there are kept); a box
        overlapping the :attr:`roi` is clipped to it."""
        frame = check_frame_index(frame, self.num_frames)
        b = inside_region(self.runner.region(), box=validate_box(box, self.frame_shape))
        obj = self._obj(obj_id)
        p = obj.prompts.get(frame)
        if p is None or p.mask is not None:
            p = FramePrompts()
        obj.prompts[frame] = FramePrompts(p.points, p.labels, b)
        return self._run_prompt(obj, frame)

    def add_mask(
        self, frame: int, obj_id: int, mask: np.ndarray, window_side: int | None = None
    ) -> np.ndarray:
        """Give an object's mask (H, W) on a frame; it replaces clicks and box there (its part
        outside the :attr:`roi` is ignored); returns the (H, W) bool mask made. ``window_side``
        (frame px, automatic zoom): windows of this side around the mask, not sized from it."""
        frame = check_frame_index(frame, self.num_frames)
        m = validate_mask(mask, self.frame_shape)
        inside_region(self.runner.region(), mask=m)
        obj = self._obj(obj_id)
        if window_side is not None and self.zoom == "auto":
            self.scale.fix_side(obj, window_side)
        obj.prompts[frame] = FramePrompts(mask=m)
        return self._run_prompt(obj, frame)

    def add_masks(
        self, frame: int, masks: Mapping[int, np.ndarray] | Iterable[tuple[int, np.ndarray]]
    ) -> list[int]:
        """Give the masks of several objects on one frame at once (batched :meth:`add_mask`).

        Every mask is checked before anything changes. The model runs once per chunk of
        objects on the frame's single encoding (or its zoom windows', encoded as one batch),
        and each chunk's masks are written into the labels together (where they overlap, the
        highest logit wins).

        Args:
            frame: frame index t.
            masks: object id -> (H, W) bool mask, or (id, mask) pairs (read one at a time, so
                a generator of masks costs one frame-size mask at a time).

        Returns:
            The object ids, ascending.

        Raises:
            ValueError: a bad frame, id or mask, or a mask wholly outside the :attr:`roi`.
        """
        frame = check_frame_index(frame, self.num_frames)
        pairs = masks.items() if isinstance(masks, Mapping) else masks
        region = self.runner.region()
        prompts: dict[int, FramePrompts] = {}
        for obj_id, mask in pairs:
            obj_id = check_obj_id(obj_id)
            m = validate_mask(mask, self.frame_shape)
            inside_region(region, mask=m, what=f"of object {obj_id}")
            prompts[obj_id] = FramePrompts(mask=m)
        objs = []
        for obj_id, p in prompts.items():
            obj = self._obj(obj_id)
            obj.prompts[frame] = p
            objs.append(obj)
        with self._guard.use():
            seed_masks(self.runner, self.scale, self.label_volume, objs, frame, self.fit)
        return sorted(prompts)

    def add_labels(self, frame: int, label_image) -> list[int]:
        """Make every label of a (H, W) label image an object with a mask prompt on ``frame``.

        The label value becomes the object id; the model work is batched over objects (see
        :func:`napari_sam2.video.seeding.add_labels`). Returns the ids, ascending.
        """
        from .seeding import add_labels

        return add_labels(self, frame, label_image)

    def find_objects(
        self,
        frame: int,
        *,
        points_per_side: int = 16,
        pred_iou_thresh: float = 0.7,
        stability_thresh: float = 0.85,
        min_area: int = 16,
        max_area: int | None = None,
        nms_iou: float = 0.5,
        batch: int = 64,
    ) -> list[np.ndarray]:
        """Candidate object masks (H, W) bool on a frame (within the :attr:`roi`) from a grid of
        clicks, de-duplicated; not yet objects (see :func:`napari_sam2.video.seeding.find_objects`).
        """
        from .seeding import find_objects

        return find_objects(
            self, frame, points_per_side=points_per_side, pred_iou_thresh=pred_iou_thresh,
            stability_thresh=stability_thresh, min_area=min_area, max_area=max_area,
            nms_iou=nms_iou, batch=batch,
        )  # fmt: skip

    def remove_object(self, obj_id: int, from_frame: int = 0) -> None:
        """Forget an object and clear its labels on every frame from ``from_frame`` on (0: all;
        e.g. a mother cell retired at its division keeps its earlier labels)."""
        obj_id = check_obj_id(obj_id)
        first = check_frame_index(from_frame, self.num_frames, "from_frame")
        if self._objects.pop(obj_id, None) is None:
            raise ValueError(f"no object with id {obj_id}; objects: {self.obj_ids}")
        self.label_volume.erase(obj_id, range(first, self.num_frames))

    def clear_prompts(self, frame: int, obj_id: int | None = None) -> None:
        """Remove the prompts (and their results) on a frame, for one object or all."""
        frame = check_frame_index(frame, self.num_frames)
        ids = [check_obj_id(obj_id)] if obj_id is not None else list(self._objects)
        for i in ids:
            obj = self._objects.get(i)
            if obj is None:
                raise ValueError(f"no object with id {i}; objects: {self.obj_ids}")
            obj.forget_frame(frame)
            self.label_volume.erase(i, [frame])

    def reset(self) -> None:
        """Forget all objects, prompts, memories and labels (frame encodings stay cached)."""
        self._objects.clear()
        self.lineage.clear()
        self.label_volume.clear()

    def _run_prompt(self, obj: TrackedObject, frame: int) -> np.ndarray:
        with self._guard.use():
            return prompt_frame(self.runner, self.scale, self.label_volume, obj, frame, self.fit)

    # ------------------------------------------------------------------ propagation
    def propagate(
        self,
        start: int | None = None,
        direction: str = "forward",
        stop: int | tuple[int, int] | None = None,
        obj_ids: Sequence[int] | None = None,
    ) -> Iterator[FrameResult]:
        """Track the objects through the movie, one frame at a time.

        A generator: each step yields the :class:`FrameResult` of one frame after writing it
        into :meth:`labels`. Closing it early keeps every frame finished so far.

        Args:
            start: first frame (default: the earliest prompted frame).
            direction: "forward", "backward" or "both" (forward, then backward from ``start``).
            stop: last frame to visit, inclusive (default: the movie's end in that direction);
                for "both" a (first, last) pair.
            obj_ids: objects to propagate (default: all with prompts); other objects' labels
                are never touched.

        Raises:
            ValueError: at the call, before any frame is processed: an unknown direction, a
                start or stop that is not a whole frame number or out of range, a stop on the
                wrong side of start, a "both" stop that is not a (first, last) pair, unknown
                object ids, or nothing to propagate.
            RuntimeError: another thread is using the session (it is not thread-safe).
        """
        cfg = self.model.config
        self.settings.validate(cfg.num_maskmem, cfg.max_obj_ptrs_in_encoder)
        ids = self.obj_ids if obj_ids is None else [check_obj_id(i) for i in obj_ids]
        missing = [i for i in ids if i not in self._objects]
        if missing:
            raise ValueError(f"unknown object id(s) {missing}; objects: {self.obj_ids}")
        objects = [self._objects[i] for i in ids if self._objects[i].prompted_frames]
        if not objects:
            raise ValueError("nothing to propagate: add points, a box or a mask on a frame first")
        if start is None:
            start = min(t for o in objects for t in o.prompted_frames)
        passes = plan_passes(start, direction, stop, self.num_frames)
        return self._run_passes(objects, passes)

    def _run_passes(
        self, objects: list[TrackedObject], passes: list[tuple[range, bool]]
    ) -> Iterator[FrameResult]:
        """The generator behind :meth:`propagate` (holds the thread guard while it lives)."""
        with self._guard.use():
            commit_pending(self.runner, objects)
            last = self.num_frames - 1
            whole = any(o.side is None for o in objects)  # some object sees the whole frame
            for frames, reverse in passes:
                for t in frames:
                    nxt = t - 1 if reverse else t + 1
                    ahead = None
                    fresh = 0 <= nxt <= last and not self.runner.is_cached(nxt)
                    if whole and fresh and nxt in frames:
                        self.frames.prefetch(nxt)
                        ahead = nxt
                    yield self._propagate_frame(t, objects, reverse, ahead)

    def _propagate_frame(
        self, t: int, objects: list[TrackedObject], reverse: bool, ahead: int | None = None
    ) -> FrameResult:
        """Track ``objects`` on frame t (see :func:`~._steps.track_frame`)."""
        return track_frame(
            self.runner, self.scale, self.label_volume, t, objects, reverse, self.fit, ahead
        )
