"""Mask post-processing in plain torch/scipy (no compiled extension)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

__all__ = ["fill_small_holes", "non_overlapping"]

_EIGHT = np.ones((3, 3), dtype=bool)


def fill_small_holes(mask_logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """Fill background components of at most ``max_area`` pixels inside mask logits.

    Same rule as SAM 2's post-processing: every 8-connected component of ``logits <= 0`` with
    area <= ``max_area`` is set to a small positive logit (0.1).

    Args:
        mask_logits: (B, 1, H, W) float logits.
        max_area: largest hole to fill, in pixels of ``mask_logits``; 0 returns the input.

    Returns:
        (B, 1, H, W) logits (a new tensor when anything changed).
    """
    if max_area <= 0:
        return mask_logits
    background = (mask_logits <= 0).cpu().numpy()
    fill = np.zeros_like(background)
    for b in range(background.shape[0]):
        bg = background[b, 0]
        if bg.all() or not bg.any():
            continue
        labels, n = ndimage.label(bg, structure=_EIGHT)
        if n == 0:
            continue
        areas = np.bincount(labels.ravel())
        small = areas <= max_area
        small[0] = False
        fill[b, 0] = small[labels]
    if not fill.any():
        return mask_logits
    hole = torch.from_numpy(fill).to(mask_logits.device)
    return torch.where(hole, torch.full_like(mask_logits, 0.1), mask_logits)


def non_overlapping(mask_logits: torch.Tensor) -> torch.Tensor:
    """Keep, at each pixel, only the highest-scoring object positive.

    Args:
        mask_logits: (N, 1, H, W) logits of N objects on one frame.

    Returns:
        (N, 1, H, W) logits where losers are clamped to at most -10.
    """
    if mask_logits.shape[0] <= 1:
        return mask_logits
    winner = mask_logits.argmax(dim=0, keepdim=True)
    idx = torch.arange(mask_logits.shape[0], device=mask_logits.device)[:, None, None, None]
    return torch.where(winner == idx, mask_logits, mask_logits.clamp(max=-10.0))
