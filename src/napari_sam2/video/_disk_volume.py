"""Label volumes on disk, and memory maps that do not grow the process's resident memory.

Long movies keep their (T, H, W) label volume on disk: above :data:`DISK_THRESHOLD_BYTES` (or
whenever a path is given) :func:`new_label_volume` makes it a memory-mapped label TIFF
(:func:`~napari_sam2.io.tiff.create_labels_tiff`) that napari displays directly. Pages of a
memory map that were written or read stay in the process's resident memory until the kernel
needs them back, so :class:`PageBudget` hands them back (``flush`` + ``madvise(MADV_DONTNEED)``)
every :data:`RELEASE_EVERY_BYTES`: peak memory then does not grow with the movie's length.
The same budget serves memory-mapped movies as they are read. numpy and tifffile only (no
torch), so the napari widget can use it before a model is loaded.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import warnings

import numpy as np

__all__ = [
    "DISK_THRESHOLD_BYTES",
    "RELEASE_EVERY_BYTES",
    "PageBudget",
    "ids_present",
    "new_label_volume",
    "release_pages",
    "widened",
]

#: Label volumes larger than this (bytes) are memory-mapped TIFFs in the temporary folder.
DISK_THRESHOLD_BYTES = 1 << 30
#: Bytes of a memory map written or read between two releases of its resident pages.
RELEASE_EVERY_BYTES = 8 << 20


def new_label_volume(
    shape: tuple[int, ...],
    dtype: type | np.dtype = np.uint16,
    path: str | os.PathLike | None = None,
    threshold: int | None = None,
    pixel_size: tuple[float, float] | None = None,
) -> np.ndarray:
    """A zero label volume: in memory, or a memory-mapped label TIFF on disk.

    Args:
        shape: (T, H, W).
        dtype: ``np.uint16`` or ``np.uint32``.
        path: put it in this ``.tif`` (a label TIFF that Fiji and napari open; the frames
            written are in the file at once).
        threshold: without ``path``, volumes above this many bytes (default
            :data:`DISK_THRESHOLD_BYTES`) go to a new ``napari-sam2-labels-*.tif`` in the
            temporary folder (with a warning naming it).
        pixel_size: (y, x) micrometres recorded in a TIFF.

    Returns:
        ``np.zeros`` (untouched frames cost no memory) or a :class:`numpy.memmap`.
    """
    from ..io.tiff import create_labels_tiff

    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if threshold is None:
        threshold = DISK_THRESHOLD_BYTES
    if path is None and nbytes <= threshold:
        return np.zeros(shape, dtype=dtype)
    if path is None:
        fd, name = tempfile.mkstemp(prefix="napari-sam2-labels-", suffix=".tif")
        os.close(fd)
        path = name
        warnings.warn(
            f"the label volume ({nbytes / 1e9:.2f} GB) is kept on disk in {path}; move or "
            "delete that file when done",
            UserWarning,
            stacklevel=2,
        )
    return create_labels_tiff(path, shape, dtype, pixel_size=pixel_size)


def _mapping(arr: np.ndarray) -> mmap.mmap | None:
    """The ``mmap`` behind a memory-mapped array (None for other arrays or copy-on-write)."""
    if isinstance(arr, np.memmap) and getattr(arr, "mode", "r") == "c":
        return None  # private pages: dropping them would drop the changes
    base = arr
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base


def release_pages(arr: np.ndarray) -> None:
    """Write a memory map's changes to its file and hand its resident pages back to the
    system (they are read again from the file when next used); no-op for other arrays."""
    mm = _mapping(arr)
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    if getattr(arr, "mode", "r") != "r" and isinstance(arr, np.memmap):
        arr.flush()
    try:
        mm.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):  # closed, or not supported by this system
        pass


class PageBudget:
    """Calls :func:`release_pages` on an array after every ``every`` bytes written or read.

    Args:
        every: bytes between two releases.
    """

    def __init__(self, every: int = RELEASE_EVERY_BYTES) -> None:
        self.every = int(every)
        self._count = 0

    def note(self, arr: np.ndarray, nbytes: int) -> None:
        """Count ``nbytes`` touched in ``arr``; release its pages when the budget is spent."""
        if not isinstance(arr, np.memmap) and _mapping(arr) is None:
            return
        self._count += int(nbytes)
        if self._count >= self.every:
            self._count = 0
            release_pages(arr)


def widened(volume: np.ndarray) -> np.ndarray:
    """``volume`` as uint32 (ids above 65,535): a memory map is copied, frame by frame, into
    a new on-disk volume, anything else with ``astype``."""
    if _mapping(volume) is None:
        return volume.astype(np.uint32)
    out = new_label_volume(volume.shape, np.uint32, threshold=0)
    for t in range(volume.shape[0]):
        out[t] = volume[t]
    return out


def ids_present(volume: np.ndarray) -> set[int]:
    """The non-zero ids in a (T, ...) label volume, read one frame at a time (a memory-mapped
    volume is not loaded whole, and its pages are handed back as it is read)."""
    found: set[int] = set()
    budget = PageBudget()
    for t in range(volume.shape[0]):
        frame = np.asarray(volume[t])
        if frame.any():
            found.update(int(i) for i in np.unique(frame) if i)
        budget.note(volume, frame.nbytes)
    return found
