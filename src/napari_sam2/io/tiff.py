"""Label TIFF export/import (ImageJ-compatible) and atomic file writing.

Labels are integer arrays with 0 as background and positive object ids, shaped
(Y, X), (T, Y, X) or (T, Z, Y, X). Pixel sizes are (y, x) in micrometres.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import tifffile

from .label_checks import check_labels

__all__ = [
    "atomic_open",
    "create_labels_tiff",
    "load_labels_tiff",
    "read_pixel_size",
    "save_labels_tiff",
]

_AXES_BY_NDIM = {2: "YX", 3: "TYX", 4: "TZYX"}
# Key under ImageJ "Properties" recording our axes, because ImageJ metadata
# cannot tell a 1-frame (T, Y, X) stack from a (Y, X) image.
_AXES_PROPERTY = "napari-sam2.axes"

# Micrometres per unit for the ImageJ "unit" strings we understand.
_UM_PER_UNIT = {
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,
    "\\u00b5m": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "mm": 1e3,
    "millimeter": 1e3,
    "cm": 1e4,
    "centimeter": 1e4,
    "m": 1e6,
    "meter": 1e6,
    "inch": 25400.0,
    "in": 25400.0,
}
# Micrometres per unit of the TIFF ResolutionUnit tag (NONE handled separately).
_UM_PER_RESUNIT = {2: 25400.0, 3: 1e4, 4: 1e3, 5: 1.0}


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "wb", *, durable: bool = True, **kwargs: Any
) -> Iterator[IO]:
    """Open a temporary file next to ``path`` and move it onto ``path`` on success.

    The data goes to a hidden temporary file in the same folder, which is flushed
    (and fsynced when ``durable``) and renamed onto ``path`` with :func:`os.replace`
    only when the ``with`` block finishes without an exception. On an exception the
    temporary file is deleted and any previous file at ``path`` is left untouched,
    so ``path`` never holds a half-written file.

    Args:
        path: Final file path.
        mode: ``"wb"`` (binary) or ``"w"`` (text); other modes are refused.
        durable: fsync the data before the rename, so that even a power loss
            cannot leave an empty file at ``path`` (costs a few ms per file;
            without it the write is still atomic with respect to errors and
            process crashes).
        **kwargs: Passed to :func:`open` (e.g. ``newline=""``, ``encoding``).

    Yields:
        The open temporary file object.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', got {mode!r}")
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # Reopened by name (not fdopen) so file.name is a path, which tifffile needs.
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give the result normal permissions.
        try:
            perm = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_UMASK
            os.chmod(tmp, perm)
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def save_labels_tiff(
    path: str | os.PathLike,
    labels: np.ndarray,
    *,
    pixel_size: tuple[float, float] | None = None,
) -> Path:
    """Write a label image as a TIFF, atomically.

    Ids up to 65535 are stored as uint16 in an ImageJ hyperstack (``imagej=True``,
    axes "YX", "TYX" or "TZYX") that Fiji/ImageJ opens with the right frames and
    slices. ImageJ cannot store uint32, so when the largest id exceeds 65535 the
    labels are written as uint32 to a standard (non-ImageJ, non-OME, non-BigTIFF)
    TIFF whose tifffile JSON description records ``{"axes": ...}``; such a file
    reads back correctly with tifffile/napari but ImageJ shows it as a plain stack.
    Files over 4 GB are not supported by this writer.

    The file is first written to a temporary file in the same folder and then
    renamed onto ``path``, so a failure never leaves a half-written TIFF there and
    any previous file is kept.

    Args:
        path: Output ``.tif`` path.
        labels: Integer array (Y, X), (T, Y, X) or (T, Z, Y, X); 0 is background,
            ids must be >= 0.
        pixel_size: Optional (y, x) pixel size in micrometres, stored in the
            XResolution/YResolution tags (pixels per micrometre with ImageJ unit
            "um" for ImageJ files; pixels per centimetre with ResolutionUnit
            CENTIMETER for uint32 files).

    Returns:
        The output path.

    Raises:
        ValueError: non-integer dtype, negative ids, unsupported ndim, or a
            non-positive pixel size.
    """
    labels = check_labels(labels, ndims=(2, 3, 4))
    max_id = int(labels.max()) if labels.size else 0
    if max_id > np.iinfo(np.uint32).max:
        raise ValueError(f"label id {max_id} does not fit in uint32")
    dtype = np.uint16 if max_id <= np.iinfo(np.uint16).max else np.uint32
    kwargs = _labels_tiff_kwargs(labels.ndim, dtype, pixel_size)
    data = labels.astype(dtype, copy=False)
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        tifffile.imwrite(fh, data, **kwargs)
    return path


def _labels_tiff_kwargs(
    ndim: int, dtype: Any, pixel_size: tuple[float, float] | None
) -> dict[str, Any]:
    """tifffile keyword arguments of a label TIFF (see :func:`save_labels_tiff`): an ImageJ
    hyperstack for uint16, a plain TIFF recording its axes for uint32."""
    axes = _AXES_BY_NDIM[ndim]
    if pixel_size is not None:
        py, px = (float(v) for v in pixel_size)
        if not (py > 0 and px > 0 and np.isfinite(py) and np.isfinite(px)):
            raise ValueError(f"pixel_size must be positive, got {pixel_size}")
    kwargs: dict[str, Any] = {"photometric": "minisblack"}
    if np.dtype(dtype) == np.uint16:
        metadata: dict[str, Any] = {"axes": axes, "Properties": {_AXES_PROPERTY: axes}}
        kwargs["imagej"] = True
        if pixel_size is not None:
            metadata["unit"] = "um"
            kwargs["resolution"] = (1.0 / px, 1.0 / py)  # pixels per um, (x, y)
    elif np.dtype(dtype) == np.uint32:
        metadata = {"axes": axes}
        if pixel_size is not None:
            metadata["unit"] = "um"
            kwargs["resolution"] = (1e4 / px, 1e4 / py)  # pixels per cm, (x, y)
            kwargs["resolutionunit"] = "CENTIMETER"
    else:
        raise ValueError(f"label TIFFs hold uint16 or uint32, not {np.dtype(dtype)}")
    kwargs["metadata"] = metadata
    return kwargs


