"""napari_sam2.model."""
