"""SAM 2 mask decoder: predicts mask logits, IoU estimates and object scores from prompts.

Learned output tokens (object score, IoU, one single-mask and ``num_multimask_outputs``
multimask tokens) are concatenated with the prompt tokens and run through the two-way
transformer against the image embedding. The image features are then upsampled 4x (fusing the
two high-resolution backbone levels) and each mask token, passed through its own MLP, gives the
weights of a per-pixel dot product: one mask per token.
Parameter names match Meta's checkpoints (``sam_mask_decoder.*``).
"""

from __future__ import annotations

import torch
from torch import nn

from .common import MLP, LayerNorm2d
from .config import SAM2Config
from .transformer import TwoWayTransformer

__all__ = ["MaskDecoder", "stability_scores"]


def stability_scores(mask_logits: torch.Tensor, delta: float) -> torch.Tensor:
    """IoU between a mask thresholded at ``+delta`` and at ``-delta`` (1 for empty masks).

    Args:
        mask_logits: (..., H, W) logits.
        delta: logit offset of the two thresholds.

    Returns:
        (...) float32 scores in [0, 1].
    """
    flat = mask_logits.flatten(-2)
    inner = (flat > delta).sum(-1).float()
    outer = (flat > -delta).sum(-1).float()
    return torch.where(outer > 0, inner / outer.clamp(min=1), torch.ones_like(outer))


