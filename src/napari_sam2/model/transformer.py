"""Two-way transformer of the SAM mask decoder.

Prompt tokens (queries) and image tokens (keys) update each other: every block runs token
self-attention, token-to-image cross-attention, a token MLP and image-to-token cross-attention,
each followed by a residual add and LayerNorm. Position encodings are added to queries and keys
before every attention (but not to the values). Parameter names match Meta's checkpoints
(``sam_mask_decoder.transformer.*``).
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import Attention
from .common import MLP

__all__ = ["TwoWayAttentionBlock", "TwoWayTransformer"]


class TwoWayAttentionBlock(nn.Module):
    """One block of the two-way transformer.

    Args:
        embedding_dim: token width ``d``.
        num_heads: attention heads.
        mlp_dim: hidden width of the token MLP.
        attention_downsample_rate: internal width divisor of the two cross-attentions.
        skip_first_layer_pe: first block only: the token self-attention sees no position
            encoding and has no residual connection (its output replaces the tokens).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        d = embedding_dim
        self.self_attn = Attention(d, num_heads)
        self.norm1 = nn.LayerNorm(d)
        self.cross_attn_token_to_image = Attention(
            d, num_heads, downsample_rate=attention_downsample_rate
        )
        self.norm2 = nn.LayerNorm(d)
        self.mlp = MLP(d, mlp_dim, d, num_layers=2, activation=nn.ReLU)
        self.norm3 = nn.LayerNorm(d)
        self.norm4 = nn.LayerNorm(d)
        self.cross_attn_image_to_token = Attention(
            d, num_heads, downsample_rate=attention_downsample_rate
        )
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Update tokens and image features.

        Args:
            queries: (B, Nq, d) prompt/output tokens.
            keys: (B, Nk, d) flattened image tokens.
            query_pe: (B, Nq, d) added to the queries before attention.
            key_pe: (B or 1, Nk, d) added to the image tokens before attention.

        Returns:
            Updated ``(queries, keys)`` with unchanged shapes.
        """
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        q = queries + query_pe
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))

        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        k = keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """Stack of :class:`TwoWayAttentionBlock` plus a final token-to-image attention.

    Args:
        depth: number of blocks.
        embedding_dim: token width ``d``.
        num_heads: attention heads.
        mlp_dim: hidden width of the token MLPs.
        attention_downsample_rate: internal width divisor of the cross-attentions.
    """

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim,
                num_heads,
                mlp_dim,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=i == 0,
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self,
        image_embedding: torch.Tensor,
        image_pe: torch.Tensor,
        point_embedding: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the transformer.

        Args:
            image_embedding: (B, d, h, w) image features (prompt-conditioned).
            image_pe: (B or 1, d, h, w) position encoding of the image grid.
            point_embedding: (B, N, d) tokens; also used as their own position encoding.

        Returns:
            tokens: (B, N, d) updated tokens.
            image_tokens: (B, h * w, d) updated image features, row-major over (h, w).
        """
        keys = image_embedding.flatten(2).transpose(1, 2)  # (B, d, h, w) -> (B, h*w, d)
        key_pe = image_pe.flatten(2).transpose(1, 2)  # (B or 1, h*w, d)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        q = queries + point_embedding
        k = keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys
