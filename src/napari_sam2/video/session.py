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
from ._label_volume import LabelVolumeMixin
from ._model_scale import MIN_OBJECT_PX, ModelScaleMixin
from ._parallel import Failed, WorkerPool, auto_workers, captured
from ._plumbing import ModelPlumbingMixin
from ._propagate_plan import ThreadGuard, plan_passes
from ._sparse import crop_to_box
from .frames import FrameSource, frame_source_for
from .memory_bank import MemoryBank, MemoryEntry, MemorySelection, MemorySettings
from .prompts import FramePrompts, check_obj_id, validate_box, validate_mask, validate_points

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
        feats = self.features(frame)
        is_init = frame not in obj.tracked
        reverse = obj.tracked.get(frame, False)
        s = self.settings
        with torch.inference_mode(), self._autocast():
            if p.mask is not None:
                head = self.model.mask_as_output(feats, self._model_mask(p.mask))
            else:
                coords, labels = self._model_points(p)
                prev = obj.pending.get(frame, (None, None))[0] or obj.bank.get(frame)
                prev_logits = (
                    None if prev is None else prev.mask_logits.to(self.device).clamp(-32, 32)
                )
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
        _, masks = self._write_labels(
            frame, [obj.obj_id], self._frame_crops(entry.mask_logits.to(self.device))
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
        for t, objs in sorted(by_frame.items()):
            feats = self.features(t)
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
            for frames, reverse in passes:
                for t in frames:
                    nxt = t - 1 if reverse else t + 1
                    ahead = None
                    if 0 <= nxt <= last and nxt not in self._features and nxt in frames:
                        self.frames.prefetch(nxt)
                        ahead = nxt
                    yield self._propagate_frame(t, objects, reverse, ahead)

    def _propagate_frame(
        self, t: int, objects: list[_Object], reverse: bool, ahead: int | None = None
    ) -> FrameResult:
        """Track ``objects`` on frame t; with several workers the next frame to visit
        (``ahead``) is encoded meanwhile."""
        feats = self.features(t)
        s = self.settings
        results: dict[int, MemoryEntry] = {}
        groups: dict[tuple, list[tuple[_Object, MemorySelection]]] = {}
        use_prior = self.model.config.track_mask_prior
        before = t + 1 if reverse else t - 1
        for obj in objects:
            if t in obj.bank.cond:
                results[obj.obj_id] = obj.bank.cond[t]
                continue
            sel = obj.bank.select(t, s, self.num_frames, reverse)
            key = sel.signature()
            if use_prior:
                key = (key, obj.bank.get(before) is not None)
            groups.setdefault(key, []).append((obj, sel))
        parts = self._pool.size
        jobs = [chunk for members in groups.values() for chunk in self._chunks(members, parts)]
        tasks = [functools.partial(self._track_chunk, feats, chunk, before) for chunk in jobs]
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
        low = torch.cat([results[i].mask_logits for i in ids]).to(self.device)
        winner, masks = self._write_labels(t, ids, self._frame_crops(low))
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
