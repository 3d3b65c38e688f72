"""Planes of a (T, Z, [C,] Y, X) movie seen as stacks of frames (for
:class:`~napari_sam2.video.volume_time.VolumeTimeSession`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ._axes import _parse_axes, _shape_str
from ._disk_volume import PageBudget
from ._tiff_pages import _open_tiff

__all__: list[str] = []


class _Planes:
    """Array-like view of (t, z) planes of a (T, Z, [C], Y, X) movie as a stack of frames.

    ``plane(i)`` gives the (t, z) of frame i; only integer frame indices are read (what
    :class:`FrameSource` does). Shape: (N, [C,] Y, X) with axes ``"T[C]YX"``. ``budget``
    counts the bytes read, so that the resident pages of a memory-mapped movie are handed back.
    """

    def __init__(
        self,
        movie: Any,
        axes: str,
        count: int,
        plane: Callable[[int], tuple],
        budget: PageBudget | None = None,
    ) -> None:
        self._movie = movie
        self._axes = axes
        self._plane = plane
        self._budget = budget
        rest = [a for a in axes if a in "CYX"]
        self.axes = "T" + "".join(rest)
        self.shape = (count, *(movie.shape[axes.index(a)] for a in rest))
        self.dtype = movie.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, index: tuple) -> np.ndarray:
        i, *rest = index if isinstance(index, tuple) else (index,)
        t, z = self._plane(int(i))
        sub = dict(zip(self.axes[1:], rest, strict=False))
        idx = []
        for a in self._axes:
            if a == "T":
                idx.append(t)
            elif a == "Z":
                idx.append(z)
            elif a == "1":
                idx.append(0)
            else:
                idx.append(sub.get(a, slice(None)))
        out = np.asarray(self._movie[tuple(idx)])
        if self._budget is not None:
            self._budget.note(self._movie, out.nbytes)
        return out


def _open_4d(movie: Any, axes: str) -> tuple[Any, str, Any]:
    """(array-like, validated axes, TiffFile to close or None) of a T, Z, [C], Y, X movie."""
    tif = None
    if isinstance(movie, (str, os.PathLike)):
        movie, tif, _, _ = _open_tiff(movie)
    shape = tuple(int(n) for n in movie.shape)
    full = _parse_axes(axes, shape)
    if "T" not in full or "Z" not in full:
        raise ValueError(
            f"VolumeTimeSession needs axes with T and Z (e.g. 'TZYX', 'TCZYX'); got {axes!r}. "
            "A z-stack without time is a VideoSession with axes='ZYX'."
        )
    if 0 in shape:
        raise ValueError(f"The movie is empty (shape {_shape_str(shape)}).")
    return movie, full, tif