def create_labels_tiff(
    path: str | os.PathLike,
    shape: tuple[int, ...],
    dtype: Any = np.uint16,
    *,
    pixel_size: tuple[float, float] | None = None,
) -> np.memmap:
    """Create a zero label TIFF on disk and return it memory-mapped for writing.

    The file has the format of :func:`save_labels_tiff` (an ImageJ hyperstack for uint16, a
    plain TIFF for uint32), with its pixels stored contiguously and uncompressed, so the
    returned :class:`numpy.memmap` writes straight into it: a label volume of any length then
    costs only the frames being written (see
    :func:`napari_sam2.video._label_volume.release_pages`), napari shows it directly, and
    every finished frame is already in the file if the process stops. Call ``flush()`` before
    reading the file elsewhere. The zeros are not written (a sparse file where supported).

    Args:
        path: the ``.tif`` to create (replaced if it exists).
        shape: (T, Y, X), (Y, X) or (T, Z, Y, X).
        dtype: ``np.uint16`` or ``np.uint32`` (ids above 65,535).
        pixel_size: optional (y, x) pixel size in micrometres.

    Returns:
        The read-write memory map, zeros, of ``shape`` and ``dtype``.

    Raises:
        ValueError: an unsupported shape, dtype or pixel size.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in _AXES_BY_NDIM or min(shape, default=0) < 1:
        raise ValueError(f"label volumes have 2 to 4 non-empty dims, got shape {shape}")
    kwargs = _labels_tiff_kwargs(len(shape), dtype, pixel_size)
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if "imagej" not in kwargs and nbytes > 2**32 - 2**25:
        kwargs["bigtiff"] = True
    return tifffile.memmap(os.fspath(path), shape=shape, dtype=dtype, **kwargs)


def read_pixel_size(path: str | os.PathLike) -> tuple[float, float] | None:
    """Read the (y, x) pixel size in micrometres from a TIFF's resolution tags.

    Understands ImageJ files (ResolutionUnit NONE plus an ImageJ ``unit`` such as
    "um", "micron", "nm") and standard TIFF units (inch, centimetre, and the
    millimetre/micrometre extensions).

    Args:
        path: TIFF file.

    Returns:
        (y, x) in micrometres, or None when the file has no physical pixel size
        (no resolution tags, or unit NONE without an understood ImageJ unit).
    """
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        xtag = page.tags.get("XResolution")
        ytag = page.tags.get("YResolution")
        if xtag is None:
            return None
        xres = _rational(xtag.value)
        yres = _rational(ytag.value) if ytag is not None else xres
        if not (xres > 0 and yres > 0):
            return None
        unit_tag = page.tags.get("ResolutionUnit")
        unit = int(unit_tag.value) if unit_tag is not None else 2  # TIFF default: inch
        if unit in _UM_PER_RESUNIT:
            scale = _UM_PER_RESUNIT[unit]
        else:
            ij_unit = (tif.imagej_metadata or {}).get("unit")
            if ij_unit is None:
                return None
            scale = _UM_PER_UNIT.get(str(ij_unit).strip().lower())
            if scale is None:
                return None
        return (scale / yres, scale / xres)


def _rational(value: Any) -> float:
    if isinstance(value, tuple):
        num, den = value
        return float(num) / float(den) if den else 0.0
    return float(value)


def load_labels_tiff(path: str | os.PathLike) -> np.ndarray:
    """Read a label TIFF written by :func:`save_labels_tiff` (or any label TIFF).

    Files written by :func:`save_labels_tiff` come back with the axes they were
    saved with, including length-1 frame/slice axes (a 1-frame (1, Y, X) stack
    stays 3-D). Other files are read as tifffile's first series (length-1 axes
    squeezed). Float files holding whole non-negative numbers are converted to
    an integer type.

    Args:
        path: TIFF file.

    Returns:
        Integer label array, e.g. (T, Y, X) or (T, Z, Y, X).

    Raises:
        ValueError: the file holds non-integer or negative values.
    """
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        props = (tif.imagej_metadata or {}).get("Properties") or {}
        axes = props.get(_AXES_PROPERTY) if isinstance(props, dict) else None
        if tif.is_imagej and isinstance(axes, str) and set(axes) <= set("TZYX"):
            data = series.asarray(squeeze=False)  # ImageJ order (T, Z, C, Y, X, S)
            full_axes = series.get_axes(False)
            index = tuple(
                slice(None) if ax in axes or data.shape[i] != 1 else 0
                for i, ax in enumerate(full_axes)
            )
            data = data[index]
        else:
            data = series.asarray()
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data)) or np.any(data != np.round(data)):
            raise ValueError(f"{path} does not hold integer labels (dtype {data.dtype})")
        if data.min(initial=0) < 0:
            data = data.astype(np.int64)  # refused below, with the negative-id message
        else:
            data = data.astype(np.uint32 if data.max(initial=0) > 65535 else np.uint16)
    return check_labels(data, name=str(path), bool_ok=True)
