"""Small layers shared by several model components (MLP, channel LayerNorm, 1-D sine encoding)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "LayerNorm2d", "sine_encoding_1d"]


class MLP(nn.Module):
    """A stack of ``num_layers`` linear layers with an activation between them.

    Parameter names (``layers.{i}.weight``) match Meta's checkpoints.

    Args:
        input_dim: channels in.
        hidden_dim: channels of every hidden layer.
        output_dim: channels out.
        num_layers: number of linear layers (>= 1).
        activation: module class applied after every layer but the last.
        sigmoid_output: apply a sigmoid to the output.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        activation: type[nn.Module] = nn.ReLU,
        sigmoid_output: bool = False,
    ) -> None:
        super().__init__()
        widths_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        widths_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths_in, widths_out))
        self.act = activation()
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP to the last dimension of ``x`` (..., input_dim) -> (..., output_dim)."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.act(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) tensor."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise (B, C, H, W) over C, then scale and shift per channel."""
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


def sine_encoding_1d(
    positions: torch.Tensor, dim: int, temperature: float = 10000.0
) -> torch.Tensor:
    """Transformer-style sine/cosine encoding of scalar positions.

    Args:
        positions: (N,) float positions (SAM 2 passes relative frame offsets scaled to [-1, 1]).
        dim: output width (even); the first half holds sines, the second cosines.
        temperature: frequency base.

    Returns:
        (N, dim) float32 encoding.
    """
    half = dim // 2
    idx = torch.arange(half, dtype=torch.float32, device=positions.device)
    freqs = temperature ** (2 * torch.div(idx, 2, rounding_mode="floor") / half)
    angles = positions.float().unsqueeze(-1) / freqs  # (N, half)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def dropout_p(module: nn.Module, p: float) -> float:
    """The dropout probability to pass to SDPA: ``p`` while training, else 0."""
    return p if module.training else 0.0


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float = 0.0) -> torch.Tensor:
    """Scaled dot-product attention on (B, heads, N, C) tensors (fused kernels where available)."""
    return F.scaled_dot_product_attention(q, k, v, dropout_p=p)
