"""Memory attention: conditions the current frame's features on memories of earlier frames.

A stack of pre-norm transformer layers over the tokens of the current frame's lowest-resolution
feature map. Each layer runs

1. self-attention among the frame tokens, with 2-D axial RoPE on queries and keys;
2. cross-attention from the frame tokens to the memory tokens (spatial memories of several
   frames followed by object-pointer tokens). The keys are ``memory + memory_pos``, the queries
   carry no additive position encoding; RoPE rotates the queries and the spatial-memory keys
   (the grid angles repeated for every memory frame) but not the object-pointer keys;
3. a ReLU feed-forward block.

A final LayerNorm closes the stack. Inputs and outputs are batch-first; a batch of objects is
processed in one call. Parameter names match Meta's checkpoints (``memory_attention.*``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import RoPEAttention
from .config import SAM2Config

__all__ = ["MemoryAttention", "MemoryAttentionLayer"]

# Fixed architectural choices of SAM 2 / 2.1 (not exposed in the config).
_POS_AT_INPUT_SCALE = 0.1  # weight of curr_pos added to the frame tokens at the input


class MemoryAttentionLayer(nn.Module):
    """One pre-norm layer: RoPE self-attention, RoPE cross-attention to memory, ReLU FFN.

    Args:
        d_model: width of the frame tokens.
        mem_dim: width of the memory tokens (keys/values of the cross-attention).
        dim_feedforward: hidden width of the feed-forward block.
        num_heads: attention heads of both attentions.
        dropout: dropout probability (attention weights and residual branches), training only.
        rope_theta: RoPE frequency base.
        feat_size: side of the square token grid at the model's native resolution.
    """

    def __init__(
        self,
        d_model: int,
        mem_dim: int,
        dim_feedforward: int,
        num_heads: int,
        dropout: float,
        rope_theta: float,
        feat_size: int,
    ) -> None:
        super().__init__()
        grid = (feat_size, feat_size)
        self.self_attn = RoPEAttention(
            d_model, num_heads, dropout=dropout, rope_theta=rope_theta, feat_sizes=grid
        )
        self.cross_attn_image = RoPEAttention(
            d_model,
            num_heads,
            dropout=dropout,
            kv_in_dim=mem_dim,
            rope_theta=rope_theta,
            rope_k_repeat=True,
            feat_sizes=grid,
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)  # inside the FFN
        self.dropout1 = nn.Dropout(dropout)  # residual branches
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_key: torch.Tensor,
        num_k_exclude_rope: int = 0,
        self_attended: bool = False,
    ) -> torch.Tensor:
        """Update the frame tokens.

        Args:
            tgt: (B, HW, d_model) frame tokens.
            memory: (B, M, mem_dim) memory tokens (the values).
            memory_key: (B, M, mem_dim) ``memory + memory_pos`` (the keys before projection).
            num_k_exclude_rope: trailing memory tokens (object pointers) without RoPE.
            self_attended: ``tgt`` already went through :meth:`self_block` (skip it).

        Returns:
            (B, HW, d_model) updated tokens.
        """
        if not self_attended:
            tgt = self.self_block(tgt)
        x = self.norm2(tgt)
        x = self.cross_attn_image(x, memory_key, memory, num_k_exclude_rope=num_k_exclude_rope)
        tgt = tgt + self.dropout2(x)
        x = self.norm3(tgt)
        x = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return tgt + self.dropout3(x)

    def self_block(self, tgt: torch.Tensor) -> torch.Tensor:
        """Self-attention of the frame tokens with its residual: (B, HW, d) -> (B, HW, d)."""
        x = self.norm1(tgt)
        return tgt + self.dropout1(self.self_attn(x, x, x))


class MemoryAttention(nn.Module):
    """The memory-attention stack of SAM 2 (sizes from ``cfg.memory_attention``).

    Args:
        cfg: model configuration (uses ``d_model``, ``mem_dim``, ``feat_size`` and
            ``memory_attention``).
    """

    def __init__(self, cfg: SAM2Config) -> None:
        super().__init__()
        m = cfg.memory_attention
        self.d_model = cfg.d_model
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(
                d_model=cfg.d_model,
                mem_dim=cfg.mem_dim,
                dim_feedforward=m.dim_feedforward,
                num_heads=m.num_heads,
                dropout=m.dropout,
                rope_theta=m.rope_theta,
                feat_size=cfg.feat_size,
            )
            for _ in range(m.num_layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(
        self,
        curr: torch.Tensor,
        curr_pos: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_obj_ptr_tokens: int = 0,
    ) -> torch.Tensor:
        """Condition frame tokens on memories.

        Args:
            curr: (B, HW, d_model) tokens of the current frame's lowest-resolution features,
                row-major over a square (h, w) grid.
            curr_pos: (B, HW, d_model) their sine position encoding.
            memory: (B, M, mem_dim) memory tokens: ``F`` spatial memories of HW tokens each
                (frame-major, each row-major over the same grid), then ``num_obj_ptr_tokens``
                object-pointer tokens; ``M = F * HW + num_obj_ptr_tokens``.
            memory_pos: (B, M, mem_dim) position (+ temporal) encoding of the memory tokens.
            num_obj_ptr_tokens: number of trailing object-pointer tokens (excluded from RoPE).

        Returns:
            (B, HW, d_model) memory-conditioned tokens.
        """
        if curr.shape[0] != memory.shape[0]:
            raise ValueError(
                f"batch sizes differ: {curr.shape[0]} frame tokens vs {memory.shape[0]} memories"
            )
        memory_key = memory + memory_pos  # shared by all layers
        b = curr.shape[0]
        if b > 1 and curr.stride(0) == 0 and curr_pos.stride(0) == 0 and not self.training:
            # one frame broadcast to all objects (the video session's batches): the first
            # layer's self-attention sees the same tokens for every object, so run it once
            first = self.layers[0]
            out = first.self_block(curr[:1] + _POS_AT_INPUT_SCALE * curr_pos[:1])
            out = first(
                out.expand(b, -1, -1),
                memory,
                memory_key,
                num_k_exclude_rope=num_obj_ptr_tokens,
                self_attended=True,
            )
            rest = self.layers[1:]
        else:
            out, rest = curr + _POS_AT_INPUT_SCALE * curr_pos, self.layers
        for layer in rest:
            out = layer(out, memory, memory_key, num_k_exclude_rope=num_obj_ptr_tokens)
        return self.norm(out)
