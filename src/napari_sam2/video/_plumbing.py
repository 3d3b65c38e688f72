"""Model plumbing of a :class:`~napari_sam2.video.session.VideoSession`: frame encodings (LRU
cache, encoded ahead by workers), prompt and mask conversion to model coordinates, memory
conditioning, object chunks and the per-chunk tracking step."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..model.sam2 import FrameFeatures, HeadOutput
from ._sparse import CropUpsampler, MaskCrop
from .memory_bank import MemoryEntry, MemorySelection
from .postprocess import fill_small_holes
from .prompts import FramePrompts

__all__ = ["ModelPlumbingMixin"]


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


class ModelPlumbingMixin:
    """Model-facing part of :class:`~napari_sam2.video.session.VideoSession` (uses its
    ``model``, ``frames``, ``settings``, ``precision``, ``object_chunk_size``, ``_pool``,
    ``_features``, ``_features_roi``, ``_mem_pos`` and ``stats``)."""

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def features(self, frame: int) -> FrameFeatures:
        """Image encoding of a frame (batch 1), from the LRU cache when possible."""
        if self.frames.roi != self._features_roi:  # the FrameSource's ROI was changed directly
            self._features.clear()
            self._features_roi = self.frames.roi
        feats = self._features.get(frame)
        if feats is not None:
            self._features.move_to_end(frame)
            return feats
        return self._cache_features(frame, self._encode(frame))

    @property
    def workers(self) -> int:
        """Threads a propagated frame's independent work runs in (see the constructor)."""
        return self._pool.size

    def _encode(self, frame: int) -> FrameFeatures:
        """Run the image encoder on a frame (no caching; safe in a worker thread)."""
        image = self.frames.model_input(frame).to(self.device)[None]
        with torch.inference_mode(), self._autocast():
            feats = self.model.encode_image(image)
        if self.precision == "bf16":
            feats = FrameFeatures(
                feats.vision.float(),
                feats.vision_pos.float(),
                tuple(x.float() for x in feats.high_res),
            )
        return feats

    def _cache_features(self, frame: int, feats: FrameFeatures) -> FrameFeatures:
        self.stats["image_encodings"] += 1
        self._features[frame] = feats
        while len(self._features) > self.settings.feature_cache_frames:
            self._features.popitem(last=False)
        return feats

    def _roi(self) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1) of the region the model sees (the whole frame by default)."""
        roi = self.frames.roi
        if roi is None:
            return (0, 0, *self.frame_shape)
        return tuple(int(v) for v in roi)  # type: ignore[return-value]

    def _outside_roi(self, what: str) -> ValueError:
        """The error for a prompt outside the ROI; ``what`` starts the message."""
        return ValueError(
            f"{what} outside the region of interest (y0, x0, y1, x1) = {self._roi()}: prompts "
            "must lie inside it (coordinates are full-frame (y, x) pixels)"
        )

    def _storage(self) -> torch.device:
        return torch.device("cpu") if self.settings.offload_to_cpu else self.device

    def _model_points(self, p: FramePrompts, window=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt clicks/box -> (1, N, 2) model-input (x, y) and (1, N) labels (of the ROI, or
        of a (y0, x0, y1, x1) zoom ``window``)."""
        y0, x0, y1, x1 = self._roi() if window is None else window
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

    def _model_mask(self, mask: np.ndarray, window=None) -> torch.Tensor:
        """Frame-size bool mask -> (1, 1, S, S) binary mask at model resolution (of the ROI,
        or of a zoom ``window``)."""
        y0, x0, y1, x1 = self._roi() if window is None else window
        m = torch.from_numpy(np.ascontiguousarray(mask[y0:y1, x0:x1])).to(self.device)
        m = m[None, None].float()
        s = self.model.image_size
        if m.shape[-2:] != (s, s):
            m = F.interpolate(m, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
            m = (m >= 0.5).float()
        return m

    def _frame_crops(self, low_res: torch.Tensor, window=None) -> Iterator[MaskCrop | None]:
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
        roi = self._roi()
        up = self._upsampler
        if up is None or up.roi != roi or up.low_hw != hw:
            up = self._upsampler = CropUpsampler(hw, roi, low_res.device)
        return up(low_res)

    def _to_frame(self, low_res: torch.Tensor) -> torch.Tensor:
        """(N, 1, h, w) logits -> (N, H, W) logits at frame size (outside a ROI: -inf)."""
        y0, x0, y1, x1 = self._roi()
        up = F.interpolate(
            low_res.float(), size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False
        )
        if (y0, x0, y1, x1) == (0, 0, *self.frame_shape):
            return up[:, 0]
        out = torch.full((low_res.shape[0], *self.frame_shape), -1024.0, device=up.device)
        out[:, y0:y1, x0:x1] = up[:, 0]
        return out

    def _memory_pos(self, pos: torch.Tensor) -> torch.Tensor:
        if self._mem_pos is None or self._mem_pos.shape[1:] != pos.shape[1:]:
            self._mem_pos = pos[:1].detach()
        return self._mem_pos

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

    def _conditioned(self, feats: FrameFeatures, sels: list[MemorySelection]) -> torch.Tensor:
        """Memory-conditioned features for a batch of objects with equal memory layouts."""
        n = len(sels)
        fx = feats.expand(n)
        if not sels[0].spatial and not sels[0].pointers:
            return self.model.no_memory(fx)
        spatial, pointers = self._selection_tensors(sels)
        max_ptrs = min(self.num_frames, self.settings.max_object_pointers)
        memory, memory_pos, n_ptr = self.model.build_memory(spatial, pointers, max_ptrs)
        return self.model.attend_memory(fx, memory, memory_pos, n_ptr)

    def _chunks(self, items: list, parts: int = 1) -> Iterator[list]:
        """Consecutive chunks of ``items``: at least ``parts`` (when there are enough items),
        none bigger than the chunk size. ``parts`` chunks run at once, so they share the
        automatic chunk's memory budget."""
        limit = self.object_chunk_size or max(1, self._auto_chunk() // parts)
        size = max(1, min(limit, -(-len(items) // parts)))
        for i in range(0, len(items), size):
            yield items[i : i + size]

    def _auto_chunk(self) -> int:
        # Activations per object are dominated by the memory attention over h*w tokens and
        # the 1/4-resolution decoder maps; a chunk may use the budget of _memory_budget (a
        # share of the memory available right now), at most 256 objects.
        cfg = self.model.config
        per_obj = (cfg.feat_size**2) * cfg.d_model * 4 * 24 + (cfg.image_size**2) * 4 * 4
        return int(max(1, min(256, _memory_budget(self.device) // per_obj)))

    def _entry(self, head: HeadOutput, i: int, reverse: bool, features=None) -> MemoryEntry:
        st = self._storage()
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

    def _track_chunk(self, feats: FrameFeatures, chunk: list, before: int, window=None):
        """Memory attention, decoder and memory encoder for one chunk of (object, memory
        selection) pairs with equal layouts (and one zoom ``window``, or None); reads the
        banks, writes nothing (thread-safe).

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
            prior = torch.cat([self._prior_logits(o, before, window) for o, _ in chunk])
            prior = prior.to(self.device).float().clamp(-32.0, 32.0)
        with torch.inference_mode(), self._autocast():
            pix = self._conditioned(feats, sels)
            head = self.model.predict_masks(
                pix, feats.expand(n).high_res, mask_input=prior, multimask=True
            )
            if self.settings.num_memory_frames == 0:
                return head, None, None
            mem, pos = self.model.encode_memory(
                feats.expand(n), head.mask_logits_hr, head.object_score_logits, binarize=False
            )
        return head, mem, pos
