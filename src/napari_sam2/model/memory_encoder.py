"""Memory encoder: fuses a frame's features with its predicted mask into a memory.

The mask (already squashed by the caller: sigmoid, or a binarised click mask, then scaled and
shifted) is downsampled by strided convolutions to the feature-map grid, added to a 1x1
projection of the frame's lowest-resolution features, refined by ConvNeXt-style blocks
(the "fuser") and projected to the narrow memory width. The memory's position encoding is the
normalised 2-D sine encoding of its grid. Parameter names match Meta's checkpoints
(``memory_encoder.*``).
"""

from __future__ import annotations

import torch
from torch import nn

from .common import LayerNorm2d
from .config import SAM2Config
from .position_encoding import SinePositionEncoding2d

__all__ = ["CXBlock", "Fuser", "MaskDownSampler", "MemoryEncoder"]


class MaskDownSampler(nn.Module):
    """Strided convolutions taking a (B, 1, S, S) mask to a (B, out_dim, S/T, S/T) map.

    Each stage is conv (stride ``stride``, channels x ``stride**2``) -> LayerNorm2d -> GELU,
    repeated until the total stride ``total_stride`` is reached; a 1x1 conv gives ``out_dim``.

    Args:
        out_dim: output channels.
        kernel_size: kernel side of the strided convolutions.
        stride: stride of each stage.
        padding: padding of the strided convolutions.
        total_stride: overall downsampling factor (a power of ``stride``).
    """

    def __init__(
        self, out_dim: int, kernel_size: int, stride: int, padding: int, total_stride: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        chans, reached = 1, 1
        while reached < total_stride:
            nxt = chans * stride**2
            layers += [
                nn.Conv2d(chans, nxt, kernel_size, stride=stride, padding=padding),
                LayerNorm2d(nxt),
                nn.GELU(),
            ]
            chans, reached = nxt, reached * stride
        if reached != total_stride:
            raise ValueError(f"total stride {total_stride} is not a power of stride {stride}")
        layers.append(nn.Conv2d(chans, out_dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) -> (B, out_dim, S / total_stride, S / total_stride)."""
        return self.encoder(masks)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise conv -> LayerNorm2d -> MLP (x4, GELU) -> layer scale, residual.

    Args:
        dim: channels.
        kernel_size: depthwise kernel side.
        padding: depthwise padding.
        layer_scale_init_value: initial value of the per-channel scale ``gamma`` (no scale if 0).
    """

    def __init__(
        self, dim: int, kernel_size: int, padding: int, layer_scale_init_value: float
    ) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=padding, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = (
            nn.Parameter(torch.full((dim,), layer_scale_init_value))
            if layer_scale_init_value > 0
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)  # (B, H, W, C) for the linear layers
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = y * self.gamma
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """A stack of :class:`CXBlock` (parameter names ``layers.{i}.*``)."""

    def __init__(
        self,
        dim: int,
        num_layers: int,
        kernel_size: int,
        padding: int,
        layer_scale_init_value: float,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            CXBlock(dim, kernel_size, padding, layer_scale_init_value) for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """SAM 2 memory encoder (sizes from ``cfg.memory_encoder``, ``cfg.d_model``).

    Args:
        cfg: model configuration.
    """

    def __init__(self, cfg: SAM2Config) -> None:
        super().__init__()
        e = cfg.memory_encoder
        d = cfg.d_model
        self.mask_downsampler = MaskDownSampler(
            d,
            kernel_size=e.downsampler_kernel_size,
            stride=e.downsampler_stride,
            padding=e.downsampler_padding,
            total_stride=cfg.backbone_stride,
        )
        self.pix_feat_proj = nn.Conv2d(d, d, kernel_size=1)
        self.fuser = Fuser(
            d,
            e.fuser_num_layers,
            kernel_size=e.fuser_kernel_size,
            padding=e.fuser_padding,
            layer_scale_init_value=e.layer_scale_init_value,
        )
        self.out_proj: nn.Module = (
            nn.Conv2d(d, e.out_dim, kernel_size=1) if e.out_dim != d else nn.Identity()
        )
        self.position_encoding = SinePositionEncoding2d(e.out_dim)

    def forward(
        self, pix_feat: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode frames and their masks into memories.

        Args:
            pix_feat: (B, d_model, h, w) lowest-resolution frame features (h = w = feat_size).
            masks: (B, 1, S, S) masks at model input resolution (S = h * backbone_stride),
                already mapped to the encoder's input range by the caller (sigmoid or
                binarisation, then ``* sigmoid_scale_for_mem_enc + sigmoid_bias_for_mem_enc``).

        Returns:
            features: (B, mem_dim, h, w) memory features.
            pos: (B, mem_dim, h, w) their sine position encoding.
        """
        x = self.pix_feat_proj(pix_feat) + self.mask_downsampler(masks.to(pix_feat.dtype))
        x = self.out_proj(self.fuser(x))
        pos = self.position_encoding(x).to(x.dtype)
        return x, pos
