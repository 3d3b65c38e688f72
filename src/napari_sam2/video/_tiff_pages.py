"""Lazy TIFF access for :class:`~napari_sam2.video.frames.FrameSource`.

A TIFF series is memory-mapped when its data are stored contiguously and uncompressed, and is
otherwise decoded page by page (only the pages an index touches).

Before a movie is used, :func:`find_tiff_damage` checks that every plane its metadata promise
(ImageJ ``images``, tifffile's shaped ``shape``, or the chain of pages) lies inside the file:
tifffile only logs a warning for a truncated file and then offers fewer frames, so a cut-off
movie would otherwise be segmented as a shorter one. The check reads no pixel data: offsets
and byte counts against the file size (one multiplication for contiguous data).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._axes import _shape_str

__all__ = ["DamagedMovieError", "PartialMovieWarning", "TiffDamage", "find_tiff_damage"]


class DamagedMovieError(ValueError):
    """A movie file holds fewer complete frames than its metadata promise (truncated copy,
    interrupted download, damaged page table).

    Attributes:
        damage: the :class:`TiffDamage` found.
    """

    def __init__(self, damage: TiffDamage) -> None:
        super().__init__(damage.message())
        self.damage = damage


class PartialMovieWarning(UserWarning):
    """A damaged movie is used up to its last complete frame (``allow_partial=True``)."""


def _frames(k: int) -> str:
    """'frame 0' or 'frames 0-(k-1)'."""
    return "frame 0" if k == 1 else f"frames 0-{k - 1}"


@dataclass(frozen=True)
class TiffDamage:
    """What :func:`find_tiff_damage` found wrong with a TIFF file.

    Attributes:
        path: the file.
        good_frames: frames 0 .. good_frames - 1 are complete; frame ``good_frames`` is the
            first missing or cut-off one.
        promised_frames: frames the metadata promise (None: unknown, at least one more).
        file_bytes: size of the file in bytes.
        needed_bytes: bytes the promised data need (None when unknown).
    """

    path: str
    good_frames: int
    promised_frames: int | None
    file_bytes: int
    needed_bytes: int | None = None

    def message(self, how: str = "allow_partial=True (--allow-partial on the command line)") -> str:
        """The error text: the file, the first bad frame and the two ways on (``how``: how
        to ask for the complete frames)."""
        k = self.good_frames
        promised = (
            f"its metadata promise {self.promised_frames} frames"
            if self.promised_frames is not None
            else "its page table points past the end of the file"
        )
        size = f"{self.file_bytes:,} bytes"
        if self.needed_bytes is not None:
            size = f"{self.file_bytes:,} of the {self.needed_bytes:,} bytes needed"
        if k == 0:
            return (
                f"{self.path} is damaged or incomplete: {promised} but not even frame 0 is "
                f"complete ({size}). Copy or export the file again."
            )
        return (
            f"{self.path} is damaged or incomplete: {promised} but frame {k} is missing or "
            f"cut off ({size}; {_frames(k)} {'is' if k == 1 else 'are'} complete). Copy or "
            f"export the file again, or pass {how} to use {_frames(k)} only."
        )

    def warning(self) -> str:
        """The warning text when the complete frames are used."""
        promised = f" ({self.promised_frames} promised)" if self.promised_frames else ""
        return (
            f"{self.path} is damaged or incomplete: using {_frames(self.good_frames)} only; "
            f"frame {self.good_frames} is missing or cut off{promised}"
        )


class _TiffPages:
    """Array-like view of a tifffile series that decodes only the pages an index touches.

    Supports the indexing used by :class:`FrameSource`: a tuple with one entry per dimension,
    integers or slices on the page-stacking (leading) dimensions, anything on the others.

    Args:
        pages: the tifffile pages (or frames), one per plane, in storage order.
        shape: the array's shape; its trailing dimensions are the pages' shape.
        dtype: the pixel type.
    """

    def __init__(self, pages: Sequence[Any], shape: Sequence[int], dtype: Any) -> None:
        self._pages = pages
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
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


@dataclass(frozen=True)
class _Layout:
    """The series a TIFF promises: shape, tifffile axes, planes (pages) and where they lie."""

    shape: tuple[int, ...]
    axes: str
    planes: int | None  # planes promised (None: only what the page chain holds)
    plane_bytes: int
    dataoffset: int | None  # start of contiguous, uncompressed data (else pages decoded)


def _promised_layout(tif: Any, series: Any) -> _Layout:
    """The shape and plane count the file's metadata promise, even when tifffile could not
    build the whole series (it then returns a shorter one and logs a warning)."""
    page = tif.pages.first
    plane_shape = tuple(int(n) for n in page.shape)
    plane = math.prod(plane_shape)
    plane_bytes = plane * np.dtype(series.dtype).itemsize
    shape = tuple(int(n) for n in series.shape)
    axes = str(series.axes)
    planes: int | None = None
    lead: list[tuple[int, str]] | None = None
    ij = tif.imagej_metadata if tif.is_imagej else None
    if ij and int(ij.get("images", 0) or 0) > 0:
        planes = int(ij["images"])
        lead = [
            (int(ij.get(key, 1) or 1), letter)
            for key, letter in (("frames", "T"), ("slices", "Z"), ("channels", "C"))
        ]
        lead = [(n, a) for n, a in lead if n > 1]
        if math.prod(n for n, _ in lead) != planes:
            lead = [(planes, "I")] if planes > 1 else []
    elif tif.shaped_metadata:
        meta_shape = tuple(int(n) for n in tif.shaped_metadata[0].get("shape", ()))
        total = math.prod(meta_shape) if meta_shape else 0
        if plane and total and total % plane == 0:
            planes = total // plane
            lead = [(planes, "Q")] if planes > 1 else []
            if meta_shape[len(meta_shape) - len(plane_shape) :] == plane_shape:
                lead = [(n, "Q") for n in meta_shape[: len(meta_shape) - len(plane_shape)]]
    if planes is not None and math.prod(shape) != planes * plane and lead is not None:
        shape = tuple(n for n, _ in lead) + plane_shape  # tifffile gave a shorter series
        axes = "".join(a for _, a in lead) + str(page.axes)
    offset = series.dataoffset
    if offset is None and page.is_contiguous and planes is not None and planes > len(series.pages):
        offset = int(page.dataoffsets[0])  # a contiguous file whose page table was cut off
    return _Layout(shape, axes, planes, plane_bytes, None if offset is None else int(offset))


def _next_page_offset(tif: Any, page: Any, file_bytes: int) -> int:
    """Offset of the page after ``page`` in the file's page chain (0: none; -1: unreadable)."""
    t = tif.tiff
    fh = tif.filehandle
    try:
        fh.seek(page.offset)
        (count,) = struct.unpack(t.tagnoformat, fh.read(t.tagnosize))
        fh.seek(page.offset + t.tagnosize + count * t.tagsize)
        data = fh.read(t.offsetsize)
    except (OSError, struct.error):
        return -1
    if len(data) < t.offsetsize:
        return -1
    (nxt,) = struct.unpack(t.offsetformat, data)
    return -1 if nxt >= file_bytes else int(nxt)


