"""The video session: prompts on any frames in, a mask for every object on every frame out.

A :class:`VideoSession` holds the model, a :class:`~napari_sam2.video.frames.FrameSource`, the
objects with their prompts and one :class:`~napari_sam2.video.memory_bank.MemoryBank` each, an
LRU cache of frame encodings, and the (T, H, W) label volume results are written into. An
optional region of interest is all the model sees; prompts and results stay full-frame.

All objects of a frame share one image encoding and run batched through memory attention, the
mask decoder and the memory encoder (objects whose memories have the same layout form one
batch; big batches are chunked).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..model.sam2 import FrameFeatures, SAM2Model
from ._click_size import click_diameter
from ._label_volume import LabelVolumeMixin
from ._model_scale import MIN_OBJECT_PX, ModelScaleMixin
from ._parallel import Failed, WorkerPool, auto_workers, captured
from ._plumbing import ModelPlumbingMixin
from ._propagate_plan import ThreadGuard, plan_passes
from ._sparse import crop_to_box
from .frames import FrameSource, frame_source_for
from .memory_bank import MemoryBank, MemoryEntry, MemorySelection, MemorySettings
from .prompts import FramePrompts, check_obj_id, validate_box, validate_mask, validate_points
from .windows import Window, WindowEncodings, ZoomPlanner, prompt_extent, remap_logits

__all__ = ["MIN_OBJECT_PX", "FrameResult", "VideoSession"]


@dataclass(init=False, repr=False, eq=False)
class FrameResult:
    """Masks of the propagated objects on one frame.

    Each mask is kept as its bounding rectangle (``boxes``, ``crops``), so that hundreds of
    cells on large frames cost their own areas; :attr:`masks` and :meth:`mask` give frame-size
    arrays. Build one from frame-size masks, ``FrameResult(frame, obj_ids, masks, scores)``,
    or from crops, ``FrameResult(frame, obj_ids, scores=..., boxes=..., crops=...,
    shape=...)``.

    Attributes:
        frame: frame index t.
        obj_ids: ids of the N objects, in the order of the masks.
        scores: (N,) object presence probability (sigmoid of the object-score logit).
        boxes: (N, 4) int (y0, x0, y1, x1) rectangle of each mask in frame pixels (end
            exclusive; all zero for an empty mask).
        crops: N (y1 - y0, x1 - x0) bool arrays, each mask inside its rectangle.
        shape: (H, W) of the frame.
    """

    frame: int
    obj_ids: list[int]
    scores: np.ndarray
    boxes: np.ndarray
    crops: list[np.ndarray]
    shape: tuple[int, int]

    def __init__(
        self,
        frame: int,
        obj_ids: Sequence[int],
        masks: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        *,
        boxes: np.ndarray | None = None,
        crops: list[np.ndarray] | None = None,
        shape: tuple[int, int] | None = None,
    ) -> None:
        self.frame = int(frame)
        self.obj_ids = [int(i) for i in obj_ids]
        n = len(self.obj_ids)
        self.scores = np.ones(n, np.float32) if scores is None else np.asarray(scores, np.float32)
        if masks is not None:
            masks = np.asarray(masks, dtype=bool)
            pairs = [crop_to_box(m) for m in masks]
            boxes, crops = [box for box, _ in pairs], [crop for _, crop in pairs]
            shape = masks.shape[1:]
        elif crops is None or boxes is None or shape is None:
            raise ValueError("give frame-size masks, or boxes, crops and shape")
        if len(crops) != n or len(boxes) != n or len(self.scores) != n:
            raise ValueError(f"{n} object ids need {n} masks and {n} scores")
        self.boxes = np.asarray(boxes, np.int64).reshape(n, 4)
        self.crops = list(crops)
        self.shape = (int(shape[0]), int(shape[1]))
        self._masks: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"FrameResult(frame={self.frame}, obj_ids={self.obj_ids}, shape={self.shape})"

    def mask(self, k: int) -> np.ndarray:
        """(H, W) bool mask of the k-th object (position in :attr:`obj_ids`)."""
        out = np.zeros(self.shape, bool)
        y0, x0, y1, x1 = self.boxes[k]
        out[y0:y1, x0:x1] = self.crops[k]
        return out

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool masks at the original frame size (False outside the session's ROI);
        built on first use (N frame-size arrays: prefer :meth:`mask` or the crops for many
        objects on large frames)."""
        if self._masks is None:
            self._masks = (
                np.stack([self.mask(k) for k in range(len(self.obj_ids))])
                if self.obj_ids
                else np.zeros((0, *self.shape), bool)
            )
        return self._masks


