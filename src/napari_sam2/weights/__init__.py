"""napari_sam2.weights."""
