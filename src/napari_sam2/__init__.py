"""napari-sam2: SAM 2 for microscopy time-lapses.

The public API (no Qt or napari is imported here; the napari plugin lives in
``napari_sam2._napari`` and is loaded through the manifest):

- :func:`load_model` – official SAM 2 / 2.1 checkpoints (downloaded on first use), the bundled
  ``"micro"`` model, or a checkpoint file.
- :class:`VideoSession` with :class:`MemorySettings` and :class:`FrameResult` – prompts on any
  frame, propagation through the movie, a label volume out.
- :class:`ImagePredictor` – promptable segmentation of a single image.
- :func:`segment_movie` – clicks/boxes in, a (T, H, W) label volume out, in one call.
- :func:`segment_many` – many movies on Dask distributed (the ``batch`` extra), one folder each.
- :func:`save_labels_tiff`, :func:`save_ctc`, :func:`measure` – label TIFFs, Cell Tracking
  Challenge folders, per-object measurements.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# name -> module that defines it (imported on first use, so `import napari_sam2` stays light)
_EXPORTS = {
    "load_model": "napari_sam2.weights.load",
    "SAM2Model": "napari_sam2.model.sam2",
    "SAM2Config": "napari_sam2.model.config",
    "CONFIGS": "napari_sam2.model.config",
    "VideoSession": "napari_sam2.video.session",
    "FrameResult": "napari_sam2.video.session",
    "MemorySettings": "napari_sam2.video.memory_settings",
    "ImagePredictor": "napari_sam2.predictor",
    "segment_movie": "napari_sam2.pipeline",
    "segment_many": "napari_sam2.batch.runner",
    "save_labels_tiff": "napari_sam2.io.tiff",
    "save_ctc": "napari_sam2.io.ctc",
    "measure": "napari_sam2.io.measurements",
}

__all__ = [
    "CONFIGS",
    "FrameResult",
    "ImagePredictor",
    "MemorySettings",
    "SAM2Config",
    "SAM2Model",
    "VideoSession",
    "__version__",
    "load_model",
    "measure",
    "save_ctc",
    "save_labels_tiff",
    "segment_many",
    "segment_movie",
]

if TYPE_CHECKING:  # pragma: no cover
    from .batch.runner import segment_many
    from .io.ctc import save_ctc
    from .io.measurements import measure
    from .io.tiff import save_labels_tiff
    from .model.config import CONFIGS, SAM2Config
    from .model.sam2 import SAM2Model
    from .pipeline import segment_movie
    from .predictor import ImagePredictor
    from .video.memory_settings import MemorySettings
    from .video.session import FrameResult, VideoSession
    from .weights.load import load_model


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_sam2' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
