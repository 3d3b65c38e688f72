"""Seed labels: the (H, W) label image that seeds a frame, from an array, a label volume or a
label TIFF / ``.npy`` file, checked (integer, non-negative, not empty)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .label_checks import check_labels

__all__ = ["seed_label_image"]


def seed_label_image(labels: Any, frame: int = 0) -> np.ndarray:
    """The (H, W) label image that seeds ``frame``, from a label image or a label volume.

    Args:
        labels: a (H, W) label image (the labels of ``frame``), a (T, H, W) label volume (its
            frame ``frame`` is used; a one-frame (1, H, W) stack counts as a (H, W) image), or
            the path of a label TIFF or ``.npy`` file holding either.
        frame: the frame the labels seed.

    Returns:
        (H, W) integer labels (0 = background; each other value becomes an object id).

    Raises:
        ValueError: unreadable file, wrong number of dimensions, a frame the volume lacks,
            non-integer or negative values, or no label at all on that frame.
    """
    name = "the seed labels"
    if isinstance(labels, (str, os.PathLike)):
        from .tiff import load_labels_tiff

        path = Path(labels).expanduser()
        name = path.name
        if not path.is_file():
            raise ValueError(f"seed labels not found: {labels}")
        try:
            labels = (
                np.load(path, mmap_mode="r")
                if path.suffix.lower() == ".npy"
                else load_labels_tiff(path)
            )
        except Exception as err:  # noqa: BLE001 - tifffile and numpy raise many types
            raise ValueError(f"cannot read {name} as a label image ({err})") from None
    arr = np.asarray(labels) if not hasattr(labels, "ndim") else labels
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3:
        if not 0 <= frame < arr.shape[0]:
            raise ValueError(
                f"{name} holds {arr.shape[0]} frames (T, Y, X); frame {frame} is out of range"
            )
        arr = arr[frame]
    if arr.ndim != 2:
        raise ValueError(
            f"{name} has shape {tuple(arr.shape)}: give a (Y, X) label image or a (T, Y, X) "
            "label volume"
        )
    arr = np.ascontiguousarray(arr)
    arr = check_labels(arr, name=name, bool_ok=True)
    if not arr.any():
        raise ValueError(f"{name} holds no label (all 0) for frame {frame}")
    return arr
