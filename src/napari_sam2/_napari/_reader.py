"""npe2 reader for label TIFFs (ours, Fiji/ImageJ label stacks, CTC masks).

Only files that look like label images are claimed: integer (or bool) single-channel TIFFs
that were written by napari-sam2, or whose first plane is piecewise constant with background 0
(neighbouring pixels almost always equal, also inside objects, unlike intensity images).
Anything else is left to napari's own reader (``get_reader`` returns None).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["get_reader", "looks_like_labels"]

_SUFFIXES = (".tif", ".tiff")
#: Fraction of equal horizontal / vertical neighbours above which a plane counts as labels.
EQUAL_NEIGHBOURS = 0.9


def looks_like_labels(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TIFF holding a label image (see the module docstring)."""
    import tifffile

    from napari_sam2.io.tiff import _AXES_PROPERTY

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                return False
            series = tif.series[0]
            dtype = np.dtype(series.dtype)
            if dtype.kind not in "iub":
                return False
            props = (tif.imagej_metadata or {}).get("Properties") or {}
            if isinstance(props, dict) and _AXES_PROPERTY in props:
                return True
            page = tif.pages.first
            if getattr(page, "samplesperpixel", 1) != 1:
                return False
            plane = np.asarray(page.asarray())
    except Exception:  # noqa: BLE001 - not a readable TIFF: not ours to claim
        return False
    if plane.ndim != 2 or plane.size < 4:
        return False
    if dtype.kind == "i" and plane.min() < 0:
        return False
    plane = plane[:1024, :1024]
    if not (plane == 0).any():
        return False
    pairs = [(plane[:, 1:], plane[:, :-1]), (plane[1:], plane[:-1])]
    same = sum(np.count_nonzero(a == b) for a, b in pairs)
    total = sum(a.size for a, _ in pairs)
    # inside objects too: labels are constant there, intensities are not (a mostly black
    # fluorescence image passes the first test but not this one)
    both = [(a != 0) & (b != 0) for a, b in pairs]
    inside = sum(np.count_nonzero(m) for m in both)
    same_inside = sum(np.count_nonzero((a == b) & m) for (a, b), m in zip(pairs, both))
    if inside and same_inside / inside < EQUAL_NEIGHBOURS:
        return False
    return bool(same / total >= EQUAL_NEIGHBOURS)


def get_reader(path: str | list[str]):
    """npe2 reader hook: a reader function for a label TIFF, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if not str(path).lower().endswith(_SUFFIXES) or not os.path.isfile(path):
        return None
    if not looks_like_labels(path):
        return None
    return read_labels


def read_labels(path: str | list[str]) -> list[tuple[Any, dict, str]]:
    """Read a label TIFF as a Labels layer."""
    from napari_sam2.io.tiff import load_labels_tiff

    if isinstance(path, list):
        path = path[0]
    data = load_labels_tiff(path)
    name = os.path.splitext(os.path.basename(str(path)))[0]
    return [(data, {"name": name}, "labels")]
