"""The one check of a label array: integer values, no negative ids, the expected dimensions.

Every place that takes a label image or volume from a user (file writers, seeding from labels,
an external label volume, measurements) calls :func:`check_labels`, so the rule and its
messages are the same everywhere. numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["check_labels"]


def check_labels(
    labels: Any,
    *,
    ndims: Sequence[int] | None = None,
    shape: Sequence[int] | None = None,
    name: str = "labels",
    bool_ok: bool = False,
    check_values: bool = True,
    shape_of: str = "",
) -> Any:
    """Check a label array and return it.

    Args:
        labels: a numpy array (memory maps included), or a lazy array-like with ``dtype`` and
            ``shape`` (dask, zarr), or anything ``np.asarray`` accepts.
        ndims: allowed numbers of dimensions (None: any).
        shape: the exact shape expected, e.g. (H, W) of the frames (None: any).
        name: what the array is, for the messages ("label image", "Labels layer 'x'").
        bool_ok: accept a bool mask as one label (returned as uint8, id 1).
        check_values: scan a numpy array for negative ids (lazy arrays are never read).
        shape_of: what ``shape`` is, for the message ("the frames (H, W)").

    Returns:
        ``labels`` as a numpy array (bool converted to uint8 when ``bool_ok``); a lazy
        array-like is returned as it is.

    Raises:
        ValueError: a non-integer dtype, a number of dimensions not in ``ndims``, a shape other
            than ``shape``, or negative values; the message names ``name`` and the fix.
    """
    lazy = not isinstance(labels, np.ndarray) and hasattr(labels, "dtype") and hasattr(
        labels, "shape"
    )
    arr = labels if lazy else np.asarray(labels)
    dtype = np.dtype(arr.dtype)
    got = tuple(int(n) for n in arr.shape)
    if dtype == np.bool_ and bool_ok:
        dtype = np.dtype(np.uint8)
        if not lazy:
            arr = arr.astype(np.uint8)
    if dtype.kind not in "iu":
        raise ValueError(
            f"{name} must hold integer labels (an integer array, e.g. uint16), got {dtype}"
        )
    if ndims is not None and len(got) not in tuple(ndims):
        allowed = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{name} must have {allowed} dimensions, got shape {got}")
    want = None if shape is None else tuple(int(n) for n in shape)
    if want is not None and got != want:
        whose = f", {shape_of}" if shape_of else ""
        pixels = ""
        if min(len(got), len(want)) >= 2 and got[-2:] != want[-2:]:
            pixels = f": {got[-2]} x {got[-1]} pixels instead of {want[-2]} x {want[-1]}"
        raise ValueError(f"{name} has shape {got}, expected {want}{whose}{pixels}")
    if check_values and not lazy and dtype.kind == "i" and arr.size and arr.min() < 0:
        raise ValueError(f"{name} holds negative label values: ids are 0 (background) or >= 1")
    return arr
