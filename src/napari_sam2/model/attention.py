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

__all__ = ["Attention", "RoPEAttention", "apply_rope", "axial_rope_angles", "rope_phasors"]


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


def axial_rope_angles(
    head_dim: int,
    side_x: int,
    side_y: int,
    theta: float = 10000.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Rotation angles of 2-D axial RoPE for a (side_y, side_x) token grid (row-major).

    The first half of each head's channel pairs rotates with the x coordinate (column index),
    the second half with the y coordinate (row index); both halves share the frequencies
    ``theta ** (-4 i / head_dim)``.

    Returns:
        (side_y * side_x, head_dim // 2) float32 angles in radians.
    """
    quarter = head_dim // 4
    exponents = torch.arange(0, head_dim, 4, device=device)[:quarter].float() / head_dim
    freqs = 1.0 / (theta**exponents)
    index = torch.arange(side_x * side_y, dtype=torch.float32, device=device)
    xs = index % side_x
    ys = torch.div(index, side_x, rounding_mode="floor")
    return torch.cat([torch.outer(xs, freqs), torch.outer(ys, freqs)], dim=-1)


def rope_phasors(angles: torch.Tensor) -> torch.Tensor:
    """Unit complex numbers ``exp(i * angles)`` (complex64), the form :func:`apply_rope` takes."""
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: torch.Tensor, phasors: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs of ``x`` by per-token angles.

    Channel pair ``(2j, 2j + 1)`` of token ``n`` is read as a complex number and multiplied by
    ``phasors[n, j]``. The rotation is done in float32 and cast back to ``x.dtype``.

    Args:
        x: (..., N, c) tokens; N may be a multiple ``r * P`` of the table length P (keys spanning
            ``r`` memory frames), in which case the table is reused for every frame without being
            copied.
        phasors: (P, c/2) complex64 unit phasors (see :func:`rope_phasors`).

    Returns:
        Tensor shaped and typed like ``x``.
    """
    n, c = x.shape[-2:]
    p = phasors.shape[0]
    if n == 0:
        return x
    if n % p:
        raise ValueError(f"{n} tokens are not a whole number of {p}-token RoPE grids")
    # (..., N, c) -> (..., r, P, c/2) complex view of the channel pairs
    xc = torch.view_as_complex(x.float().unflatten(-2, (n // p, p)).unflatten(-1, (c // 2, 2)))
    return torch.view_as_real(xc * phasors).reshape(x.shape).type_as(x)


class RoPEAttention(Attention):
    """Attention with 2-D axial rotary position encoding on queries and keys.

    The queries must form a square grid of tokens (row-major); keys are rotated with the same
    grid angles, repeated per frame when they span several frames (``rope_k_repeat``).

    Args:
        rope_theta: RoPE frequency base.
        rope_k_repeat: allow keys to span several frames of the query grid (cross-attention to
            memories); the angles are repeated per frame.
        feat_sizes: (x, y) sides of the query grid at the model's native resolution (kept for
            reference; angle tables are built lazily for whatever grid arrives).
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
        self.feat_sizes = tuple(feat_sizes)
        self._head_dim = self.internal_dim // self.num_heads
        if self._head_dim % 4:
            raise ValueError(f"2-D RoPE needs a head width divisible by 4, got {self._head_dim}")
        # Built lazily (not in __init__), so construction under torch.device("meta") cannot leave
        # meta tensors in the cache. Not a buffer: official checkpoints do not contain it.
        self._phasor_cache: dict[tuple[int, str], torch.Tensor] = {}

    def phasors_for(self, n_tokens: int, device: torch.device) -> torch.Tensor:
        """The (n_tokens, head_dim/2) complex64 RoPE table of a square grid, cached per device."""
        side = math.isqrt(n_tokens)
        if side * side != n_tokens:
            raise ValueError(f"RoPE needs a square token grid, got {n_tokens} tokens")

        def build() -> torch.Tensor:
            angles = axial_rope_angles(self._head_dim, side, side, self.rope_theta, device=device)
            return rope_phasors(angles)

        if torch.compiler.is_compiling():
            # inside a compiled graph the table is a constant of the graph; reading a cache
            # that another thread may fill would make the graph's guards race
            return build()
        key = (n_tokens, str(device))
        table = self._phasor_cache.get(key)
        if table is None:
            # A plain (non-inference) tensor, so a table first built under inference_mode also
            # serves later autograd-enabled calls.
            with torch.inference_mode(False), torch.no_grad():
                table = build()
            self._phasor_cache[key] = table
        return table

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_k_exclude_rope: int = 0
    ) -> torch.Tensor:
        """Attend queries to keys/values with RoPE.

        Args:
            q: (B, Nq, C) queries, Nq = side**2 tokens of a row-major square grid.
            k: (B, Nk, Ckv) keys; the first ``Nk - num_k_exclude_rope`` form ``r >= 1`` whole
                grids (``r > 1`` only with ``rope_k_repeat``).
            v: (B, Nk, Ckv) values.
            num_k_exclude_rope: trailing keys (object pointers) left unrotated.

        Returns:
            (B, Nq, C).
        """
        q, k, v = self.project(q, k, v)
        table = self.phasors_for(q.shape[-2], q.device)
        n_rope = k.shape[-2] - num_k_exclude_rope
        if n_rope != q.shape[-2] and not self.rope_k_repeat:
            raise ValueError("keys and queries differ in length; set rope_k_repeat=True")
        q = apply_rope(q, table)
        if num_k_exclude_rope:
            k = torch.cat([apply_rope(k[:, :, :n_rope], table), k[:, :, n_rope:]], dim=2)
        else:
            k = apply_rope(k, table)
        out = sdpa(q, k, v, dropout_p(self, self.dropout))
        return self.out_proj(self._merge(out))
