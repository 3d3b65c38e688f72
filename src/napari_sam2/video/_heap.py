"""Hand the C heap's free memory back to the system (glibc ``malloc_trim``).

PyTorch's CPU tensors come from the C allocator. Tensors of a few hundred KiB to a few MiB that
are freed again at every step (the encodings, memories and logits of one timepoint) leave free
blocks inside glibc's heaps and per-thread arenas; glibc keeps them mapped, so the resident
memory of a long run creeps up although nothing in Python holds more. ``malloc_trim(0)``
releases those free pages (``madvise`` on whole free pages, and the top of each heap), and
:func:`fix_mmap_threshold` keeps large blocks out of the heaps. Other C libraries (musl, macOS,
Windows) are left alone: both are then no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

__all__ = ["fix_mmap_threshold", "trim_heap"]

#: ``mallopt`` parameter number of ``M_MMAP_THRESHOLD`` (glibc's malloc.h)
_M_MMAP_THRESHOLD = -3
#: blocks from this size (bytes) up get their own memory map, returned to the system when freed
MMAP_THRESHOLD = 256 << 10


@cache
def _glibc(name: str):
    """glibc's function ``name`` as a ctypes function, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return getattr(libc, name)
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return None


def _malloc_trim():
    fn = _glibc("malloc_trim")
    if fn is not None:
        fn.argtypes = [ctypes.c_size_t]
        fn.restype = ctypes.c_int
    return fn


def fix_mmap_threshold(nbytes: int = MMAP_THRESHOLD) -> bool:
    """Give every C heap block of ``nbytes`` or more its own memory map, for the whole process.

    glibc raises its mmap threshold each time a mapped block is freed (up to 32 MiB), so after
    the first few steps the multi-MiB tensors of every step come from the heaps instead, where
    freed blocks fragment and stay resident: the peak memory of a long run keeps creeping up.
    A fixed threshold turns that adjustment off; such blocks are then returned when freed.

    Returns:
        True when glibc accepted it, False otherwise (no glibc: nothing changes).
    """
    fn = _glibc("mallopt")
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return bool(fn(_M_MMAP_THRESHOLD, int(nbytes)))


def trim_heap() -> bool:
    """Release the C heap's free pages to the system.

    Returns:
        True when glibc reported memory released, False otherwise (nothing free, or no glibc).
    """
    fn = _malloc_trim()
    return bool(fn(0)) if fn is not None else False
