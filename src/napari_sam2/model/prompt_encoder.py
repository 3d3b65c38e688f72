"""Prompt encoder: turns clicks, boxes and low-resolution mask logits into decoder inputs.

Sparse prompts (points and box corners) become one token each: a random-Fourier encoding of the
position plus a learned embedding of the prompt kind. A dense mask prompt is downscaled by a
small conv stack to the image-embedding grid; without one, a learned "no mask" vector is tiled.
Parameter names match Meta's checkpoints (``sam_prompt_encoder.*``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import LayerNorm2d
from .config import SAM2Config

__all__ = ["FourierPositionEncoding", "PromptEncoder"]

# Point labels understood by the prompt encoder.
LABEL_PAD = -1
LABEL_NEG = 0
LABEL_POS = 1
LABEL_BOX_TOP_LEFT = 2
LABEL_BOX_BOTTOM_RIGHT = 3


class FourierPositionEncoding(nn.Module):
    """Position encoding with fixed random spatial frequencies.

    A position ``p`` in [0, 1]^2 (x, y) is mapped to ``[sin(f), cos(f)]`` with
    ``f = 2 pi (2 p - 1) @ G`` and ``G`` a (2, num_feats) Gaussian matrix, giving
    ``2 * num_feats`` channels.

    Args:
        num_feats: number of frequencies (half the output width).
        scale: standard deviation of the frequencies.
    """

    def __init__(self, num_feats: int, scale: float = 1.0) -> None:
        super().__init__()
        gauss = scale * torch.randn(2, num_feats)
        self.register_buffer("positional_encoding_gaussian_matrix", gauss)

    def encode_unit(self, coords: torch.Tensor) -> torch.Tensor:
        """Encode (..., 2) (x, y) coordinates normalised to [0, 1]; returns (..., 2 * num_feats).

        Computed in float32 whatever the buffer's dtype.
        """
        gauss = self.positional_encoding_gaussian_matrix.float()
        angles = (2 * math.pi) * ((2 * coords.float() - 1) @ gauss)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    def encode_pixels(self, coords: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        """Encode (B, N, 2) (x, y) pixel coordinates of an image of size ``image_hw`` = (H, W)."""
        h, w = image_hw
        size = torch.tensor([w, h], dtype=torch.float32, device=coords.device)
        return self.encode_unit(coords.float() / size)

    def grid(self, hw: tuple[int, int]) -> torch.Tensor:
        """Encoding of the centres of an (H, W) grid of cells; returns (C, H, W) float32."""
        h, w = hw
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        xy = torch.stack(
            [xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1
        )  # (H, W, 2) as (x, y)
        return self.encode_unit(xy).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    """Encode point, box and mask prompts for the mask decoder.

    Args:
        cfg: model configuration; uses ``d_model``, ``image_size``, ``feat_size`` and
            ``decoder.mask_in_chans``.

    Attributes:
        embed_dim: token width ``d``.
        input_image_size: (H, W) of the model input in pixels.
        image_embedding_size: (h, w) of the image-embedding grid.
        mask_input_size: (4h, 4w) expected size of mask prompts.
    """

    num_point_embeddings = 4  # negative, positive, box top-left, box bottom-right

    def __init__(self, cfg: SAM2Config) -> None:
        super().__init__()
        d = cfg.d_model
        fs = cfg.feat_size
        c = cfg.decoder.mask_in_chans
        self.embed_dim = d
        self.input_image_size = (cfg.image_size, cfg.image_size)
        self.image_embedding_size = (fs, fs)
        self.mask_input_size = (4 * fs, 4 * fs)

        self.pe_layer = FourierPositionEncoding(d // 2)
        self.point_embeddings = nn.ModuleList(
            nn.Embedding(1, d) for _ in range(self.num_point_embeddings)
        )
        self.not_a_point_embed = nn.Embedding(1, d)
        # Two stride-2 convs take the (4h, 4w) mask logits to the (h, w) grid.
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, c // 4, kernel_size=2, stride=2),
            LayerNorm2d(c // 4),
            nn.GELU(),
            nn.Conv2d(c // 4, c, kernel_size=2, stride=2),
            LayerNorm2d(c),
            nn.GELU(),
            nn.Conv2d(c, d, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, d)
        self._dense_pe_key: tuple | None = None
        self._dense_pe: torch.Tensor | None = None

    def get_dense_pe(self) -> torch.Tensor:
        """Position encoding of every cell of the image-embedding grid.

        Cached; the cache is rebuilt when the frequency buffer is replaced or modified in place
        (e.g. by ``load_state_dict``), moved, cast, or when the inference-mode state changes.

        Returns:
            (1, d, h, w) tensor in the dtype of the frequency buffer.
        """
        gauss = self.positional_encoding_gaussian_matrix
        try:
            version = gauss._version
        except RuntimeError:  # inference tensors carry no version counter
            version = None
        key = (
            gauss.data_ptr(),
            version,
            gauss.device,
            gauss.dtype,
            torch.is_inference_mode_enabled(),
        )
        if version is None or self._dense_pe is None or key != self._dense_pe_key:
            pe = self.pe_layer.grid(self.image_embedding_size).unsqueeze(0).to(gauss.dtype)
            self._dense_pe, self._dense_pe_key = pe, key
        return self._dense_pe

    @property
    def positional_encoding_gaussian_matrix(self) -> torch.Tensor:
        """The (2, d/2) random frequency matrix of the position encoding."""
        return self.pe_layer.positional_encoding_gaussian_matrix

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """Tokens for (B, N, 2) pixel (x, y) points with (B, N) labels -> (B, N (+1), d)."""
        coords = coords + 0.5  # pixel index -> pixel centre
        if pad:
            # A trailing not-a-point token stands in for the missing box corners.
            b = coords.shape[0]
            coords = torch.cat([coords, coords.new_zeros(b, 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((b, 1), LABEL_PAD)], dim=1)
        pe = self.pe_layer.encode_pixels(coords, self.input_image_size)
        pe = pe.to(self.not_a_point_embed.weight.dtype)
        lab = labels[..., None]  # (B, N, 1)
        tokens = torch.where(lab == LABEL_PAD, self.not_a_point_embed.weight.expand_as(pe), pe)
        for kind, emb in enumerate(self.point_embeddings):
            tokens = torch.where(lab == kind, tokens + emb.weight, tokens)
        return tokens

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """Tokens for (B, 4) xyxy pixel boxes -> (B, 2, d) (one per corner)."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)  # (B, 2 corners, xy)
        pe = self.pe_layer.encode_pixels(corners, self.input_image_size)
        pe = pe.to(self.not_a_point_embed.weight.dtype)
        corner_emb = torch.cat(
            [self.point_embeddings[LABEL_BOX_TOP_LEFT].weight,
             self.point_embeddings[LABEL_BOX_BOTTOM_RIGHT].weight],
            dim=0,
        )  # (2, d)
        return pe + corner_emb

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed prompts.

        Args:
            points: ``(coords, labels)``: coords (B, N, 2) float (x, y) in model-input pixels;
                labels (B, N) int: 1 positive, 0 negative, -1 padding, 2/3 box corners.
                When ``boxes`` is None a padding token is appended.
            boxes: (B, 4) float xyxy boxes in model-input pixels.
            masks: (B, 1, 4h, 4w) mask logits.

        Returns:
            sparse: (B, N', d) point/box tokens (N' may be 0).
            dense: (B, d, h, w) mask embedding (or the tiled no-mask embedding).
            B is taken from points, else boxes, else masks, else 1.
        """
        if points is not None:
            bs = points[0].shape[0]
        elif boxes is not None:
            bs = boxes.shape[0]
        elif masks is not None:
            bs = masks.shape[0]
        else:
            bs = 1
        weight = self.no_mask_embed.weight
        parts = [weight.new_empty(bs, 0, self.embed_dim)]
        if points is not None:
            parts.append(self._embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            parts.append(self._embed_boxes(boxes))
        sparse = torch.cat(parts, dim=1)

        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            h, w = self.image_embedding_size
            dense = weight.reshape(1, -1, 1, 1).expand(bs, -1, h, w)
        return sparse, dense
