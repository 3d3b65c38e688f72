"""Hand the C heap's free memory back to the system (glibc ``malloc_trim``).

PyTorch's CPU tensors come from the C allocator. Tensors of a few hundred KiB to a few MiB that
are freed again at every step (the encodings, memories and logits of one timepoint) leave free
blocks inside glibc's heaps and per-thread arenas; glibc keeps them mapped, so the resident
memory of a long run creeps up although nothing in Python holds more. ``malloc_trim(0)``
releases those free pages (``madvise`` on whole free pages, and the top of each heap). Other C
libraries (musl, macOS, Windows) return nothing here: :func:`trim_heap` is then a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

__all__ = ["trim_heap"]


@cache
def _malloc_trim():
    """glibc's ``malloc_trim`` as a ctypes function, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def trim_heap() -> bool:
    """Release the C heap's free pages to the system.

    Returns:
        True when glibc reported memory released, False otherwise (nothing free, or no glibc).
    """
    fn = _malloc_trim()
    return bool(fn(0)) if fn is not None else False
