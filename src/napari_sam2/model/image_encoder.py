"""SAM 2's image encoder: the Hiera trunk followed by a feature-pyramid neck.

The neck projects every trunk stage to ``d_model`` channels with a 1 x 1 convolution (applied as
a linear layer on the channels-last tokens) and, on the levels listed in ``fpn_top_down_levels``,
adds the nearest-neighbour 2x upsampling of the next coarser level. Each level gets a sine
position encoding. As in SAM 2 (``scalp=1``) the coarsest level is dropped, leaving three
levels at strides 4, 8 and 16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import SAM2Config
from .hiera import Hiera
from .position_encoding import SinePositionEncoding2d

__all__ = ["FpnNeck", "ImageEncoder"]


class _Lateral(nn.Module):
    """Holds one lateral 1 x 1 convolution under the checkpoint key ``convs.{i}.conv``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C_in) channels-last tokens -> (B, H, W, d) (the 1 x 1 conv as a matmul)."""
        w = self.conv.weight
        return F.linear(x, w.view(w.shape[0], w.shape[1]), self.conv.bias)


class FpnNeck(nn.Module):
    """Feature-pyramid neck without output convolutions.

    Args:
        d_model: output channels of every level.
        backbone_channel_list: trunk stage widths, coarsest first (``convs.{i}`` projects the
            i-th of them, so ``convs.0`` belongs to the coarsest level).
        fpn_top_down_levels: levels (0 = finest) that add the upsampled coarser level.
    """

    def __init__(
        self,
        d_model: int,
        backbone_channel_list: tuple[int, ...],
        fpn_top_down_levels: tuple[int, ...] = (2, 3),
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.backbone_channel_list = tuple(backbone_channel_list)
        self.fpn_top_down_levels = tuple(fpn_top_down_levels)
        self.convs = nn.ModuleList(_Lateral(c, d_model) for c in self.backbone_channel_list)
        self.position_encoding = SinePositionEncoding2d(d_model)

    def forward(
        self, xs: list[torch.Tensor], num_levels: int | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Fuse the trunk outputs.

        Args:
            xs: trunk outputs, finest first, (B, C_i, H_i, W_i) with H_i = 2 H_{i+1}.
            num_levels: return only the ``num_levels`` finest levels (the coarser ones are still
                computed when they feed a top-down sum); default all.

        Returns:
            ``(features, pos)``: lists, finest first, of (B, d, H_i, W_i) feature maps
            (channels-last views) and their (B, d, H_i, W_i) position encodings (expanded views
            of a cached table: do not modify in place).
        """
        n = len(xs)
        if n != len(self.convs):
            raise ValueError(f"expected {len(self.convs)} feature levels, got {n}")
        keep = n if num_levels is None else num_levels
        feats: list[torch.Tensor | None] = [None] * n
        prev: torch.Tensor | None = None  # fused features of the next coarser level, (B, h, w, d)
        for i in range(n - 1, -1, -1):
            top_down = prev is not None and i in self.fpn_top_down_levels
            if i >= keep and not (i - 1 >= 0 and (i - 1) in self.fpn_top_down_levels):
                prev = None  # neither returned nor used by the finer level
                continue
            lateral = self.convs[n - 1 - i](xs[i].permute(0, 2, 3, 1))  # (B, H, W, d)
            if top_down:
                b, h, w, d = prev.shape
                if lateral.shape[1:3] != (2 * h, 2 * w):
                    raise ValueError(f"level {i} is not twice the size of level {i + 1}")
                # nearest 2x upsampling as a broadcast: pixel (2y + dy, 2x + dx) gets prev[y, x]
                # (the lateral is a fresh linear output, so the in-place sum is autograd-safe)
                lateral.view(b, h, 2, w, 2, d).add_(prev.view(b, h, 1, w, 1, d))
            prev = lateral
            feats[i] = lateral.permute(0, 3, 1, 2)  # (B, d, H, W) channels-last view
        out = list(feats[:keep])
        pos = [self.position_encoding(f) for f in out]
        return out, pos


class ImageEncoder(nn.Module):
    """Hiera trunk + FPN neck, returning the three finest pyramid levels.

    Args:
        cfg: model configuration (uses ``hiera``, ``d_model`` and ``fpn_top_down_levels``).
    """

    def __init__(self, cfg: SAM2Config) -> None:
        super().__init__()
        self.trunk = Hiera(cfg.hiera)
        self.neck = FpnNeck(cfg.d_model, cfg.backbone_channel_list, cfg.fpn_top_down_levels)
        self.scalp = 1
        if tuple(reversed(self.trunk.channel_list)) != self.neck.backbone_channel_list:
            raise ValueError("trunk and neck channel lists differ")

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Encode a batch of images.

        Args:
            x: (B, 3, S, S) normalised images (S = ``cfg.image_size``).

        Returns:
            ``(features, pos)``, each a list of three (B, d, h, w) tensors, finest first, at
            strides 4, 8 and 16: h = S/4, S/8, S/16. Feature maps are channels-last views;
            position encodings are shared read-only views.
        """
        stages = self.trunk(x)
        return self.neck(stages, num_levels=len(stages) - self.scalp)