def _plane_pages(tif: Any, series: Any, planes: int | None) -> Sequence[Any]:
    """The pages holding the series' planes: the series' own, or all of the file's when
    tifffile built a shorter series than the metadata promise (or none promise a count)."""
    if planes is not None and len(series.pages) >= planes:
        return series.pages
    return tif.pages


def find_tiff_damage(tif: Any, path: str | os.PathLike) -> tuple[TiffDamage | None, _Layout]:
    """Check that every plane a TIFF's metadata promise lies wholly inside the file.

    Contiguous uncompressed data (ImageJ hyperstacks, tifffile's default) are checked with one
    multiplication; other files page by page (data offsets plus byte counts against the file
    size), and files without a plane count in their metadata by their page chain (a pointer
    past the end of the file means pages were cut off). Frame ``t`` of a movie is taken to
    hold planes ``t * p .. t * p + p - 1`` (``p`` planes per frame: time is the slowest axis,
    as in ImageJ and tifffile files).

    Args:
        tif: an open ``tifffile.TiffFile``.
        path: its path (for the report).

    Returns:
        (the damage found or None, the promised layout).
    """
    path = os.fspath(path)
    file_bytes = os.path.getsize(path)
    series = tif.series[0]
    layout = _promised_layout(tif, series)
    planes = layout.planes
    pages = _plane_pages(tif, series, planes)
    if planes is None:  # nothing but the page chain says how many planes there are
        planes = len(pages)
        if planes and _next_page_offset(tif, pages[planes - 1], file_bytes) < 0:
            planes = None  # the chain promises at least one more page
    needed = None
    if layout.dataoffset is not None:
        n = planes if planes is not None else len(pages) + 1
        needed = layout.dataoffset + n * layout.plane_bytes
        good = min(n, max(0, file_bytes - layout.dataoffset) // max(1, layout.plane_bytes))
        if planes is None:
            good = min(good, len(pages))
    else:
        good = 0
        for page in pages:
            if page is None or any(
                o + c > file_bytes for o, c in zip(page.dataoffsets, page.databytecounts)
            ):
                break
            good += 1
    if planes is not None and good >= planes:
        return None, layout
    if planes is None:  # every page a frame, as tifffile reads a plain multi-page file
        page = tif.pages.first
        layout = dataclasses.replace(
            layout, shape=(len(pages), *page.shape), axes="I" + str(page.axes)
        )
        return TiffDamage(path, good, None, file_bytes), layout
    n_lead = layout.shape[0] if len(layout.shape) > 2 and layout.axes[0] not in "YXS" else 1
    per_frame = max(1, planes // max(1, n_lead))
    return TiffDamage(path, good // per_frame, n_lead, file_bytes, needed), layout


def _partial_array(tif: Any, path: str, damage: TiffDamage, layout: _Layout) -> tuple[Any, str]:
    """The complete frames 0 .. good_frames - 1 of a damaged file: (array-like, backend)."""
    shape = (damage.good_frames, *layout.shape[1:])
    series = tif.series[0]
    dtype = np.dtype(series.dtype)
    if layout.dataoffset is not None:
        dtype = dtype.newbyteorder(tif.byteorder)
        return np.memmap(path, dtype=dtype, mode="r", offset=layout.dataoffset, shape=shape), (
            "tiff-memmap"
        )
    n_planes = math.prod(shape) * dtype.itemsize // max(1, layout.plane_bytes)
    pages = _plane_pages(tif, series, layout.planes)
    return _TiffPages([pages[i] for i in range(n_planes)], shape, dtype), "tiff-pages"


def _open_tiff(
    path: str | os.PathLike, allow_partial: bool = False
) -> tuple[Any, Any, str, str]:
    """Open a TIFF lazily. Returns (array-like, TiffFile or None, series axes, backend name).

    Raises:
        DamagedMovieError: the file holds fewer complete frames than its metadata promise
            (with ``allow_partial`` only when not even frame 0 is complete; otherwise a
            :class:`PartialMovieWarning` is issued and the complete frames are used).
    """
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
    try:
        if not tif.series:
            raise ValueError(f"The TIFF file {path!r} contains no image series.")
        damage, layout = find_tiff_damage(tif, path)
        if damage is not None:
            if not allow_partial or damage.good_frames == 0:
                raise DamagedMovieError(damage)
            warnings.warn(damage.warning(), PartialMovieWarning, stacklevel=3)
            arr, backend = _partial_array(tif, path, damage, layout)
            if backend == "tiff-memmap":
                tif.close()
                return arr, None, layout.axes, backend
            return arr, tif, layout.axes, backend
    except BaseException:
        tif.close()
        raise
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
    return _TiffPages(series.pages, series.shape, series.dtype), tif, axes, "tiff-pages"
