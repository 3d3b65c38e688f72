"""3-D exports: voxel size from TIFF metadata, ImageJ hyperstack label TIFFs that keep it, and
per-object measurements with volume and z-centroid.

A voxel size is ``(z, y, x)`` in micrometres. Label volumes are (Z, Y, X) for a z-stack or
(T, Z, Y, X) for 3-D + time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .label_checks import check_labels
from .measurements import measure
from .tiff import atomic_open, read_pixel_size

__all__ = ["measure_volumes", "read_voxel_size", "save_labels_hyperstack"]

_UM = {"um": 1.0, "µm": 1.0, r"\u00b5m": 1.0, "micron": 1.0, "microns": 1.0, "nm": 1e-3, "mm": 1e3}


def _check_voxel_size(voxel_size: Any) -> tuple[float, float, float]:
    try:
        vz, vy, vx = (float(v) for v in voxel_size)
    except (TypeError, ValueError):
        raise ValueError(
            f"voxel_size must be (z, y, x) in micrometres, e.g. (2.0, 0.5, 0.5); got {voxel_size!r}"
        ) from None
    if not all(v > 0 and np.isfinite(v) for v in (vz, vy, vx)):
        raise ValueError(f"voxel_size must be positive and finite; got {voxel_size!r}")
    return vz, vy, vx


def read_voxel_size(path: str | os.PathLike) -> tuple[float, float, float] | None:
    """The (z, y, x) voxel size in micrometres stored in a TIFF, or None when it has none.

    Reads ImageJ hyperstacks (``spacing`` and ``unit`` in the description, y / x from the
    resolution tags) and OME-TIFF (``PhysicalSizeZ/Y/X``). A missing z spacing gives None.
    """
    import tifffile

    with tifffile.TiffFile(os.fspath(path)) as tif:
        ij = tif.imagej_metadata or {}
        ome = tif.ome_metadata
    if ome:
        import re

        def grab(key: str) -> float | None:
            m = re.search(rf'{key}="([0-9.eE+-]+)"', ome)
            return float(m.group(1)) if m else None

        z, y, x = grab("PhysicalSizeZ"), grab("PhysicalSizeY"), grab("PhysicalSizeX")
        if z and y and x:
            return (z, y, x)
    if "spacing" in ij:
        scale = _UM.get(str(ij.get("unit", "um")).strip().lower(), 1.0)
        yx = read_pixel_size(path)
        if yx is None:
            return None
        return (float(ij["spacing"]) * scale, yx[0], yx[1])
    return None


def save_labels_hyperstack(
    path: str | os.PathLike,
    labels: np.ndarray,
    *,
    voxel_size: tuple[float, float, float] | None = None,
) -> Path:
    """Write (Z, Y, X) or (T, Z, Y, X) labels as an ImageJ hyperstack TIFF, atomically.

    Fiji opens it with its slices and frames (axes ``"ZYX"`` / ``"TZYX"``) and, given
    ``voxel_size``, calibrated in micrometres (z spacing in the ImageJ description, y / x in the
    resolution tags). Labels are stored as uint16 (ImageJ has no uint32).

    Args:
        path: output ``.tif``.
        labels: integer labels, ids 0..65535.
        voxel_size: (z, y, x) in micrometres, or None (uncalibrated).

    Returns:
        The output path.

    Raises:
        ValueError: not 3-D / 4-D integer labels, ids above 65535, a bad voxel size.
    """
    import tifffile

    labels = check_labels(labels, ndims=(3, 4), name="hyperstack labels", bool_ok=True)
    if labels.size and labels.max() > 65535:
        raise ValueError(
            "ImageJ hyperstacks hold ids 0..65535: relabel the objects "
            "(e.g. skimage.segmentation.relabel_sequential) before saving"
        )
    axes = "ZYX" if labels.ndim == 3 else "TZYX"
    metadata: dict[str, Any] = {"axes": axes}
    kwargs: dict[str, Any] = {}
    if voxel_size is not None:
        vz, vy, vx = _check_voxel_size(voxel_size)
        metadata.update(spacing=vz, unit="um")
        kwargs["resolution"] = (1.0 / vx, 1.0 / vy)
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        tifffile.imwrite(
            fh,
            labels.astype(np.uint16),
            imagej=True,
            metadata=metadata,
            photometric="minisblack",
            **kwargs,
        )
    return path


def measure_volumes(
    labels,
    movie=None,
    *,
    voxel_size: tuple[float, float, float] | None = None,
) -> dict[str, np.ndarray]:
    """Per-object, per-timepoint 3-D measurements.

    Columns: those of :func:`napari_sam2.io.measurements.measure` on (T, Z, Y, X) labels
    (``frame``, ``obj_id``, ``area`` in voxels, ``centroid-0..2`` (z, y, x) in voxels, bbox,
    intensities with a movie), plus ``voxels`` (int64), ``z_centroid`` (slice units) and, with a
    voxel size, ``volume_um3`` and ``z_centroid_um`` / ``y_centroid_um`` / ``x_centroid_um``.

    Args:
        labels: (Z, Y, X) (one timepoint, frame 0) or (T, Z, Y, X) integer labels.
        movie: optional intensities of the same shape.
        voxel_size: (z, y, x) in micrometres.

    Returns:
        Column name -> 1-D array (for :func:`~napari_sam2.io.measurements.save_measurements_csv`).
    """
    labels = labels if getattr(labels, "ndim", np.ndim(labels)) == 4 else np.asarray(labels)[None]
    if labels.ndim != 4:
        raise ValueError(f"labels must be (Z, Y, X) or (T, Z, Y, X); got shape {labels.shape}")
    if movie is not None and getattr(movie, "ndim", np.ndim(movie)) == 3:
        movie = np.asarray(movie)[None]
    table = measure(labels, movie)
    table["voxels"] = np.asarray(table["area"]).astype(np.int64)
    table["z_centroid"] = np.asarray(table["centroid-0"], float)
    if voxel_size is not None:
        vz, vy, vx = _check_voxel_size(voxel_size)
        table["volume_um3"] = table["voxels"] * (vz * vy * vx)
        for k, (name, v) in enumerate((("z", vz), ("y", vy), ("x", vx))):
            table[f"{name}_centroid_um"] = np.asarray(table[f"centroid-{k}"], float) * v
    return table
