"""SAM 2's training losses for one prediction step: focal + dice on the best of the candidate
masks, L1 on the IoU head, BCE on object presence (optionally a size-balanced BCE as well).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .train_config import TrainConfig

__all__ = ["loss_terms"]


def loss_terms(
    logits: torch.Tensor,
    ious: torch.Tensor,
    obj_logits: torch.Tensor,
    target: torch.Tensor,
    tcfg: TrainConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SAM 2's losses for one prediction step.

    Args:
        logits: (B, M, h, w) candidate mask logits (any resolution; targets are resized).
        ious: (B, M) predicted IoU.
        obj_logits: (B, 1) object presence logit.
        target: (B, S, S) binary target.

    Returns:
        (total loss, dict of float components).
    """
    b, m = logits.shape[:2]
    up = F.interpolate(logits.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
    t = target[:, None].expand_as(up)
    prob = up.sigmoid()
    # focal loss (alpha 0.25, gamma 2) per candidate, mean over pixels
    ce = F.binary_cross_entropy_with_logits(up, t, reduction="none")
    p_t = prob * t + (1 - prob) * (1 - t)
    alpha = tcfg.focal_alpha
    focal = (ce * (1 - p_t) ** 2 * (alpha * t + (1 - alpha) * (1 - t))).flatten(2).mean(-1)
    inter = (prob * t).flatten(2).sum(-1)
    dice = 1 - (2 * inter + 1) / (prob.flatten(2).sum(-1) + t.flatten(2).sum(-1) + 1)  # (B, M)
    with torch.no_grad():
        hard = (up > 0).float()
        i = (hard * t).flatten(2).sum(-1)
        u = ((hard + t) > 0).float().flatten(2).sum(-1)
        actual_iou = torch.where(u > 0, i / u.clamp(min=1), torch.ones_like(u))
    present = (target.flatten(1).sum(-1) > 0).float()  # (B,)
    per_cand = tcfg.focal_weight * focal + tcfg.dice_weight * dice
    if tcfg.balanced_bce_weight:
        n_pos = t.flatten(2).sum(-1).clamp(min=1)
        n_neg = (1 - t).flatten(2).sum(-1).clamp(min=1)
        pos = (ce * t).flatten(2).sum(-1) / n_pos
        neg = (ce * (1 - t)).flatten(2).sum(-1) / n_neg
        per_cand = per_cand + tcfg.balanced_bce_weight * 0.5 * (pos + neg)
    best = per_cand.argmin(dim=1)  # only the best candidate gets mask gradients
    rows = torch.arange(b, device=logits.device)
    mask_loss = (per_cand[rows, best] * present).sum() / present.sum().clamp(min=1)
    iou_loss = (F.l1_loss(ious.float(), actual_iou, reduction="none").mean(-1) * present).sum()
    iou_loss = iou_loss / present.sum().clamp(min=1)
    score_loss = F.binary_cross_entropy_with_logits(obj_logits.float()[:, 0], present)
    total = mask_loss + tcfg.iou_weight * iou_loss + tcfg.score_weight * score_loss
    with torch.no_grad():
        iou_best = actual_iou[rows, ious.argmax(1)]
        mean_iou = float((iou_best * present).sum() / present.sum().clamp(min=1))
    return total, {
        "mask": mask_loss.item(),
        "iou_head": iou_loss.item(),
        "score": score_loss.item(),
        "iou": mean_iou,
    }
