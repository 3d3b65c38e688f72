"""Movie axes for :class:`~napari_sam2.video.frames.FrameSource`: infer, validate and translate.

Axis letters are ``T`` (time), ``Z``, ``C`` (channel), ``Y``, ``X``; ``"1"`` is internal and
marks a length-1 axis that is dropped (indexed at 0).
"""

from __future__ import annotations

from collections.abc import Sequence

# Axis letters understood by FrameSource. "1" is internal: a length-1 axis that is dropped.
_AXIS_LETTERS = "TZCYX"
_COMMON_AXES = '"TYX", "TCYX", "TYXC", "YX", "YXC"'


def _shape_str(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(n)) for n in shape) + ")"


def infer_axes(shape: Sequence[int]) -> str:
    """Guess the axes of an array from its shape alone.

    Rules: 2-D -> ``"YX"``; 3-D -> ``"YXC"`` when the last axis has 3 or 4 entries (RGB / RGBA)
    and the two others are larger than 4, else ``"TYX"``; 4-D -> ``"TYXC"`` when the last axis
    has 3 or 4 entries and the two middle ones are larger than 4, ``"TCYX"`` when the second axis
    has at most 4 entries and the last two are larger than 4, otherwise ambiguous. Leading
    length-1 axes of arrays with more than 3 dimensions are dropped first (returned as ``"1"``).

    Args:
        shape: the array shape.

    Returns:
        One letter per dimension from ``T, C, Y, X`` (and ``1`` for dropped length-1 axes).

    Raises:
        ValueError: when the layout cannot be guessed safely; the message asks for ``axes=``.
    """
    shape = tuple(int(n) for n in shape)
    lead = ""
    rest = shape
    while len(rest) > 3 and rest[0] == 1:
        lead += "1"
        rest = rest[1:]
    nd = len(rest)
    if nd == 2:
        return lead + "YX"
    if nd == 3:
        h, w, c = rest
        if c in (3, 4) and h > 4 and w > 4:
            return lead + "YXC"
        return lead + "TYX"
    if nd == 4:
        _, b, c, d = rest
        if d in (3, 4) and b > 4 and c > 4:
            return lead + "TYXC"
        if b <= 4 and c > 4 and d > 4:
            return lead + "TCYX"
        raise ValueError(
            f"Cannot tell which axis holds the channels of a 4-D movie of shape "
            f"{_shape_str(shape)}. Pass axes=, e.g. axes='TCYX' (time, channel, y, x) or "
            f"axes='TYXC' (channels last)."
        )
    if nd < 2:
        raise ValueError(
            f"A movie needs at least 2 dimensions (y, x); got shape {_shape_str(shape)}."
        )
    raise ValueError(
        f"Cannot guess the axes of a {len(shape)}-D movie of shape {_shape_str(shape)}. "
        f"Pass axes= with one letter per dimension from T, Z, C, Y, X (e.g. 'TZCYX'); "
        f"common forms are {_COMMON_AXES}."
    )


def _parse_axes(axes: str, shape: tuple[int, ...]) -> str:
    """Validate a user ``axes`` string against ``shape``; returns it in upper case."""
    if not isinstance(axes, str):
        raise ValueError(f"axes must be a string such as {_COMMON_AXES}; got {axes!r}.")
    ax = axes.strip().upper()
    bad = sorted({a for a in ax if a not in _AXIS_LETTERS})
    if bad or len(set(ax)) != len(ax) or "Y" not in ax or "X" not in ax:
        raise ValueError(
            f"Invalid axes {axes!r}: use each of the letters T (time), Z, C (channel), Y, X at "
            f"most once, with both Y and X; common forms are {_COMMON_AXES}."
        )
    if len(ax) != len(shape):
        raise ValueError(
            f"axes {axes!r} has {len(ax)} letters but the movie has {len(shape)} dimensions "
            f"(shape {_shape_str(shape)}); give one letter per dimension."
        )
    return ax


def _axes_from_tiff(series_axes: str, shape: tuple[int, ...]) -> str | None:
    """Translate tifffile series axes (e.g. ImageJ ``"TZCYX"``, ``"QYXS"``) to our letters.

    Returns ``None`` when the metadata do not settle the layout (generic axes of length > 1
    besides a single time-like one); the caller then falls back to :func:`infer_axes`.
    """
    if len(series_axes) != len(shape):
        return None
    mapped = []
    for letter, n in zip(series_axes.upper(), shape, strict=True):
        if letter in _AXIS_LETTERS:
            m = letter
        elif letter == "S":  # samples per pixel (RGB)
            m = "C"
        else:  # generic: I (image sequence), Q (unknown), others
            m = "?"
        # Length-1 generic / channel axes are dropped; a length-1 Z is kept (indexed at 0).
        mapped.append("1" if (n == 1 and m in "?C") else m)
    known = [m for m in mapped if m in _AXIS_LETTERS]
    if len(set(known)) != len(known):
        return None
    unknown = [i for i, m in enumerate(mapped) if m == "?"]
    if unknown:
        if len(unknown) == 1 and "T" not in mapped:
            mapped[unknown[0]] = "T"
        else:
            return None
    if "Y" not in mapped or "X" not in mapped:
        return None
    return "".join(mapped)


def z_as_frames(full_axes: str, shape: Sequence[int]) -> str:
    """A z-stack without time (``"ZYX"``, ``"CZYX"``...) is played along z: its ``Z`` axis
    becomes the frame axis ``T``. Other axes strings are returned unchanged."""
    if "T" not in full_axes and "Z" in full_axes and shape[full_axes.index("Z")] > 1:
        return full_axes.replace("Z", "T")
    return full_axes


def _check_axes_sizes(full_axes: str, shape: tuple[int, ...]) -> None:
    for a, n in zip(full_axes, shape, strict=True):
        if a == "Z" and n > 1 and "T" in full_axes:
            raise ValueError(
                f"The movie has a Z axis with {n} planes and a T axis (axes {full_axes!r}, shape "
                f"{_shape_str(shape)}): a frame source plays one axis. Follow 3-D cells through "
                f"time with napari_sam2.video.volume_time.VolumeTimeSession, or "
                f"segment_movie(..., axes={full_axes!r})."
            )
        if n == 0:
            raise ValueError(f"The movie is empty (shape {_shape_str(shape)}).")
