"""Shared inputs and references of the frame-source tests (``test_frames*.py``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: ImageNet mean / std the frames are normalised with, (3, 1, 1)
MEAN = torch.tensor([0.485, 0.456, 0.406]).reshape(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).reshape(3, 1, 1)


def random_movie(t=5, h=24, w=30, dtype=np.uint16, seed=0) -> np.ndarray:
    """A (t, h, w) movie of random integers in [0, 1000) as ``dtype``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1000, (t, h, w)).astype(dtype)


def expected_float(img01: np.ndarray, s: int) -> torch.Tensor:
    """Reference for the non-uint8 path: (h, w, 3) in [0, 1] -> (3, s, s) normalised."""
    x = torch.from_numpy(np.ascontiguousarray(img01.transpose(2, 0, 1)))[None].float()
    x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)[0]
    return (x - MEAN) / STD
