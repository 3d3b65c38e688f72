"""Single-image promptable segmentation (SAM's classic task) with a SAM 2 model."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .model.sam2 import SAM2Model
from .video.frames import FrameSource
from .video.prompts import validate_box, validate_points

__all__ = ["ImagePredictor"]

# Bound of the low-resolution logits returned by ``predict`` (Meta's image predictor uses 32).
_LOGIT_CLAMP = 32.0


class ImagePredictor:
    """Segment objects in one image from clicks, a box or a mask.

    Coordinates are napari order (y, x) in image pixels.

    Example:
        >>> pred = ImagePredictor(load_model("micro"))
        >>> pred.set_image(image)                      # (H, W) or (H, W, 3)
        >>> masks, scores, logits = pred.predict(points=[[40, 52]], labels=[1])

    Args:
        model: a loaded SAM 2 model.
    """

    def __init__(self, model: SAM2Model) -> None:
        self.model = model.eval()
        self._features = None
        self._shape: tuple[int, int] | None = None

    def set_image(self, image, *, contrast_limits: tuple[float, float] | None = None) -> None:
        """Encode an image: (H, W) grey or (H, W, 3) RGB, any numeric dtype.

        Intensities are scaled with ``contrast_limits`` or robust percentiles (uint8 RGB with
        ``contrast_limits=(0, 255)`` reproduces Meta's preprocessing).
        """
        arr = np.asarray(image)
        if arr.ndim == 2:
            axes = "YX"
        elif arr.ndim == 3 and arr.shape[-1] in (3, 4):
            axes = "YXC"
        else:
            raise ValueError(
                f"image must be (H, W) or (H, W, 3), got shape {arr.shape}; "
                "for a time-lapse use VideoSession"
            )
        cfg = self.model.config
        src = FrameSource(
            arr,
            axes=axes,
            contrast_limits=contrast_limits,
            image_size=cfg.image_size,
            pixel_mean=cfg.pixel_mean,
            pixel_std=cfg.pixel_std,
        )
        x = src.model_input(0).to(self.model.device)[None]
        self.set_image_tensor(x, (src.height, src.width))

    @torch.inference_mode()
    def set_image_tensor(self, x: torch.Tensor, original_size: tuple[int, int]) -> None:
        """Encode an already normalised (1, 3, S, S) model input of an (H, W) image."""
        self._features = self.model.encode_image(x)
        self._shape = tuple(original_size)  # type: ignore[assignment]

    @torch.inference_mode()
    def predict(
        self,
        points=None,
        labels=None,
        box=None,
        mask=None,
        multimask: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predict masks for the current image.

        Args:
            points: (N, 2) clicks (y, x) in pixels, or None.
            labels: (N,) 1 positive / 0 negative.
            box: (y0, x0, y1, x1) in pixels, or None.
            mask: low-resolution logits (S/4, S/4) from a previous call, or a binary (H, W) mask.
            multimask: return 3 candidates (best for a single click) instead of 1.

        Returns:
            masks (M, H, W) bool, scores (M,) predicted IoU, logits (M, S/4, S/4) clamped to
            [-32, 32] (pass one back as ``mask=`` to refine). M = 3 with ``multimask`` else 1.

        Raises:
            RuntimeError: no image was set.
            ValueError: empty prompt, points without labels, a point or box outside the image,
                or a mask of the wrong shape.
        """
        if self._features is None or self._shape is None:
            raise RuntimeError("no image set: call set_image(image) first")
        h, w = self._shape
        s = self.model.image_size
        coords, labs = [], []
        if box is not None:
            y0, x0, y1, x1 = validate_box(box, (h, w))
            coords += [(x0 * s / w, y0 * s / h), (x1 * s / w, y1 * s / h)]
            labs += [2, 3]
        if points is None and labels is not None:
            raise ValueError("labels were given without points: pass points=(N, 2) (y, x) too")
        if points is not None:
            if labels is None:
                raise ValueError("points need labels: one per point, 1 (object) or 0 (background)")
            pts, lab = validate_points(points, labels, (h, w))
            coords += [(x * s / w, y * s / h) for y, x in pts]
            labs += [int(v) for v in lab]
        dev = self.model.device
        point_input = None
        if coords:
            point_input = (
                torch.tensor(coords, dtype=torch.float32, device=dev)[None],
                torch.tensor(labs, dtype=torch.int32, device=dev)[None],
            )
        mask_input = None
        if mask is not None:
            mask_input = self._mask_input(np.asarray(mask))
        if point_input is None and mask_input is None:
            raise ValueError("empty prompt: give points, a box or a mask")
        feats = self._features
        enc, dec = self.model.sam_prompt_encoder, self.model.sam_mask_decoder
        sparse, dense = self.model.encode_prompts(*(point_input or (None, None)), mask_input)
        logits, ious, _, _ = dec(
            image_embeddings=self.model.no_memory(feats),
            image_pe=enc.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            high_res_features=list(feats.high_res),
        )
        full = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
        # The returned low-resolution logits are clamped (as Meta's predictor does), so feeding
        # them back as ``mask=`` gives the same result as in Meta's predictor.
        low = logits[0].float().clamp(-_LOGIT_CLAMP, _LOGIT_CLAMP)
        return (
            (full[0] > 0).cpu().numpy(),
            ious[0].float().cpu().numpy(),
            low.cpu().numpy(),
        )

    def _mask_input(self, mask: np.ndarray) -> torch.Tensor:
        size = tuple(self.model.sam_prompt_encoder.mask_input_size)
        t = torch.as_tensor(mask, dtype=torch.float32, device=self.model.device)
        if t.ndim == 3 and t.shape[0] == 1:
            t = t[0]
        if tuple(t.shape) == size and mask.dtype != bool:
            return t[None, None]  # logits from a previous prediction
        if tuple(t.shape) != self._shape:
            raise ValueError(
                f"mask must be the image's shape {self._shape} (binary) or {size} (logits from a "
                f"previous predict), got {tuple(t.shape)}"
            )
        t = (t > 0).float() * 20.0 - 10.0
        return F.interpolate(
            t[None, None], size=size, mode="bilinear", align_corners=False, antialias=True
        )
