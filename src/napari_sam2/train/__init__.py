"""napari_sam2.train."""
