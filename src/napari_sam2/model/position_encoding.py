"""Fixed 2-D sine/cosine position encoding of feature maps (DETR style, normalised coordinates).

The encoding of an (H, W) grid depends only on H, W and the width, so it is computed once per
(H, W, device, dtype) and then served from a cache: a video runs the image encoder on every
frame, and rebuilding the 256 x 256 x 256 table of the finest level each time would cost more
than it is worth.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SinePositionEncoding2d"]


class SinePositionEncoding2d(nn.Module):
    """Normalised 2-D sine position encoding of a feature map.

    Row ``i`` and column ``j`` of an (H, W) grid are mapped to ``y = 2 pi (i + 1) / H`` and
    ``x = 2 pi (j + 1) / W``. The first half of the channels encodes ``y``, the second half ``x``;
    within each half, channel ``k`` holds ``sin`` (even ``k``) or ``cos`` (odd ``k``) of the
    coordinate divided by ``temperature ** (2 * (k // 2) / half)``. Layout and values match Meta's
    ``PositionEmbeddingSine(normalize=True)``; the module has no parameters.

    Args:
        num_pos_feats: output channels C (even).
        temperature: frequency base.
    """

    def __init__(self, num_pos_feats: int, temperature: float = 10000.0) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self._cache: dict[tuple, torch.Tensor] = {}

    def _axis(self, n: int, device: torch.device) -> torch.Tensor:
        """Encoding of the n positions of one axis: (n, C / 2) float32."""
        half = self.num_pos_feats // 2
        eps = 1e-6
        pos = torch.arange(1, n + 1, dtype=torch.float32, device=device)
        pos = pos / (pos[-1:] + eps) * (2 * math.pi)
        k = torch.arange(half, dtype=torch.float32, device=device)
        freqs = self.temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)
        angles = pos[:, None] / freqs  # (n, half)
        out = torch.empty_like(angles)
        out[:, 0::2] = angles[:, 0::2].sin()
        out[:, 1::2] = angles[:, 1::2].cos()
        return out

    def grid(
        self,
        height: int,
        width: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """The encoding of an (H, W) grid, cached.

        Args:
            height: rows H.
            width: columns W.
            device: device of the result.
            dtype: dtype of the result (computed in float32, then cast).

        Returns:
            (C, H, W) tensor, stored channels-last (C is the fastest-varying axis in memory),
            shared between calls: treat it as read-only.
        """
        device = torch.device(device)
        if torch.compiler.is_compiling():
            return self._table(height, width, device, dtype)  # a constant of the graph
        key = (height, width, device, dtype)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        # A plain (non-inference) tensor, so the cache also serves autograd-enabled callers.
        with torch.inference_mode(False), torch.no_grad():
            table = self._table(height, width, device, dtype)
        self._cache[key] = table
        return table

    def _table(
        self, height: int, width: int, device: torch.device, dtype: torch.dtype
    ) -> torch.Tensor:
        half = self.num_pos_feats // 2
        table = torch.empty(height, width, self.num_pos_feats, device=device, dtype=dtype)
        table[:, :, :half] = self._axis(height, device)[:, None, :]  # y encoding
        table[:, :, half:] = self._axis(width, device)[None, :, :]  # x encoding
        return table.permute(2, 0, 1)  # (H, W, C) memory viewed as (C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode the grid of a feature map.

        Args:
            x: (B, *, H, W) feature map; only its shape, device and dtype are used.

        Returns:
            (B, C, H, W) encoding in ``x``'s dtype: an expanded (batch-stride 0) view of the
            cached table, so it must not be modified in place.
        """
        b, (h, w) = x.shape[0], x.shape[-2:]
        return self.grid(h, w, x.device, x.dtype).unsqueeze(0).expand(b, -1, -1, -1)
