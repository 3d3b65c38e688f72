"""napari_sam2.io."""
