"""napari-sam2: SAM 2 for microscopy time-lapses (public API; imports no Qt or napari)."""

__version__ = "0.1.0"
