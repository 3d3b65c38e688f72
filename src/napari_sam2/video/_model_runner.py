"""The model runner of a :class:`~napari_sam2.video.session.VideoSession`: the frame-encoding
cache (LRU, encoded ahead by workers, window encodings for automatic zoom), prompt and mask
conversion to model coordinates, memory conditioning, object chunks and the per-chunk model
steps, on the session's device and precision."""

from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..model.sam2 import FrameFeatures, HeadOutput, SAM2Model
from ._model_scale import model_region
from ._objects import TrackedObject
from ._parallel import WorkerPool, auto_workers
from ._sparse import CropUpsampler, MaskCrop
from .frames import FrameSource
from .memory_bank import MemoryEntry, MemorySelection
from .memory_settings import MemorySettings
from .postprocess import fill_small_holes
from .prompts import FramePrompts
from .windows import Window, WindowEncodings, remap_logits

__all__ = ["ModelRunner", "stack_features"]


_FALLBACK_BUDGET = 512 << 20  # bytes per object chunk when free memory cannot be queried


def _memory_budget(device: torch.device) -> int:
    """Bytes one object chunk may use: half of the free CUDA memory (including memory cached by
    PyTorch's allocator but unused), or a quarter of the available host memory (psutil, else
    /proc/meminfo) clamped to 256 MB..4 GB; 512 MB when neither can be queried (other devices,
    other systems)."""
    if device.type == "cuda":
        with contextlib.suppress(Exception):
            free, _total = torch.cuda.mem_get_info(device)
            cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
            return max(256 << 20, (free + cached) // 2)
        return _FALLBACK_BUDGET
    if device.type != "cpu":
        return _FALLBACK_BUDGET
    available = None
    try:
        import psutil

        available = int(psutil.virtual_memory().available)
    except Exception:
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open("/proc/meminfo") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        available = int(line.split()[1]) * 1024
                        break
    if available is None:
        return _FALLBACK_BUDGET
    return int(min(max(available // 4, 256 << 20), 4 << 30))


class ModelRunner:
    """Runs the model for a session: encodings, conversions and the batched per-frame steps.

    It holds no objects: the session passes them in. Reads the memory banks, never writes
    them (the session files the entries it returns).

    Args:
        model: the SAM 2 model (in eval mode).
        frames: the movie (its ROI is the region the model sees).
        settings: memory-bank settings (reassigning :attr:`settings` takes effect at once).
        precision: "fp32" or "bf16" (autocast on CPU and CUDA).
        object_chunk_size: most objects run through the model at once (None: automatic).
        workers: threads a propagated frame's independent work runs in (None: automatic,
            see :func:`~._parallel.auto_workers`).

    Attributes:
        stats: counters: "image_encodings" (whole frames), "window_encodings", and
            "frames_propagated" (counted by the session).
    """

    def __init__(
        self,
        model: SAM2Model,
        frames: FrameSource,
        settings: MemorySettings,
        *,
        precision: str = "fp32",
        object_chunk_size: int | None = None,
        workers: int | None = None,
    ) -> None:
        self.model = model
        self.frames = frames
        self.settings = settings
        self.precision = precision
        self.object_chunk_size = object_chunk_size
        self.pool = WorkerPool(
            auto_workers(model.device, model.config.image_size) if workers is None else workers
        )
        self.stats = {"image_encodings": 0, "frames_propagated": 0}
        self._features: OrderedDict[int, FrameFeatures] = OrderedDict()
        self._features_roi = frames.roi  # the ROI the cached encodings were made with
        self._mem_pos: torch.Tensor | None = None
        self._upsampler: CropUpsampler | None = None  # of the current ROI
        self._upsamplers: dict[Window, CropUpsampler] = {}  # one per zoom window
        self.windows = WindowEncodings(self._encode_windows, settings.feature_cache_frames)

    @property
    def precision(self) -> str:
        """"fp32" or "bf16" (autocast on CPU and CUDA)."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {value!r}")
        self._precision = value

    @property
    def device(self) -> torch.device:
        return self.model.device

    def region(self) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1) of the region the model sees (the whole frame by default)."""
        return model_region(self.frames)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when the precision is "bf16", else a no-op context."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def storage(self) -> torch.device:
        """Where memories are kept (the CPU with ``offload_to_cpu``)."""
        return torch.device("cpu") if self.settings.offload_to_cpu else self.device

    # ------------------------------------------------------------------ encodings
    @property
    def cached_frames(self) -> list[int]:
        """Frames whose whole-frame encoding is cached, least recently used first."""
        return list(self._features)

    def cached_nbytes(self) -> int:
        """Bytes held by the cached whole-frame encodings."""
        return sum(
            t.numel() * t.element_size()
            for f in self._features.values()
            for t in (f.vision, f.vision_pos, *f.high_res)
        )

    def clear_cache(self) -> None:
        """Drop every cached encoding (whole frames and windows)."""
        self._features.clear()
        self._features_roi = self.frames.roi
        self.windows.clear()

    def features(self, frame: int) -> FrameFeatures:
        """Image encoding of a frame (batch 1), from the LRU cache when possible."""
        if self.frames.roi != self._features_roi:  # the FrameSource's ROI was changed directly
            self._features.clear()
            self._features_roi = self.frames.roi
        feats = self._features.get(frame)
        if feats is not None:
            self._features.move_to_end(frame)
            return feats
        return self.cache_features(frame, self.encode(frame))

    def drop_features(self, frame: int) -> None:
        """Forget a frame's cached encodings, whole frame and zoom windows (its pixels
        changed)."""
        self._features.pop(frame, None)
        self.windows.drop(frame)

    def is_cached(self, frame: int) -> bool:
        """Whether a frame's whole-frame encoding is in the cache."""
        return frame in self._features

    def encode(self, frame: int) -> FrameFeatures:
        """Run the image encoder on a frame (no caching; safe in a worker thread)."""
        image = self.frames.model_input(frame).to(self.device)[None]
        return self._encode_images(image)

    def cache_features(self, frame: int, feats: FrameFeatures) -> FrameFeatures:
        """File a frame's encoding in the LRU cache (``feature_cache_frames`` frames)."""
        self.stats["image_encodings"] += 1
        self._features[frame] = feats
        while len(self._features) > self.settings.feature_cache_frames:
            self._features.popitem(last=False)
        return feats

    def view_features(self, t: int, window: Window | None) -> FrameFeatures:
        """Image encoding of frame t (batch 1), or of one of its zoom windows."""
        if window is None:
            return self.features(t)
        return self.windows.get(t, [window])[window]

    def _encode_windows(self, t: int, windows: list[Window]) -> FrameFeatures:
        """Run the image encoder on windows of frame t (no caching): one batch, or with several
        workers one batch per worker side by side (one intra-op thread each)."""
        images = self.frames.window_inputs(t, windows).to(self.device)
        parts = min(self.pool.size, len(windows))
        if parts > 1:
            size = -(-len(windows) // parts)
            tasks = [
                functools.partial(self._encode_images, images[i : i + size])
                for i in range(0, len(windows), size)
            ]
            feats = stack_features(self.pool.run(tasks))
        else:
            feats = self._encode_images(images)
        self.stats["window_encodings"] = self.stats.get("window_encodings", 0) + len(windows)
        return feats

    def _encode_images(self, images: torch.Tensor) -> FrameFeatures:
        with torch.inference_mode(), self.autocast():
            feats = self.model.encode_image(images)
        if self.precision == "bf16":
            feats = FrameFeatures(
                feats.vision.float(),
                feats.vision_pos.float(),
                tuple(x.float() for x in feats.high_res),
            )
        return feats

    # ------------------------------------------------------------------ conversions
    def model_points(
        self, p: FramePrompts, window: Window | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt clicks/box -> (1, N, 2) model-input (x, y) and (1, N) labels (of the ROI, or
        of a (y0, x0, y1, x1) zoom ``window``)."""
        y0, x0, y1, x1 = self.region() if window is None else window
        s = self.model.image_size
        sy, sx = s / (y1 - y0), s / (x1 - x0)
        coords, labels = [], []
        if p.box is not None:
            by0, bx0, by1, bx1 = p.box
            coords += [((bx0 - x0) * sx, (by0 - y0) * sy), ((bx1 - x0) * sx, (by1 - y0) * sy)]
            labels += [2, 3]
        for (y, x), lab in zip(p.points, p.labels):
            coords.append(((x - x0) * sx, (y - y0) * sy))
            labels.append(int(lab))
        c = torch.tensor(coords, dtype=torch.float32, device=self.device)[None]
        lab_t = torch.tensor(labels, dtype=torch.int32, device=self.device)[None]
        return c, lab_t

    def model_mask(self, mask: np.ndarray, window: Window | None = None) -> torch.Tensor:
        """Frame-size bool mask -> (1, 1, S, S) binary mask at model resolution (of the ROI,
        or of a zoom ``window``)."""
        y0, x0, y1, x1 = self.region() if window is None else window
        m = torch.from_numpy(np.ascontiguousarray(mask[y0:y1, x0:x1])).to(self.device)
        m = m[None, None].float()
        s = self.model.image_size
        if m.shape[-2:] != (s, s):
            m = F.interpolate(m, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
            m = (m >= 0.5).float()
        return m

    def frame_crops(
        self, low_res: torch.Tensor, window: Window | None = None
    ) -> Iterator[MaskCrop | None]:
        """(N, 1, h, w) logits -> each object's frame-size logits on the rectangle where they
        can be positive (None: empty), inside the ROI (or the zoom ``window`` the logits
        cover); a generator."""
        hw = tuple(low_res.shape[-2:])
        if window is not None:
            up = self._upsamplers.get(window)
            if up is None or up.low_hw != hw:
                if len(self._upsamplers) > 512:
                    self._upsamplers.clear()
                up = self._upsamplers[window] = CropUpsampler(hw, window, low_res.device)
            return up(low_res)
        roi = self.region()
        up = self._upsampler
        if up is None or up.roi != roi or up.low_hw != hw:
            up = self._upsampler = CropUpsampler(hw, roi, low_res.device)
        return up(low_res)

    def to_frame(self, low_res: torch.Tensor) -> torch.Tensor:
        """(N, 1, h, w) logits -> (N, H, W) logits at frame size (outside a ROI: -1024)."""
        y0, x0, y1, x1 = self.region()
        up = F.interpolate(
            low_res.float(), size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False
        )
        shape = (self.frames.height, self.frames.width)
        if (y0, x0, y1, x1) == (0, 0, *shape):
            return up[:, 0]
        out = torch.full((low_res.shape[0], *shape), -1024.0, device=up.device)
        out[:, y0:y1, x0:x1] = up[:, 0]
        return out

    def prior_logits(
        self, obj: TrackedObject, before: int, window: Window | None
    ) -> torch.Tensor:
        """The object's mask logits on the frame before, in the model frame of ``window``."""
        logits = obj.bank.get(before).mask_logits
        old = obj.windows.get(before)
        if window is None and old is None:
            return logits
        return remap_logits(logits.to(self.device), old or self.region(), window or self.region())

    # ------------------------------------------------------------------ batches
    def chunks(self, items: list, parts: int = 1) -> Iterator[list]:
        """Consecutive chunks of ``items``: at least ``parts`` (when there are enough items),
        none bigger than the chunk size. ``parts`` chunks run at once, so they share the
        automatic chunk's memory budget."""
        limit = self.object_chunk_size or max(1, self.auto_chunk() // parts)
        size = max(1, min(limit, -(-len(items) // parts)))
        for i in range(0, len(items), size):
            yield items[i : i + size]

    def auto_chunk(self) -> int:
        """Objects per chunk that fit the memory available now (1..256)."""
        # Activations per object are dominated by the memory attention over h*w tokens and
        # the 1/4-resolution decoder maps; a chunk may use the budget of _memory_budget (a
        # share of the memory available right now), at most 256 objects.
        cfg = self.model.config
        per_obj = (cfg.feat_size**2) * cfg.d_model * 4 * 24 + (cfg.image_size**2) * 4 * 4
        return int(max(1, min(256, _memory_budget(self.device) // per_obj)))

    def memory_pos(self, pos: torch.Tensor) -> torch.Tensor:
        """Remember the memory position encoding (the same for every memory of a layout)."""
        if self._mem_pos is None or self._mem_pos.shape[1:] != pos.shape[1:]:
            self._mem_pos = pos[:1].detach()
        return self._mem_pos

    def entry(
        self, head: HeadOutput, i: int, reverse: bool, features: torch.Tensor | None = None
    ) -> MemoryEntry:
        """The memory entry of the i-th object of a decoder output (its memory features, if
        given, stored as bf16)."""
        st = self.storage()
        logits = fill_small_holes(
            head.mask_logits[i : i + 1].float(), self.settings.fill_holes_area
        )
        return MemoryEntry(
            features=None if features is None else features[i : i + 1].to(torch.bfloat16).to(st),
            obj_ptr=head.obj_ptr[i : i + 1].float().to(st),
            mask_logits=logits.to(st),
            object_score=head.object_score_logits[i : i + 1].float().to(st),
            reverse=reverse,
        )

    # ------------------------------------------------------------------ model steps
    def _selection_tensors(self, sels: list[MemorySelection]):
        """Stack the selections of a batch (equal layouts) for SAM2Model.build_memory."""
        dev = self.device
        spatial = []
        for i, (t_pos, _) in enumerate(sels[0].spatial):
            feats = torch.cat([s.spatial[i][1].features for s in sels]).to(dev).float()
            pos = self._mem_pos.expand(len(sels), -1, -1, -1)
            spatial.append((t_pos, feats, pos))
        pointers = []
        for i, (rel, _) in enumerate(sels[0].pointers):
            pointers.append((rel, torch.cat([s.pointers[i][1] for s in sels]).to(dev)))
        return spatial, pointers

    def conditioned(self, feats: FrameFeatures, sels: list[MemorySelection]) -> torch.Tensor:
        """Memory-conditioned features for a batch of objects with equal memory layouts."""
        n = len(sels)
        fx = feats.expand(n)
        if not sels[0].spatial and not sels[0].pointers:
            return self.model.no_memory(fx)
        spatial, pointers = self._selection_tensors(sels)
        max_ptrs = min(self.frames.num_frames, self.settings.max_object_pointers)
        memory, memory_pos, n_ptr = self.model.build_memory(spatial, pointers, max_ptrs)
        return self.model.attend_memory(fx, memory, memory_pos, n_ptr)

    def prompt_head(
        self,
        feats: FrameFeatures,
        p: FramePrompts,
        window: Window | None,
        prev: tuple[MemoryEntry, Window | None] | None,
        sel: MemorySelection | None,
        multimask: bool,
    ) -> HeadOutput:
        """Decode one object's prompts on a frame.

        Args:
            feats: the encoding of the frame (or of ``window``), batch 1.
            p: the prompts; a mask prompt is taken as the output as it is.
            window: the zoom window the prompts run in (None: the ROI).
            prev: the object's earlier result on this frame and the window it was made in,
                given to the decoder as a mask prompt (None: none).
            sel: the memory to attend to (None: a first prompt, no memory).
            multimask: let the decoder pick among three masks.
        """
        with torch.inference_mode(), self.autocast():
            if p.mask is not None:
                return self.model.mask_as_output(feats, self.model_mask(p.mask, window))
            coords, labels = self.model_points(p, window)
            prev_logits = None
            if prev is not None:
                entry, old = prev
                prev_logits = entry.mask_logits.to(self.device)
                if window is not None or old is not None:
                    prev_logits = remap_logits(
                        prev_logits, old or self.region(), window or self.region()
                    )
                prev_logits = prev_logits.clamp(-32, 32)
            pix = self.model.no_memory(feats) if sel is None else self.conditioned(feats, [sel])
            return self.model.predict_masks(
                pix, feats.high_res, coords, labels, mask_input=prev_logits, multimask=multimask
            )

    def masks_head(
        self, feats: FrameFeatures, masks: Sequence[np.ndarray], window: Window | None
    ) -> HeadOutput:
        """Mask prompts (frame-size bool) of several objects on one encoding, as one batch."""
        model_masks = torch.cat([self.model_mask(m, window) for m in masks])
        with torch.inference_mode(), self.autocast():
            return self.model.mask_as_output(feats.expand(len(masks)), model_masks)

    def encode_memories(
        self, feats: FrameFeatures, entries: Sequence[MemoryEntry], binarize: bool
    ) -> torch.Tensor:
        """Memory features (N, C, h, w) of prompt results on one encoding (batched), in the
        storage dtype and place of memories."""
        s = self.model.image_size
        low = torch.cat([e.mask_logits for e in entries]).to(self.device)
        scores = torch.cat([e.object_score for e in entries]).to(self.device)
        hr = F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False)
        with torch.inference_mode(), self.autocast():
            mem, pos = self.model.encode_memory(feats.expand(len(entries)), hr, scores, binarize)
        self.memory_pos(pos.float())
        return mem.to(torch.bfloat16).to(self.storage())

    def track_chunk(
        self,
        feats: FrameFeatures,
        chunk: list[tuple[TrackedObject, MemorySelection]],
        before: int,
        windows: Sequence[Window | None],
    ):
        """Memory attention, decoder and memory encoder for one chunk of (object, memory
        selection) pairs with equal layouts; reads the banks, writes nothing (thread-safe).

        Args:
            feats: the image encoding the objects are tracked on: batch 1 (shared by the whole
                chunk) or one per object (each object's zoom window, see
                :func:`stack_features`).
            chunk: the objects and their memory selections (equal layouts).
            before: the frame before (the mask prior comes from there).
            windows: the zoom window of each object (None: the ROI).

        Returns:
            (HeadOutput, memory features (n, c, h, w), their position encoding); both None when
            ``num_memory_frames`` is 0: tracked frames' memories would never be attended, so
            the memory encoder is skipped.
        """
        sels = [sel for _, sel in chunk]
        n = len(chunk)
        prior = None
        if self.model.config.track_mask_prior and chunk[0][0].bank.get(before) is not None:
            # the adjacent frame's masks as mask prompts (micro model's protocol)
            prior = torch.cat(
                [self.prior_logits(o, before, w) for (o, _), w in zip(chunk, windows)]
            )
            prior = prior.to(self.device).float().clamp(-32.0, 32.0)
        fx = feats.expand(n)
        with torch.inference_mode(), self.autocast():
            pix = self.conditioned(fx, sels)
            head = self.model.predict_masks(pix, fx.high_res, mask_input=prior, multimask=True)
            if self.settings.num_memory_frames == 0:
                return head, None, None
            mem, pos = self.model.encode_memory(
                fx, head.mask_logits_hr, head.object_score_logits, binarize=False
            )
        return head, mem, pos


def stack_features(parts: Sequence[FrameFeatures]) -> FrameFeatures:
    """One batch from several encodings (e.g. of different zoom windows), in order."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    if first.vision.shape[0] == 1 and all(p is first for p in parts):
        return first.expand(len(parts))  # one encoding for all: broadcast, no copy
    return FrameFeatures(
        torch.cat([p.vision for p in parts]),
        torch.cat([p.vision_pos for p in parts]),
        tuple(torch.cat([p.high_res[i] for p in parts]) for i in range(len(first.high_res))),  # type: ignore[arg-type]
    )
