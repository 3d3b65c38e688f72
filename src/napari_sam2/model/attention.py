"""Multi-head attention blocks of the mask decoder and the memory attention.

:class:`Attention` projects queries, keys and values (optionally to a narrower internal width,
``embedding_dim // downsample_rate``) and attends with
:func:`torch.nn.functional.scaled_dot_product_attention`. :class:`RoPEAttention` adds 2-D axial
rotary position encoding to queries and keys (SAM 2's memory attention).
Parameter names (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``) match Meta's checkpoints.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import dropout_p, sdpa

__all__ = ["Attention", "RoPEAttention", "axial_rope_angles", "apply_rope"]


class Attention(nn.Module):
    """Multi-head attention with an optional down-projected internal width.

    Args:
        embedding_dim: width of the queries (and of the output).
        num_heads: number of heads; must divide the internal width.
        downsample_rate: internal width is ``embedding_dim // downsample_rate``.
        dropout: attention dropout while training.
        kv_in_dim: width of the keys/values (defaults to ``embedding_dim``).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
    ) -> None:
        super().__init__()
        kv_in_dim = embedding_dim if kv_in_dim is None else kv_in_dim
        self.internal_dim = embedding_dim // downsample_rate
        if self.internal_dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide the width {self.internal_dim}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)  # (B, h, N, c)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, h, n, c = x.shape
        return x.transpose(1, 2).reshape(b, n, h * c)  # (B, N, h*c)

    def project(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project (B, Nq, C), (B, Nk, Ckv), (B, Nk, Ckv) into per-head (B, h, N, c) tensors."""
        return self._split(self.q_proj(q)), self._split(self.k_proj(k)), self._split(self.v_proj(v))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attend queries (B, Nq, C) to keys/values (B, Nk, Ckv); returns (B, Nq, C)."""
        q, k, v = self.project(q, k, v)
        out = sdpa(q, k, v, dropout_p(self, self.dropout))
        return self.out_proj(self._merge(out))


def axial_rope_angles(head_dim: int, side_x: int, side_y: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles of 2-D axial RoPE for a (side_y, side_x) token grid (row-major).

    The first half of each head's channel pairs rotates with the x coordinate, the second half
    with the y coordinate.

    Returns:
        (side_y * side_x, head_dim // 2) float32 angles in radians.
    """
    quarter = head_dim // 4
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 4)[:quarter].float() / head_dim))
    index = torch.arange(side_x * side_y, dtype=torch.float32)
    xs = index % side_x
    ys = torch.div(index, side_x, rounding_mode="floor")
    return torch.cat([torch.outer(xs, freqs), torch.outer(ys, freqs)], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs of ``x`` (..., N, c) by angles given as cos/sin (N, c/2).

    When ``x`` has a multiple of N tokens (several memory frames), the angles repeat.
    """
    n = x.shape[-2]
    reps = n // cos.shape[0]
    if reps > 1:
        cos = cos.repeat(reps, 1)
        sin = sin.repeat(reps, 1)
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
    return rotated.flatten(-2).type_as(x)


class RoPEAttention(Attention):
    """Attention with 2-D axial rotary position encoding on queries and keys.

    Args:
        rope_theta: RoPE frequency base.
        rope_k_repeat: allow keys to span several frames of the query grid (cross-attention to
            memories); the angles are repeated per frame.
        feat_sizes: (x, y) sides of the query grid the angle cache is first built for.
        Other args as in :class:`Attention`.
    """

    def __init__(
        self,
        *args,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
        feat_sizes: tuple[int, int] = (64, 64),
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        self._head_dim = self.internal_dim // self.num_heads
        self._angle_cache: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._angles_for(feat_sizes[0] * feat_sizes[1], torch.device("cpu"))

    def _angles_for(self, n_tokens: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (n_tokens, str(device))
        if key not in self._angle_cache:
            side = int(math.isqrt(n_tokens))
            if side * side != n_tokens:
                raise ValueError(f"RoPE needs a square token grid, got {n_tokens} tokens")
            angles = axial_rope_angles(self._head_dim, side, side, self.rope_theta).to(device)
            self._angle_cache[key] = (angles.cos(), angles.sin())
        return self._angle_cache[key]

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_k_exclude_rope: int = 0
    ) -> torch.Tensor:
        """Attend (B, Nq, C) queries to (B, Nk, Ckv) keys; the last ``num_k_exclude_rope`` keys
        (object pointers) get no rotation."""
        q, k, v = self.project(q, k, v)
        cos, sin = self._angles_for(q.shape[-2], q.device)
        n_rope = k.shape[-2] - num_k_exclude_rope
        if n_rope != q.shape[-2] and not self.rope_k_repeat:
            raise ValueError("keys and queries differ in length; set rope_k_repeat=True")
        q = apply_rope(q, cos, sin)
        if num_k_exclude_rope:
            k = torch.cat([apply_rope(k[:, :, :n_rope], cos, sin), k[:, :, n_rope:]], dim=2)
        else:
            k = apply_rope(k, cos, sin)
        out = sdpa(q, k, v, dropout_p(self, self.dropout))
        return self.out_proj(self._merge(out))
