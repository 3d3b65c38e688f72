"""Output files that never cost the user finished work: checked before any work starts, and
saved to a fallback place when writing still fails at the end.

:func:`check_writable` creates the output's folder and a probe file in it, so an unwritable
``--out`` (a read-only or missing share, a path through a file, a full disk's quota) is
reported in a second, naming the path the user gave, instead of after hours of propagation.
:func:`save_with_fallback` writes a result and, if that fails anyway (the share went away,
the disk filled up meanwhile), saves it beside the input movie or in the temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "OutputError",
    "check_writable",
    "error_reason",
    "fallback_paths",
    "save_with_fallback",
]


class OutputError(OSError):
    """An output path cannot be written; the message names it and says what to do."""


def error_reason(err: BaseException) -> str:
    """The short reason of an error ("Permission denied"), without the path it names."""
    text = getattr(err, "strerror", None)
    return str(text) if text else (str(err) or type(err).__name__)


def check_writable(path: str | os.PathLike, what: str = "output", folder: bool = False) -> Path:
    """Make sure ``path`` can be written, before any work starts.

    Creates the missing folders, then creates and removes a probe file beside ``path`` (or
    inside it when ``folder``), which is what writing it later needs.

    Args:
        path: the output file (or folder) as the user gave it.
        what: how the user named it, for the message (e.g. "--out").
        folder: ``path`` is an output folder (e.g. a Cell Tracking Challenge result).

    Returns:
        ``path`` as a Path.

    Raises:
        OutputError: the folder cannot be created or written, or ``path`` is a folder where a
            file is expected (or a file where a folder is expected); the message names
            ``path``.
    """
    path = Path(path)
    if not folder and path.is_dir():
        raise OutputError(f"cannot write {what} {path}: it is a folder; give a file name")
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"cannot write {what} {path}: it is a file; give a folder name")
    target = path if folder else path.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=target, prefix=".napari-sam2-probe-", suffix=".tmp")
    except OSError as err:
        raise OutputError(
            f"cannot write {what} {path}: the folder {target} is not writable "
            f"({error_reason(err)}); choose another path or fix the folder's permissions"
        ) from err
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return path


def fallback_paths(path: str | os.PathLike, beside: str | os.PathLike | None) -> list[Path]:
    """Where a result meant for ``path`` goes when ``path`` cannot be written: beside the
    input file ``beside`` (when given), then in the temporary folder, as
    ``NAME.recovered.SUFFIX``."""
    path = Path(path)
    name = f"{path.stem}.recovered{path.suffix}"
    places = [Path(beside).parent] if beside is not None else []
    places.append(Path(tempfile.gettempdir()))
    out: list[Path] = []
    for place in places:
        candidate = place / name
        if candidate not in out and candidate != path:
            out.append(candidate)
    return out


def save_with_fallback(
    write: Callable[[Path], object], path: str | os.PathLike, fallbacks: Sequence[Path]
) -> tuple[Path, OSError | None]:
    """Write a result to ``path``, or to the first of ``fallbacks`` that works.

    Args:
        write: ``write(target)`` writes the result to ``target`` (atomically, so a failed
            attempt leaves nothing half-written).
        path: where the user asked for it.
        fallbacks: other places to try, in order (see :func:`fallback_paths`).

    Returns:
        (the path written, the error writing ``path`` or None when it worked).

    Raises:
        OSError: the first error, when every place failed.
    """
    path = Path(path)
    try:
        write(path)
        return path, None
    except OSError as err:
        first = err
    for place in fallbacks:
        try:
            write(place)
        except OSError:
            continue
        return place, first
    raise first
