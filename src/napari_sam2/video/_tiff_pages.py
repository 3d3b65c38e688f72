"""Lazy TIFF access for :class:`~napari_sam2.video.frames.FrameSource`.

A TIFF series is memory-mapped when its data are stored contiguously and uncompressed, and is
otherwise decoded page by page (only the pages an index touches).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import numpy as np

from ._axes import _shape_str


class _TiffPages:
    """Array-like view of a tifffile series that decodes only the pages an index touches.

    Supports the indexing used by :class:`FrameSource`: a tuple with one entry per dimension,
    integers or slices on the page-stacking (leading) dimensions, anything on the others.
    """

    def __init__(self, series: Any) -> None:
        self._series = series
        self._pages = series.pages
        self.shape = tuple(int(n) for n in series.shape)
        self.dtype = np.dtype(series.dtype)
        self.ndim = len(self.shape)
        n_pages = len(self._pages)
        page_size = int(np.prod(self._pages[0].shape))
        k = None
        for i in range(self.ndim, -1, -1):  # prefer the most leading dims (smallest pages)
            if (
                int(np.prod(self.shape[i:])) == page_size
                and int(np.prod(self.shape[:i])) == n_pages
            ):
                k = i
                break
        if k is None:
            raise ValueError(
                f"Unsupported TIFF layout: series shape {_shape_str(self.shape)} does not split "
                f"into {n_pages} pages of {page_size} pixels."
            )
        self._k = k

    def __getitem__(self, index: tuple) -> np.ndarray:
        if not isinstance(index, tuple):
            index = (index,)
        index = index + (slice(None),) * (self.ndim - len(index))
        lead_shape = self.shape[: self._k]
        lead_ranges = []
        for i, n in zip(index[: self._k], lead_shape, strict=True):
            if isinstance(i, slice):
                lead_ranges.append(list(range(*i.indices(n))))
            else:
                ii = int(i)
                if not -n <= ii < n:
                    raise IndexError(f"index {ii} out of range for axis of size {n}")
                lead_ranges.append([ii % n])
        page_shape = self.shape[self._k :]
        out_lead = tuple(
            len(r)
            for r, i in zip(lead_ranges, index[: self._k], strict=True)
            if isinstance(i, slice)
        )
        planes = []
        for combo in itertools.product(*lead_ranges):
            p = int(np.ravel_multi_index(combo, lead_shape)) if lead_shape else 0
            plane = np.asarray(self._pages[p].asarray(maxworkers=1)).reshape(page_shape)
            planes.append(plane[index[self._k :]])
        if not planes:
            raise IndexError("empty selection")
        stacked = np.stack(planes, axis=0)
        return stacked.reshape(out_lead + stacked.shape[1:])


def _open_tiff(path: str | os.PathLike) -> tuple[Any, Any, str, str]:
    """Open a TIFF lazily. Returns (array-like, TiffFile or None, series axes, backend name)."""
    import tifffile

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such movie file: {path!r}")
    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # noqa: BLE001 - tifffile raises several types
        raise ValueError(
            f"Could not read {path!r} as a TIFF file ({exc}). Pass a TIFF path or an array."
        ) from exc
    if not tif.series:
        tif.close()
        raise ValueError(f"The TIFF file {path!r} contains no image series.")
    series = tif.series[0]
    axes = str(series.axes)
    if series.dataoffset is not None:
        try:
            mm = tifffile.memmap(path, series=0, mode="r")
            if mm.shape != tuple(series.shape):
                mm = mm.reshape(series.shape)
            tif.close()
            return mm, None, axes, "tiff-memmap"
        except (ValueError, OSError):
            pass
    return _TiffPages(series), tif, axes, "tiff-pages"
