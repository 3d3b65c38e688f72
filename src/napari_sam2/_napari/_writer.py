"""npe2 writer: a Labels layer -> label TIFF (ImageJ-compatible, uint16 / uint32)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["write_labels"]


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write one Labels layer's data as a label TIFF; returns the written path.

    A (T, C, Y, X) labels layer made by the tracking widget for a multi-channel movie (all
    channels equal) is written as (T, Y, X).
    """
    from napari_sam2.io.tiff import save_labels_tiff

    arr = np.asarray(data)
    if arr.ndim == 4 and arr.strides[1] == 0:
        arr = arr[:, 0]
    if not path.lower().endswith((".tif", ".tiff")):
        path = path + ".tif"
    return [str(save_labels_tiff(path, arr))]
