"""Click maps: point and box prompts drawn as a logit map for SAM's mask-prompt input.

Used by :meth:`napari_sam2.model.sam2.SAM2Model.encode_prompts` when the config's
``prompt_map_sigma`` is positive (the bundled micro model; Meta's configs leave it at 0).
"""

from __future__ import annotations

import torch

__all__ = ["PROMPT_MAP_AMPLITUDE", "prompt_maps"]

#: Logit height of a click's bump in a prompt map (and half of it inside a box).
PROMPT_MAP_AMPLITUDE = 10.0


def prompt_maps(
    coords: torch.Tensor,
    labels: torch.Tensor,
    size: tuple[int, int],
    image_size: int,
    sigma: float,
) -> torch.Tensor:
    """Draw point and box prompts into a mask-prompt-sized logit map.

    Positive clicks add a Gaussian bump of height :data:`PROMPT_MAP_AMPLITUDE`, negative clicks
    subtract one, and a box (corner labels 2, 3) adds half that height inside it. This is the
    classic click-map encoding of interactive segmentation networks, fed through SAM's mask
    prompt path: it gives a model trained from scratch a direct spatial cue for where the click
    is (attention over Fourier position encodings alone learns that very slowly).

    Args:
        coords: (B, N, 2) model-input pixels (x, y).
        labels: (B, N) int: 1 positive, 0 negative, 2/3 box corners, -1 padding.
        size: (h, w) of the map (the decoder's mask-input size).
        image_size: side of the model input in pixels.
        sigma: bump width in model-input pixels.

    Returns:
        (B, 1, h, w) float32 logit map.
    """
    h, w = size
    dev = coords.device
    ys = (torch.arange(h, device=dev, dtype=torch.float32) + 0.5) * (image_size / h)
    xs = (torch.arange(w, device=dev, dtype=torch.float32) + 0.5) * (image_size / w)
    c = coords.float()
    lab = labels.to(dev)
    d2 = (ys[None, None, :, None] - c[..., 1, None, None]) ** 2 + (
        xs[None, None, None, :] - c[..., 0, None, None]
    ) ** 2  # (B, N, h, w)
    bump = torch.exp(-d2 / (2 * sigma**2))
    sign = (lab == 1).float() - (lab == 0).float()  # (B, N)
    out = (bump * sign[..., None, None]).sum(1)  # (B, h, w)
    is_tl, is_br = lab == 2, lab == 3
    if is_tl.any():
        # one box per prompt set at most (SAM's convention): its corners' coordinates
        tl = (c * is_tl[..., None]).sum(1) / is_tl.sum(1, keepdim=True).clamp(min=1)
        br = (c * is_br[..., None]).sum(1) / is_br.sum(1, keepdim=True).clamp(min=1)
        has = (is_tl.any(1) & is_br.any(1)).float()
        inside = (
            (xs[None, None, :] >= tl[:, 0, None, None])
            & (xs[None, None, :] <= br[:, 0, None, None])
            & (ys[None, :, None] >= tl[:, 1, None, None])
            & (ys[None, :, None] <= br[:, 1, None, None])
        ).float()
        out = out + 0.5 * inside * has[:, None, None]
    return (PROMPT_MAP_AMPLITUDE * out).unsqueeze(1)
