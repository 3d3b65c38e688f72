"""Layer helpers of the napari plugin: which image layers can be tracked, and the layers the
plugin adds next to them (labels, click prompts, box prompts).

Naming: *layer dims* are the dimensions napari shows for a layer (an RGB layer's colour axis is
not one of them); *frame coordinates* are ``(t, y, x)`` in image pixels, the order the
:class:`~napari_sam2.video.session.VideoSession` uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ImageInfo",
    "UnsupportedLayerError",
    "inspect_image_layer",
    "label_volume_for",
    "POSITIVE_COLOR",
    "NEGATIVE_COLOR",
]

#: Face colours of click prompts (RGBA): on the object / background.
POSITIVE_COLOR = np.array([0.1, 0.9, 0.2, 1.0], dtype=np.float32)
NEGATIVE_COLOR = np.array([1.0, 0.15, 0.15, 1.0], dtype=np.float32)

#: Largest channel axis accepted for a 4-D (T, C, Y, X) layer.
MAX_CHANNELS = 8

_TIME_NAMES = {"t", "time", "frame", "frames"}
_CHANNEL_NAMES = {"c", "ch", "channel", "channels"}


class UnsupportedLayerError(ValueError):
    """The image layer cannot be tracked; the message says why and what to do instead."""


@dataclass
class ImageInfo:
    """How an image layer maps to a movie for SAM 2.

    Attributes:
        layer: the napari Image layer.
        data: the array given to the session (level 0 of a multiscale layer; never converted,
            so dask / zarr data stay lazy).
        axes: FrameSource axes of ``data``: "TYX", "TCYX" or "TYXC" (RGB).
        layer_axes: axes of the layer dims (no RGB axis): "TYX" or "TCYX".
        num_frames: T.
        frame_shape: (H, W) in pixels.
        channels: channel choices shown to the user as (label, FrameSource ``channel``) pairs;
            empty when there is nothing to choose.
    """

    layer: Any
    data: Any
    axes: str
    layer_axes: str
    num_frames: int
    frame_shape: tuple[int, int]
    channels: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def ndim(self) -> int:
        """Number of layer dims (3 or 4)."""
        return len(self.layer_axes)

    @property
    def t_axis(self) -> int:
        return self.layer_axes.index("T")

    @property
    def spatial_axes(self) -> tuple[int, int]:
        return self.layer_axes.index("Y"), self.layer_axes.index("X")

    def to_frame_coords(self, coords) -> tuple[float, float, float]:
        """Layer data coordinates (ndim,) -> (t, y, x)."""
        c = np.asarray(coords, dtype=np.float64)
        y, x = self.spatial_axes
        return float(c[self.t_axis]), float(c[y]), float(c[x])

    def to_layer_coords(self, t: float, y: float, x: float, channel: float = 0.0) -> np.ndarray:
        """(t, y, x) -> layer data coordinates (ndim,); a channel dim gets ``channel``."""
        out = np.full(self.ndim, float(channel))
        yi, xi = self.spatial_axes
        out[self.t_axis], out[yi], out[xi] = t, y, x
        return out

    def describe(self) -> str:
        h, w = self.frame_shape
        kind = {"TYX": "", "TCYX": ", channels", "TYXC": ", RGB"}[self.axes]
        return f"{self.layer.name}: {self.num_frames} frames of {h} x {w} px{kind}"


def _axis_labels(layer) -> tuple[str, ...] | None:
    """The layer's axis labels when the user set meaningful ones (not napari's "-3", "0"...)."""
    labels = getattr(layer, "axis_labels", None)
    if not labels:
        return None
    low = tuple(str(a).strip().lower() for a in labels)
    if all(a.lstrip("-").isdigit() for a in low):
        return None
    return low


def inspect_image_layer(layer) -> ImageInfo:
    """Check that an Image layer is a time-lapse SAM 2 can track and describe its layout.

    Accepted: (T, Y, X) grey, (T, Y, X, 3|4) RGB(A), and (T, C, Y, X) with a small channel axis
    (at most :data:`MAX_CHANNELS`; or any order named by the layer's axis labels, e.g.
    ``("c", "t", "y", "x")`` is refused with advice).

    Raises:
        UnsupportedLayerError: with the reason (2-D image, 4-D without a time axis, 5-D...).
    """
    from napari.layers import Image

    if not isinstance(layer, Image):
        raise UnsupportedLayerError(
            f"'{getattr(layer, 'name', layer)}' is not an Image layer; pick the movie to track"
        )
    data = layer.data[0] if layer.multiscale else layer.data
    name = layer.name
    nd = layer.ndim  # layer dims, without the RGB axis
    shape = tuple(int(n) for n in data.shape)
    if nd < 3:
        raise UnsupportedLayerError(
            f"'{name}' is a single 2-D image (shape {shape}); SAM 2 tracking needs a "
            "time-lapse (T, Y, X). Open the whole movie, or stack the frames into one layer."
        )
    if nd > 4:
        raise UnsupportedLayerError(
            f"'{name}' has {nd} dimensions (shape {shape}); use a (T, Y, X) or (T, C, Y, X) "
            "movie: pick one z-plane or a projection, and split channels "
            "(right-click the layer > Split Stack)."
        )
    labels = _axis_labels(layer)
    if layer.rgb:
        if nd != 3:
            raise UnsupportedLayerError(f"'{name}': RGB movies must be (T, Y, X, 3), got {shape}")
        channels = [("RGB", None), ("red", 0), ("green", 1), ("blue", 2)]
        return ImageInfo(layer, data, "TYXC", "TYX", shape[0], shape[1:3], channels)
    if nd == 3:
        if labels is not None and labels[0] in _CHANNEL_NAMES | {"z"}:
            raise UnsupportedLayerError(
                f"'{name}' is labelled {tuple(layer.axis_labels)}: its first axis is not time. "
                "SAM 2 tracking needs a (T, Y, X) time-lapse."
            )
        return ImageInfo(layer, data, "TYX", "TYX", shape[0], shape[1:3])
    # 4-D: (T, C, Y, X) only
    t_named = labels is not None and labels[0] in _TIME_NAMES and labels[1] in _CHANNEL_NAMES
    no_time = labels is not None and not any(a in _TIME_NAMES for a in labels)
    if no_time or (labels is not None and not t_named):
        raise UnsupportedLayerError(
            f"'{name}' is 4-D with axes {tuple(layer.axis_labels)}: only (time, channel, y, x) "
            "movies are supported. Pick one z-plane or a projection first, or split the "
            "channels (right-click the layer > Split Stack) and track a (T, Y, X) layer."
        )
    if not t_named and shape[1] > MAX_CHANNELS:
        raise UnsupportedLayerError(
            f"'{name}' is 4-D (shape {shape}) without a recognisable time axis: it may be a "
            "z-stack over time. SAM 2 tracking needs (T, Y, X), or (T, C, Y, X) with at most "
            f"{MAX_CHANNELS} channels. For 3-D cells use the 'SAM 2 3-D' widget (Plugins menu)."
        )
    channels = [(f"channel {c}", c) for c in range(shape[1])]
    return ImageInfo(layer, data, "TCYX", "TCYX", shape[0], shape[2:4], channels)


def label_volume_for(info: ImageInfo, volume: np.ndarray) -> np.ndarray:
    """The array a Labels layer shows for a (T, H, W) label volume.

    For (T, Y, X) images it is the volume itself. For (T, C, Y, X) images it is a writable
    (T, C, Y, X) view whose channel axis has stride 0, so every channel shows (and painting on
    any channel edits) the same labels.
    """
    if info.layer_axes == "TYX":
        return volume
    t, h, w = volume.shape
    c = info.data.shape[1]
    s = volume.strides
    return np.lib.stride_tricks.as_strided(
        volume, shape=(t, c, h, w), strides=(s[0], 0, s[1], s[2]), writeable=True
    )


def base_volume(labels_data: np.ndarray) -> np.ndarray:
    """Inverse of :func:`label_volume_for`: the (T, H, W) volume behind a Labels layer's data."""
    if labels_data.ndim == 3:
        return labels_data
    return labels_data[:, 0]


def rgba(color) -> np.ndarray:
    """Any colour napari returns -> (4,) float32 RGBA."""
    c = np.asarray(color, dtype=np.float32).reshape(-1)
    return c if c.size == 4 else np.concatenate([c[:3], [1.0]]).astype(np.float32)


def add_outline_layer(viewer, info: ImageInfo, name: str, color, width_div: float, opacity: float):
    """A 2-D Shapes layer of unfilled outlines over ``info``'s image (its scale and translate),
    edges about 1/``width_div`` of the frame wide, without taking the active layer away from
    where the user was clicking."""
    layers = viewer.layers
    active = layers.selection.active
    img = info.layer
    layer = viewer.add_shapes(
        None,
        ndim=2,
        name=name,
        scale=tuple(img.scale)[-2:],
        translate=tuple(img.translate)[-2:],
        edge_width=max(1.0, min(info.frame_shape) / width_div),
        edge_color=color,
        face_color=[0, 0, 0, 0],
        opacity=opacity,
    )
    if active is not None and active in layers:
        layers.selection.active = active
    return layer