class MaskDecoder(nn.Module):
    """Two-way-transformer mask decoder with IoU and object-score heads.

    Args:
        cfg: model configuration; uses ``d_model`` and ``decoder`` (:class:`MaskDecoderConfig`).

    Attributes:
        num_mask_tokens: ``num_multimask_outputs + 1`` (token 0 is the single-mask token).
        use_multimask_token_for_obj_ptr: with multimask output, return the multimask tokens
            (else always the single-mask token) as ``sam_tokens`` (True for all SAM 2 models).
        dynamic_multimask_via_stability: for single-mask output at inference, replace an
            unstable single mask by the multimask output with the highest predicted IoU.
    """

    def __init__(self, cfg: SAM2Config) -> None:
        super().__init__()
        dec = cfg.decoder
        d = cfg.d_model
        self.transformer_dim = d
        self.num_multimask_outputs = dec.num_multimask_outputs
        self.num_mask_tokens = dec.num_multimask_outputs + 1
        self.use_multimask_token_for_obj_ptr = True
        self.dynamic_multimask_via_stability = dec.dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dec.dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dec.dynamic_multimask_stability_thresh

        self.transformer = TwoWayTransformer(
            depth=dec.transformer_depth,
            embedding_dim=d,
            num_heads=dec.transformer_num_heads,
            mlp_dim=dec.transformer_mlp_dim,
            attention_downsample_rate=dec.attention_downsample_rate,
        )
        self.iou_token = nn.Embedding(1, d)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, d)
        self.obj_score_token = nn.Embedding(1, d)

        # (B, d, h, w) -> (B, d/4, 2h, 2w) -> (B, d/8, 4h, 4w); the high-res skips are added
        # before the LayerNorm / activations (see _upscale).
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(d, d // 4, kernel_size=2, stride=2),
            LayerNorm2d(d // 4),
            nn.GELU(),
            nn.ConvTranspose2d(d // 4, d // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        # Projections of the stride-4 / stride-8 backbone features; applied by the caller (the
        # image encoder output is projected once per frame), not inside forward().
        self.conv_s0 = nn.Conv2d(d, d // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(d, d // 4, kernel_size=1)

        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(d, d, d // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            d, dec.iou_head_hidden_dim, self.num_mask_tokens, dec.iou_head_depth,
            sigmoid_output=True,
        )
        self.pred_obj_score_head = MLP(d, d, 1, 3)

    def _upscale(self, src: torch.Tensor, high_res_features: list[torch.Tensor]) -> torch.Tensor:
        """(B, d, h, w) -> (B, d/8, 4h, 4w), adding the projected high-resolution features."""
        deconv1, norm1, act1, deconv2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res_features
        x = act1(norm1(deconv1(src) + feat_s1))
        return act2(deconv2(x) + feat_s0)

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        high_res_features: list[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Outputs of all mask tokens (no selection); arguments as in :meth:`forward`.

        Returns:
            masks: (B, T, 4h, 4w) logits, T = ``num_mask_tokens``.
            iou: (B, T) predicted IoU in [0, 1].
            mask_tokens_out: (B, T, d) transformer outputs of the mask tokens.
            object_score_logits: (B, 1).
        """
        b = sparse_prompt_embeddings.shape[0]
        if image_embeddings.shape[0] != b:
            raise ValueError(
                f"image batch {image_embeddings.shape[0]} != prompt batch {b}; "
                "batch the image embeddings to match the prompts"
            )
        output_tokens = torch.cat(
            [self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight], dim=0
        )  # (2 + T, d)
        tokens = torch.cat(
            [output_tokens.unsqueeze(0).expand(b, -1, -1), sparse_prompt_embeddings], dim=1
        )
        src = image_embeddings + dense_prompt_embeddings
        _, c, h, w = src.shape

        hs, src = self.transformer(src, image_pe, tokens)
        obj_token_out = hs[:, 0]
        iou_token_out = hs[:, 1]
        mask_tokens_out = hs[:, 2 : 2 + self.num_mask_tokens]

        src = src.transpose(1, 2).reshape(b, c, h, w)  # (B, h*w, d) -> (B, d, h, w)
        upscaled = self._upscale(src, high_res_features)
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
            dim=1,
        )  # (B, T, d/8)
        _, cu, hu, wu = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, cu, hu * wu)).reshape(b, -1, hu, wu)

        iou = self.iou_prediction_head(iou_token_out)
        object_score_logits = self.pred_obj_score_head(obj_token_out)
        return masks, iou, mask_tokens_out, object_score_logits

    def select_stable_single_mask(
        self, masks: torch.Tensor, iou: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-mask output with fallback to the best multimask output when unstable.

        Args:
            masks: (B, T, H, W) logits of all tokens (token 0 = single mask).
            iou: (B, T) predicted IoUs.

        Returns:
            (B, 1, H, W) logits and (B, 1) IoU: token 0's when its stability score reaches
            ``dynamic_multimask_stability_thresh``, else the multimask token with the highest
            predicted IoU.
        """
        batch = torch.arange(masks.shape[0], device=masks.device)
        best = iou[:, 1:].argmax(dim=-1) + 1
        best_masks = masks[batch, best].unsqueeze(1)
        best_iou = iou[batch, best].unsqueeze(1)
        single_masks = masks[:, :1]
        single_iou = iou[:, :1]
        stable = (
            stability_scores(single_masks, self.dynamic_multimask_stability_delta)
            >= self.dynamic_multimask_stability_thresh
        )  # (B, 1)
        out_masks = torch.where(stable[..., None, None], single_masks, best_masks)
        out_iou = torch.where(stable, single_iou, best_iou)
        return out_masks, out_iou

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        high_res_features: list[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predict masks for a batch of (image, prompt set) pairs.

        Args:
            image_embeddings: (B, d, h, w) image features (one per prompt set).
            image_pe: (1, d, h, w) grid position encoding (``PromptEncoder.get_dense_pe()``).
            sparse_prompt_embeddings: (B, N, d) point/box tokens.
            dense_prompt_embeddings: (B, d, h, w) mask-prompt embedding.
            multimask_output: return the 3 multimask outputs instead of a single mask.
            high_res_features: ``[feat_s0 (B, d/8, 4h, 4w), feat_s1 (B, d/4, 2h, 2w)]``, the
                stride-4 and stride-8 backbone features already projected by ``conv_s0`` /
                ``conv_s1``.

        Returns:
            masks: (B, M, 4h, 4w) mask logits, M = 3 with multimask output else 1.
            iou: (B, M) predicted IoU in [0, 1].
            sam_tokens: (B, M, d) mask-token outputs for the object pointer (the multimask
                tokens with multimask output, else the single-mask token).
            object_score_logits: (B, 1) logit that the object is present.
        """
        masks, iou, mask_tokens_out, object_score_logits = self.predict_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            high_res_features,
        )
        if multimask_output:
            masks, iou = masks[:, 1:], iou[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, iou = self.select_stable_single_mask(masks, iou)
        else:
            masks, iou = masks[:, :1], iou[:, :1]

        if multimask_output and self.use_multimask_token_for_obj_ptr:
            sam_tokens = mask_tokens_out[:, 1:]
        else:
            sam_tokens = mask_tokens_out[:, :1]
        return masks, iou, sam_tokens, object_score_logits