class _Object:
    def __init__(self, obj_id: int, num_maskmem: int) -> None:
        self.obj_id = obj_id
        self.prompts: dict[int, FramePrompts] = {}
        self.bank = MemoryBank(num_maskmem)
        # frames with a prompt result whose memory is not encoded yet: frame -> (entry, is_cond)
        self.pending: dict[int, tuple[MemoryEntry, bool]] = {}
        self.tracked: dict[int, bool] = {}  # frame -> produced while tracking backwards
        # automatic zoom: window side in frame px (None: the whole frame), decided on the
        # first prompt, and the window each frame was segmented in
        self.side: int | None = None
        self.sized = False
        self.windows: dict[int, Window] = {}

    @property
    def prompted_frames(self) -> set[int]:
        return set(self.bank.cond) | {t for t, (_, c) in self.pending.items() if c}


class VideoSession(ModelPlumbingMixin, LabelVolumeMixin, ModelScaleMixin):
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
            the CPU's threads for small models (input <= 512 px) on a CPU, else 1 (PyTorch's
            own threading). Results equal sequential processing.
        allow_partial: a TIFF ``movie`` cut off after frame k-1 is used as frames 0..k-1
            (with a warning) instead of raising ``DamagedMovieError``.
        zoom: "auto" (default): objects too small for the model at the whole-frame input run in
            windows of the frame that follow them (see :mod:`napari_sam2.video.windows`);
            "off": every object sees the whole frame (or ROI).
        cell_diameter: typical cell diameter in frame pixels, used to size the windows of
            objects given by clicks (None: estimated from the image around the first click).
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
    ) -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.model = model.eval()
        cfg = model.config
        if isinstance(movie, FrameSource):
            self.frames = movie
            if roi is not None:
                movie.roi = roi
        else:
            self.frames = frame_source_for(
                movie,
                cfg,
                axes=axes,
                channel=channel,
                contrast_limits=contrast_limits,
                roi=roi,
                allow_partial=allow_partial,
            )
        self.settings = settings or MemorySettings()
        self.settings.validate(cfg.num_maskmem, cfg.max_obj_ptrs_in_encoder)
        self.precision = precision
        self.object_chunk_size = object_chunk_size
        self.keep_labels = keep_labels
        self._pool = WorkerPool(
            auto_workers(self.device, cfg.image_size) if workers is None else workers
        )
        self._objects: dict[int, _Object] = {}
        self._features: OrderedDict[int, FrameFeatures] = OrderedDict()
        self._features_roi = self.frames.roi  # the ROI the cached encodings were made with
        self._mem_pos: torch.Tensor | None = None
        self._upsampler = None  # CropUpsampler of the current ROI
        self._labels: np.ndarray | None = None
        self._zoom = ZoomPlanner(
            zoom, cfg.object_size_range, cfg.image_size, self._roi(), cell_diameter
        )
        self._windows = WindowEncodings(self._encode_windows, self.settings.feature_cache_frames)
        self._upsamplers: dict[Window, object] = {}  # CropUpsampler per window
        self.stats = {"image_encodings": 0, "frames_propagated": 0}
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
            raise ValueError(
                "cannot change the region of interest while the session has objects (prompts "
                "or results): call reset() first"
            )
        self.frames.roi = value  # validates it
        self._features.clear()
        self._features_roi = self.frames.roi
        self._windows.clear()

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
        return self.model.device

    def prompts(self, obj_id: int) -> dict[int, FramePrompts]:
        """Prompts of one object, by frame (a copy)."""
        return dict(self._objects[obj_id].prompts) if obj_id in self._objects else {}

    def prompted_frames(self, obj_id: int | None = None) -> list[int]:
        """Frames carrying prompts (of one object, or of any)."""
        objs = [self._objects[obj_id]] if obj_id is not None else self._objects.values()
        return sorted({t for o in objs for t in o.prompts})

    # ------------------------------------------------------------------ prompts
    def _obj(self, obj_id) -> _Object:
        obj_id = check_obj_id(obj_id)
        if obj_id not in self._objects:
            self._objects[obj_id] = _Object(obj_id, self.model.config.num_maskmem)
        return self._objects[obj_id]

    def _check_frame(self, frame) -> int:
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
            raise ValueError(f"frame must be an integer index, got {frame!r}")
        if not 0 <= frame < self.num_frames:
            raise ValueError(
                f"frame {frame} is out of range: the movie has frames 0..{self.num_frames - 1}"
            )
        return int(frame)

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
        frame = self._check_frame(frame)
        pts, lab = validate_points(points, labels, self.frame_shape)
        y0, x0, y1, x1 = self._roi()
        out = (pts[:, 0] < y0) | (pts[:, 0] > y1 - 1) | (pts[:, 1] < x0) | (pts[:, 1] > x1 - 1)
        if out.any():
            y, x = pts[out][0]
            raise self._outside_roi(f"point (y={y:g}, x={x:g}) is")
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
        frame = self._check_frame(frame)
        b = validate_box(box, self.frame_shape)
        y0, x0, y1, x1 = self._roi()
        if b[2] < y0 or b[3] < x0 or b[0] > y1 - 1 or b[1] > x1 - 1:
            raise self._outside_roi("box (y0={:g}, x0={:g}, y1={:g}, x1={:g}) is".format(*b))
        b = np.clip(b, [y0, x0, y0, x0], [y1 - 1, x1 - 1, y1 - 1, x1 - 1])
        obj = self._obj(obj_id)
        p = obj.prompts.get(frame)
        if p is None or p.mask is not None:
            p = FramePrompts()
        obj.prompts[frame] = FramePrompts(p.points, p.labels, b)
        return self._run_prompt(obj, frame)

    def add_mask(self, frame: int, obj_id: int, mask) -> np.ndarray:
        """Give an object's mask (H, W) on a frame; it replaces clicks and box there (its part
        outside the :attr:`roi` is ignored)."""
        frame = self._check_frame(frame)
        m = validate_mask(mask, self.frame_shape)
        y0, x0, y1, x1 = self._roi()
        if not m[y0:y1, x0:x1].any():
            raise self._outside_roi("mask prompt lies wholly")
        obj = self._obj(obj_id)
        obj.prompts[frame] = FramePrompts(mask=m)
        return self._run_prompt(obj, frame)

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
            self,
            frame,
            points_per_side=points_per_side,
            pred_iou_thresh=pred_iou_thresh,
            stability_thresh=stability_thresh,
            min_area=min_area,
            max_area=max_area,
            nms_iou=nms_iou,
            batch=batch,
        )

    def remove_object(self, obj_id: int) -> None:
        """Forget an object and clear its labels on every frame."""
        obj_id = check_obj_id(obj_id)
        if self._objects.pop(obj_id, None) is None:
            raise ValueError(f"no object with id {obj_id}; objects: {self.obj_ids}")
        if self._labels is not None:
            for t in range(self.num_frames):
                lab = self._labels[t]
                hit = lab == obj_id
                if hit.any():
                    lab[hit] = 0

    def clear_prompts(self, frame: int, obj_id: int | None = None) -> None:
        """Remove the prompts (and their results) on a frame, for one object or all."""
        frame = self._check_frame(frame)
        ids = [check_obj_id(obj_id)] if obj_id is not None else list(self._objects)
        for i in ids:
            obj = self._objects.get(i)
            if obj is None:
                raise ValueError(f"no object with id {i}; objects: {self.obj_ids}")
            obj.prompts.pop(frame, None)
            obj.pending.pop(frame, None)
            obj.bank.clear_frame(frame)
            obj.tracked.pop(frame, None)
            if self._labels is not None:
                lab = self._labels[frame]
                lab[lab == i] = 0

    def reset(self) -> None:
        """Forget all objects, prompts, memories and labels (frame encodings stay cached)."""
        self._objects.clear()
        self.lineage.clear()
        if self._labels is not None:
            self._labels[...] = 0

    # ------------------------------------------------------------------ prompt inference
    def _run_prompt(self, obj: _Object, frame: int) -> np.ndarray:
        with self._guard.use():
            return self._run_prompt_unguarded(obj, frame)

    def _run_prompt_unguarded(self, obj: _Object, frame: int) -> np.ndarray:
        p = obj.prompts[frame]
        is_init = frame not in obj.tracked
        window = self._prompt_window(obj, frame, p, is_init)
        feats = self._view_features(frame, window)
        reverse = obj.tracked.get(frame, False)
        s = self.settings
        with torch.inference_mode(), self._autocast():
            if p.mask is not None:
                head = self.model.mask_as_output(feats, self._model_mask(p.mask, window))
            else:
                coords, labels = self._model_points(p, window)
                prev = obj.pending.get(frame, (None, None))[0] or obj.bank.get(frame)
                prev_logits = None
                if prev is not None:
                    prev_logits = prev.mask_logits.to(self.device)
                    old = obj.windows.get(frame)
                    if window is not None or old is not None:
                        prev_logits = remap_logits(
                            prev_logits, old or self._roi(), window or self._roi()
                        )
                    prev_logits = prev_logits.clamp(-32, 32)
                if is_init:
                    pix = self.model.no_memory(feats)
                else:
                    sel = obj.bank.select(frame, s, self.num_frames, reverse)
                    pix = self._conditioned(feats, [sel])
                multimask = s.multimask_first_click and self.model.use_multimask(
                    is_init, p.num_points
                )
                head = self.model.predict_masks(
                    pix, feats.high_res, coords, labels, mask_input=prev_logits, multimask=multimask
                )
        entry = self._entry(head, 0, reverse)
        obj.pending[frame] = (entry, is_init or s.corrections_as_prompts)
        self._set_window(obj, frame, window)
        _, masks = self._write_labels(
            frame, [obj.obj_id], self._frame_crops(entry.mask_logits.to(self.device), window)
        )
        mask = np.zeros(self.frame_shape, bool)
        if masks[0] is not None:
            (y0, x0, y1, x1), m = masks[0]
            mask[y0:y1, x0:x1] = m
        return mask

    def _commit_pending(self, objects: list[_Object]) -> None:
        """Encode the memory of prompted frames (batched per frame) and file it in the banks."""
        by_frame: dict[int, list[_Object]] = {}
        for obj in objects:
            for t in obj.pending:
                by_frame.setdefault(t, []).append(obj)
        binarize = self.model.config.binarize_mask_from_pts_for_mem_enc
        s = self.model.image_size
        for t, objs_t in sorted(by_frame.items()):
            groups = self._by_window(objs_t, t)
            self._windows.get(t, [w for w in groups if w is not None])  # one batch
            for window, objs in groups.items():
                feats = self._view_features(t, window)
                for chunk in self._chunks(objs):
                    entries = [o.pending[t][0] for o in chunk]
                    low = torch.cat([e.mask_logits for e in entries]).to(self.device)
                    scores = torch.cat([e.object_score for e in entries]).to(self.device)
                    hr = F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False)
                    with torch.inference_mode(), self._autocast():
                        mem, pos = self.model.encode_memory(
                            feats.expand(len(chunk)), hr, scores, binarize
                        )
                    self._memory_pos(pos.float())
                    for k, obj in enumerate(chunk):
                        entry, is_cond = obj.pending.pop(t)
                        entry.features = mem[k : k + 1].to(torch.bfloat16).to(self._storage())
                        if is_cond:
                            obj.bank.cond[t] = entry
                            obj.bank.tracked.pop(t, None)
                        else:
                            obj.bank.tracked[t] = entry

    # ------------------------------------------------------------------ automatic zoom
    def _prompt_window(
        self, obj: _Object, frame: int, p: FramePrompts, is_init: bool
    ) -> Window | None:
        """The window an object's prompts on a frame run in (None: the whole frame / ROI).

        The object's window side is decided on its first prompt (and again on a box or mask
        prompt of an unsegmented frame): from the box or mask, else the ``cell_diameter``
        hint, else estimated around the clicks. The window stays where the object was
        segmented on that frame while the prompts fit inside it, else it is placed around them.
        """
        zoom = self._zoom
        zoom.region = self._roi()
        if not obj.sized and not zoom.active:
            return None
        where = prompt_extent(p.points, p.labels, p.box, p.mask_box)
        if where is None:
            return obj.windows.get(frame)
        centre, extent = where
        sized_by_shape = p.box is not None or p.mask_box is not None
        if zoom.active and (not obj.sized or (is_init and sized_by_shape)):
            if sized_by_shape:
                diameter = max(extent[2] - extent[0], extent[3] - extent[1])
            elif zoom.cell_diameter is not None:
                diameter = zoom.cell_diameter
            else:
                diameter = self._click_diameter(frame, p)
            obj.side = None if diameter is None else zoom.side_for(diameter)
            obj.sized = True
        if obj.side is None:
            return None
        window = obj.windows.get(frame)
        if window is not None and window[2] - window[0] == obj.side and zoom.fits(window, extent):
            return window
        return zoom.place(centre, obj.side)

    def _click_diameter(self, frame: int, p: FramePrompts) -> float | None:
        """Diameter (frame px) of the object under its positive clicks (None: none), asked of
        the model at several zoom levels, else the blob scale (``video/_click_size.py``)."""
        pos = p.points[np.asarray(p.labels) > 0]
        if not len(pos):
            return None
        return click_diameter(
            self.model, functools.partial(self.frames.window_inputs, frame),
            functools.partial(self.frames._read_for_model, frame), tuple(pos.mean(axis=0)),
            self._zoom.region, (self._zoom.lo, self._zoom.hi), self.device,
        )

    def _track_window(self, obj: _Object, t: int, before: int) -> Window | None:
        """The window an object is tracked in on frame t: its window on the frame before,
        moved to follow the mask there (none: the nearest frame it was segmented on)."""
        if obj.side is None:
            return None
        prev = obj.windows.get(before)
        src = before
        if prev is None:
            src = min(obj.windows, key=lambda f: (abs(f - t), f))
            prev = obj.windows[src]
        entry = obj.bank.get(src)
        self._zoom.region = self._roi()
        return self._zoom.follow(prev, None if entry is None else entry.mask_logits)

    def _set_window(self, obj: _Object, frame: int, window: Window | None) -> None:
        if window is None:
            obj.windows.pop(frame, None)
        else:
            obj.windows[frame] = window

    def _by_window(self, objs: list[_Object], t: int) -> dict[Window | None, list[_Object]]:
        """Objects grouped by the window they have on frame t (None first), order kept."""
        groups: dict[Window | None, list[_Object]] = {}
        for obj in objs:
            groups.setdefault(obj.windows.get(t), []).append(obj)
        return groups

    def _view_features(self, t: int, window: Window | None) -> FrameFeatures:
        """Image encoding of frame t (batch 1), or of one of its windows."""
        if window is None:
            return self.features(t)
        return self._windows.get(t, [window])[window]

    def _encode_windows(self, t: int, windows: list[Window]) -> FrameFeatures:
        """Run the image encoder on windows of frame t as one batch (no caching)."""
        images = self.frames.window_inputs(t, windows).to(self.device)
        with torch.inference_mode(), self._autocast():
            feats = self.model.encode_image(images)
        if self.precision == "bf16":
            feats = FrameFeatures(
                feats.vision.float(),
                feats.vision_pos.float(),
                tuple(x.float() for x in feats.high_res),
            )
        self.stats["window_encodings"] = self.stats.get("window_encodings", 0) + len(windows)
        return feats

    def _prior_logits(self, obj: _Object, before: int, window: Window | None) -> torch.Tensor:
        """The object's mask logits on the frame before, in the model frame of ``window``."""
        logits = obj.bank.get(before).mask_logits
        old = obj.windows.get(before)
        if window is None and old is None:
            return logits
        return remap_logits(logits.to(self.device), old or self._roi(), window or self._roi())

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
        self.settings.validate(
            self.model.config.num_maskmem, self.model.config.max_obj_ptrs_in_encoder
        )
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
        self, objects: list[_Object], passes: list[tuple[range, bool]]
    ) -> Iterator[FrameResult]:
        """The generator behind :meth:`propagate` (holds the thread guard while it lives)."""
        with self._guard.use():
            self._commit_pending(objects)
            last = self.num_frames - 1
            whole = any(o.side is None for o in objects)  # some object sees the whole frame
            for frames, reverse in passes:
                for t in frames:
                    nxt = t - 1 if reverse else t + 1
                    ahead = None
                    if whole and 0 <= nxt <= last and nxt not in self._features and nxt in frames:
                        self.frames.prefetch(nxt)
                        ahead = nxt
                    yield self._propagate_frame(t, objects, reverse, ahead)

    def _propagate_frame(
        self, t: int, objects: list[_Object], reverse: bool, ahead: int | None = None
    ) -> FrameResult:
        """Track ``objects`` on frame t; with several workers the next frame to visit
        (``ahead``) is encoded meanwhile. Objects with windows (automatic zoom) are tracked
        in their windows, placed from their previous masks."""
        s = self.settings
        results: dict[int, MemoryEntry] = {}
        windows: dict[int, Window | None] = {}
        groups: dict[tuple, list[tuple[_Object, MemorySelection]]] = {}
        use_prior = self.model.config.track_mask_prior
        before = t + 1 if reverse else t - 1
        for obj in objects:
            if t in obj.bank.cond:
                results[obj.obj_id] = obj.bank.cond[t]
                windows[obj.obj_id] = obj.windows.get(t)
                continue
            window = windows[obj.obj_id] = self._track_window(obj, t, before)
            sel = obj.bank.select(t, s, self.num_frames, reverse)
            key = sel.signature()
            if use_prior:
                key = (key, obj.bank.get(before) is not None)
            if window is not None:
                key = (window, key)
            groups.setdefault(key, []).append((obj, sel))
        feats = {None: self.features(t)} if any(w is None for w in windows.values()) else {}
        feats.update(self._windows.get(t, [w for w in windows.values() if w is not None]))
        parts = self._pool.size
        jobs = [chunk for members in groups.values() for chunk in self._chunks(members, parts)]
        tasks = []
        for chunk in jobs:
            window = windows[chunk[0][0].obj_id]
            tasks.append(
                functools.partial(self._track_chunk, feats[window], chunk, before, window)
            )
        encode_ahead = ahead is not None and parts > 1 and bool(jobs)
        if encode_ahead:  # a failure there is raised when frame `ahead` itself is visited
            tasks.append(captured(functools.partial(self._encode, ahead)))
        outputs = self._pool.run(tasks)
        if encode_ahead:
            feats_ahead = outputs.pop()
            if not isinstance(feats_ahead, Failed):
                self._cache_features(ahead, feats_ahead)
        for chunk, (head, mem, pos) in zip(jobs, outputs):
            if pos is not None:
                self._memory_pos(pos.float())
            for k, (obj, _) in enumerate(chunk):
                entry = self._entry(head, k, reverse, features=mem)
                obj.bank.tracked[t] = entry
                results[obj.obj_id] = entry
        ids = [o.obj_id for o in objects]
        for obj in objects:
            obj.tracked[t] = reverse
            obj.bank.prune(t, s, reverse)
            self._set_window(obj, t, windows[obj.obj_id])
        low = torch.cat([results[i].mask_logits for i in ids]).to(self.device)
        if all(windows[i] is None for i in ids):
            crops = self._frame_crops(low)
        else:
            crops = (
                next(self._frame_crops(low[k : k + 1], windows[i])) for k, i in enumerate(ids)
            )
        winner, masks = self._write_labels(t, ids, crops)
        scores = torch.sigmoid(torch.cat([results[i].object_score for i in ids]).float())
        self.stats["frames_propagated"] += 1
        boxes = np.zeros((len(ids), 4), np.int64)
        crops = []
        for k, item in enumerate(masks):
            if item is None:
                crops.append(np.zeros((0, 0), bool))
                continue
            boxes[k] = item[0]
            y0, x0, y1, x1 = item[0]
            if s.non_overlap:  # only the pixels the object won
                crops.append(item[1] & (winner[y0:y1, x0:x1] == k))
            else:
                crops.append(item[1])
        return FrameResult(
            t,
            ids,
            scores=scores[:, 0].cpu().numpy(),
            boxes=boxes,
            crops=crops,
            shape=self.frame_shape,
        )
