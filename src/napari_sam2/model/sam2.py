"""SAM 2 wired together: the per-frame steps of promptable video segmentation, without state.

:class:`SAM2Model` owns the components (attribute names equal the keys of Meta's checkpoints, so
``sam2.1_hiera_*.pt`` loads with ``strict=True``) and exposes the steps a video session chains
for every frame:

1. :meth:`SAM2Model.encode_image` – image encoder once per frame, shared by all objects.
2. :meth:`SAM2Model.build_memory` + :meth:`SAM2Model.attend_memory` – condition the frame's
   features on each object's memory (or :meth:`SAM2Model.no_memory` on a first prompted frame).
3. :meth:`SAM2Model.predict_masks` (prompt encoder + mask decoder) or
   :meth:`SAM2Model.mask_as_output` for mask prompts.
4. :meth:`SAM2Model.encode_memory` – memory features of the frame's prediction.

All tensors are batch-first; the batch axis runs over objects of one frame. Coordinates given to
the model are in model-input pixels (x, y) on the ``image_size`` square.

Helpers of these steps live beside the components: click maps for the mask-prompt input in
``prompt_maps.py``, the check that :func:`torch.compile` can generate code in
``compile_check.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP, sine_encoding_1d
from .compile_check import check_compiler
from .config import SAM2Config
from .image_encoder import ImageEncoder
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .prompt_encoder import PromptEncoder
from .prompt_maps import prompt_maps

__all__ = ["NO_OBJECT_LOGIT", "FrameFeatures", "HeadOutput", "SAM2Model"]

#: Mask logit written where the object-score head says the object is absent.
NO_OBJECT_LOGIT = -1024.0
# Logits a binary mask prompt is mapped to when used directly as the output (sigmoid(-10) ~ 0).
_MASK_OUT_SCALE, _MASK_OUT_BIAS = 20.0, -10.0


@dataclass
class FrameFeatures:
    """Image-encoder output of one or more frames (batch B).

    Attributes:
        vision: (B, d, h, w) lowest-resolution features (h = w = image_size / 16).
        vision_pos: (B, d, h, w) their sine position encoding.
        high_res: ((B, d/8, 4h, 4w), (B, d/4, 2h, 2w)) skip features for the mask decoder.
    """

    vision: torch.Tensor
    vision_pos: torch.Tensor
    high_res: tuple[torch.Tensor, torch.Tensor]

    def expand(self, n: int) -> FrameFeatures:
        """Broadcast single-frame features (B=1) to ``n`` objects without copying."""
        if self.vision.shape[0] == n:
            return self
        return FrameFeatures(
            self.vision.expand(n, -1, -1, -1),
            self.vision_pos.expand(n, -1, -1, -1),
            tuple(x.expand(n, -1, -1, -1) for x in self.high_res),  # type: ignore[arg-type]
        )


@dataclass
class HeadOutput:
    """Mask-decoder result for a batch of B objects.

    Attributes:
        multimask_logits: (B, M, 4h, 4w) all candidate masks (M = 3 or 1), low resolution.
        ious: (B, M) predicted IoU of each candidate.
        mask_logits: (B, 1, 4h, 4w) chosen mask, low resolution (``image_size / 4``).
        mask_logits_hr: (B, 1, S, S) chosen mask at model-input resolution.
        obj_ptr: (B, d) object pointer of the chosen mask.
        object_score_logits: (B, 1) > 0 where the object is present.
        raw_multimask_logits: (B, M, 4h, 4w) candidates before absent objects are blanked
            (what training losses use, so masks learn while the presence head is still wrong).
    """

    multimask_logits: torch.Tensor
    ious: torch.Tensor
    mask_logits: torch.Tensor
    mask_logits_hr: torch.Tensor
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor
    raw_multimask_logits: torch.Tensor | None = None


class SAM2Model(nn.Module):
    """SAM 2 / 2.1 with Meta's parameter layout.

    Args:
        config: model configuration (see :mod:`napari_sam2.model.config`).
    """

    def __init__(self, config: SAM2Config) -> None:
        super().__init__()
        self.config = config
        d, mem = config.d_model, config.mem_dim
        self.image_encoder = ImageEncoder(config)
        self.memory_attention = MemoryAttention(config)
        self.memory_encoder = MemoryEncoder(config)
        self.sam_prompt_encoder = PromptEncoder(config)
        self.sam_mask_decoder = MaskDecoder(config)
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(config.num_maskmem, 1, 1, mem))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, d))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, d))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, d))
        self.obj_ptr_proj = MLP(d, d, d, 3)
        self.obj_ptr_tpos_proj: nn.Module = (
            nn.Linear(d, mem) if config.proj_tpos_enc_in_obj_ptrs else nn.Identity()
        )
        self.no_obj_embed_spatial = (
            nn.Parameter(torch.zeros(1, mem)) if config.no_obj_embed_spatial else None
        )
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc, self.no_obj_ptr):
            nn.init.trunc_normal_(p, std=0.02)
        if self.no_obj_embed_spatial is not None:
            nn.init.trunc_normal_(self.no_obj_embed_spatial, std=0.02)

    # ------------------------------------------------------------------ basics
    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.no_mem_embed.device

    @property
    def image_size(self) -> int:
        """Side of the square model input in pixels."""
        return self.config.image_size

    @property
    def compiled(self) -> bool:
        """Whether :meth:`compile_for_inference` has compiled the per-frame networks."""
        return bool(getattr(self, "_compiled", False))

    def compile_for_inference(
        self, mode: str | None = None, backend: str = "inductor"
    ) -> SAM2Model:
        """Compile the four networks that run on every frame with :func:`torch.compile`.

        The image encoder, memory attention, memory encoder and mask decoder are compiled in
        place (:meth:`torch.nn.Module.compile`: parameter names and checkpoints are unchanged);
        the cheap prompt encoder and pointer heads stay eager. Compilation happens lazily, on
        the first calls with each new input shape (on a CPU: 10-80 s for the micro model,
        less once PyTorch's on-disk cache holds the kernels). Meant for long movies on a GPU:
        on this project's 2-core CPU the compiled micro model's frames were as fast as eager
        ones within the run-to-run noise (``benchmarks/bench_many_cells.py --compile``).
        Outputs equal the eager model's up to float rounding. Idempotent; compile after moving
        the model to its device.

        Args:
            mode: ``torch.compile`` mode (None: the default; e.g. ``"reduce-overhead"`` for CUDA
                graphs, ``"max-autotune"``).
            backend: ``torch.compile`` backend (``"inductor"`` generates fused kernels;
                ``"aot_eager"`` only captures the graphs, which the tests use to check capture
                quickly).

        Returns:
            This model.

        Raises:
            RuntimeError: no C++ compiler on a CPU (TorchInductor generates C++), or no Triton
                on a GPU; install it or leave compilation off.
        """
        if self.compiled:
            return self
        if backend == "inductor":
            check_compiler(self.device)
        for net in (
            self.image_encoder,
            self.memory_attention,
            self.memory_encoder,
            self.sam_mask_decoder,
        ):
            net.compile(mode=mode, backend=backend)
        self._compiled = True
        return self

    def use_multimask(self, is_init_cond_frame: bool, num_points: int) -> bool:
        """Whether the decoder returns 3 candidates: SAM 2 does so for 0 or 1 click."""
        return 0 <= num_points <= 1

    # ------------------------------------------------------------------ steps
    def encode_image(self, images: torch.Tensor) -> FrameFeatures:
        """Run the image encoder.

        Args:
            images: (B, 3, S, S) normalised model input.

        Returns:
            :class:`FrameFeatures` with batch B.
        """
        feats, pos = self.image_encoder(images)
        s0 = self.sam_mask_decoder.conv_s0(feats[0])
        s1 = self.sam_mask_decoder.conv_s1(feats[1])
        return FrameFeatures(feats[-1], pos[-1], (s0, s1))

    def no_memory(self, features: FrameFeatures) -> torch.Tensor:
        """Features of a first prompted frame (nothing to remember): (B, d, h, w)."""
        return features.vision + self.no_mem_embed.view(1, -1, 1, 1)

    def attend_memory(
        self,
        features: FrameFeatures,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_ptr_tokens: int,
    ) -> torch.Tensor:
        """Condition frame features on memories with the memory attention.

        Args:
            features: frame features, batch B (expanded per object).
            memory: (B, M, mem_dim) memory tokens (spatial memories, then pointer tokens).
            memory_pos: (B, M, mem_dim) their position encodings.
            num_ptr_tokens: how many trailing tokens are object pointers (no RoPE).

        Returns:
            (B, d, h, w) memory-conditioned features.
        """
        b, c, h, w = features.vision.shape
        curr = features.vision.flatten(2).transpose(1, 2)  # (B, hw, d)
        curr_pos = features.vision_pos.flatten(2).transpose(1, 2)
        out = self.memory_attention(curr, curr_pos, memory, memory_pos, num_ptr_tokens)
        return out.transpose(1, 2).reshape(b, c, h, w)

    def encode_prompts(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        mask_input: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt encoder, with the config's prompt maps (``prompt_map_sigma``) added.

        Args:
            point_coords: (B, N, 2) model-input pixel (x, y), or None (no points).
            point_labels: (B, N) int: 1 positive, 0 negative, 2/3 box corners, -1 padding.
            mask_input: (B, 1, H', W') mask logits, resized to the decoder's mask-input size
                (``image_size / 4``) when needed, or None.

        Returns:
            sparse (B, N', d) and dense (B, d, h, w) prompt embeddings.
        """
        size = self.sam_prompt_encoder.mask_input_size
        if mask_input is not None and tuple(mask_input.shape[-2:]) != tuple(size):
            mask_input = F.interpolate(
                mask_input.float(), size=size, mode="bilinear", align_corners=False, antialias=True
            )
        points = None
        if point_coords is not None and point_labels is not None:
            points = (point_coords, point_labels)
            if self.config.prompt_map_sigma > 0 and bool((point_labels >= 0).any()):
                maps = prompt_maps(
                    point_coords, point_labels, size, self.image_size, self.config.prompt_map_sigma
                )
                mask_input = maps if mask_input is None else mask_input + maps
        return self.sam_prompt_encoder(points=points, boxes=None, masks=mask_input)

    def predict_masks(
        self,
        pix_feat: torch.Tensor,
        high_res: tuple[torch.Tensor, torch.Tensor],
        point_coords: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask: bool = False,
    ) -> HeadOutput:
        """Prompt encoder + mask decoder.

        Args:
            pix_feat: (B, d, h, w) (memory-conditioned) frame features.
            high_res: skip features, batch B.
            point_coords: (B, N, 2) model-input pixel (x, y); boxes as two points labelled 2, 3.
            point_labels: (B, N) int: 1 positive, 0 negative, 2/3 box corners, -1 padding.
            mask_input: (B, 1, H', W') mask logits/probabilities; resized to the decoder's mask
                input size (4h) when needed.
            multimask: return 3 candidates and pick the best by predicted IoU.

        Returns:
            :class:`HeadOutput`.
        """
        b = pix_feat.shape[0]
        if point_coords is None:
            point_coords = pix_feat.new_zeros(b, 1, 2)
            point_labels = -torch.ones(b, 1, dtype=torch.int32, device=pix_feat.device)
        sparse, dense = self.encode_prompts(point_coords, point_labels, mask_input)
        masks, ious, tokens, obj_logits = self.sam_mask_decoder(
            image_embeddings=pix_feat,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            high_res_features=list(high_res),
        )
        present = obj_logits > 0  # (B, 1)
        raw = masks
        masks = torch.where(present[:, :, None, None], masks, NO_OBJECT_LOGIT).float()
        token = tokens[:, 0]
        if multimask:
            best = ious.argmax(dim=-1)
            rows = torch.arange(b, device=masks.device)
            chosen = masks[rows, best].unsqueeze(1)
            if tokens.shape[1] > 1:
                token = tokens[rows, best]
        else:
            chosen = masks
        chosen_hr = F.interpolate(
            chosen, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
        obj_ptr = self.obj_ptr_proj(token)
        obj_ptr = self._gate_pointer(obj_ptr, present.to(obj_ptr.dtype))
        return HeadOutput(masks, ious, chosen, chosen_hr, obj_ptr, obj_logits, raw)

    def mask_as_output(
        self,
        features: FrameFeatures,
        masks: torch.Tensor,
    ) -> HeadOutput:
        """Use binary mask prompts directly as the prediction (SAM 2's mask-prompt path).

        The object pointer still comes from the decoder, fed the downsampled mask.

        Args:
            features: frame features, batch B.
            masks: (B, 1, S, S) binary masks at model-input resolution.
        """
        m = masks.float()
        hr = m * _MASK_OUT_SCALE + _MASK_OUT_BIAS
        low = F.interpolate(
            hr,
            size=(hr.shape[-2] // 4, hr.shape[-1] // 4),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        ious = m.new_ones(m.shape[0], 1)
        # The decoder, fed the downsampled mask, only supplies the object pointer (already gated
        # by its own object score); the mask itself decides presence.
        head = self.predict_masks(
            features.vision, features.high_res, mask_input=self.mask_downsample(m)
        )
        present = (m.flatten(1) > 0).any(dim=1, keepdim=True).to(m.dtype)  # (B, 1)
        obj_logits = _MASK_OUT_SCALE * present + _MASK_OUT_BIAS
        obj_ptr = self._gate_pointer(head.obj_ptr, present)
        return HeadOutput(low, ious, low, hr, obj_ptr, obj_logits)

    def _gate_pointer(self, obj_ptr: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Replace pointers of absent objects by the learned no-object pointer."""
        return present * obj_ptr + (1 - present) * self.no_obj_ptr

    def encode_memory(
        self,
        features: FrameFeatures,
        mask_logits_hr: torch.Tensor,
        object_score_logits: torch.Tensor,
        binarize: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a frame and its predicted masks into memory features.

        Args:
            features: frame features, batch B.
            mask_logits_hr: (B, 1, S, S) mask logits at model-input resolution.
            object_score_logits: (B, 1) presence logits.
            binarize: threshold the mask instead of a sigmoid (masks from clicks).

        Returns:
            (features (B, mem_dim, h, w), pos (B, mem_dim, h, w)).
        """
        cfg = self.config
        prob = (mask_logits_hr > 0).float() if binarize else torch.sigmoid(mask_logits_hr)
        prob = prob * cfg.sigmoid_scale_for_mem_enc + cfg.sigmoid_bias_for_mem_enc
        feats, pos = self.memory_encoder(features.vision, prob)
        if self.no_obj_embed_spatial is not None:
            absent = (object_score_logits <= 0).to(feats.dtype)  # (B, 1)
            feats = feats + absent[:, :, None, None] * self.no_obj_embed_spatial[..., None, None]
        return feats, pos

    # ------------------------------------------------------------------ memory tokens
    def build_memory(
        self,
        spatial: list[tuple[int, torch.Tensor, torch.Tensor]],
        pointers: list[tuple[int, torch.Tensor]],
        max_ptrs: int,
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Assemble memory tokens for :meth:`attend_memory`.

        Args:
            spatial: ``(t_pos, feats (B, mem, h, w), pos (B, mem, h, w))`` per remembered frame;
                ``t_pos`` 0 for prompted frames, 1..num_maskmem-1 for recent frames (1 = oldest
                slot, num_maskmem-1 = the previous frame).
            pointers: ``(relative_position, obj_ptr (B, d))`` per object pointer; positions are
                signed frame offsets (SAM 2.1) or absolute ones (SAM 2.0).
            max_ptrs: the pointer window (``min(num_frames, max_obj_ptrs_in_encoder)``), which
                scales the temporal encoding of pointers.

        Returns:
            (memory (B, M, mem_dim), memory_pos (B, M, mem_dim), number of pointer tokens).
        """
        cfg = self.config
        d, mem = cfg.d_model, cfg.mem_dim
        toks, poss = [], []
        for t_pos, feats, pos in spatial:
            dtype = poss[0].dtype if poss else pos.dtype
            toks.append(feats.flatten(2).transpose(1, 2).to(dtype))  # (B, hw, mem)
            tpos = self.maskmem_tpos_enc[cfg.num_maskmem - t_pos - 1].view(1, 1, mem)
            poss.append(pos.flatten(2).transpose(1, 2) + tpos)
        n_ptr_tokens = 0
        if pointers:
            rel = torch.tensor([p for p, _ in pointers], device=self.device, dtype=torch.float32)
            ptrs = torch.stack([x for _, x in pointers], dim=1)  # (B, P, d)
            b, p = ptrs.shape[:2]
            if cfg.add_tpos_enc_to_obj_ptrs:
                tdim = d if cfg.proj_tpos_enc_in_obj_ptrs else mem
                scale = max(max_ptrs - 1, 1)
                ppos = self.obj_ptr_tpos_proj(sine_encoding_1d(rel / scale, tdim))  # (P, mem)
                ppos = ppos.to(ptrs.dtype).unsqueeze(0).expand(b, p, mem)
            else:
                ppos = ptrs.new_zeros(b, p, mem)
            if mem < d:
                # each d-wide pointer becomes d/mem tokens of width mem
                split = d // mem
                ptrs = ptrs.reshape(b, p * split, mem)
                ppos = ppos.repeat_interleave(split, dim=1)
            toks.append(ptrs)
            poss.append(ppos)
            n_ptr_tokens = ptrs.shape[1]
        dtype = poss[0].dtype
        memory = torch.cat([t.to(dtype) for t in toks], dim=1)
        memory_pos = torch.cat([t.to(dtype) for t in poss], dim=1)
        return memory, memory_pos, n_ptr_tokens
