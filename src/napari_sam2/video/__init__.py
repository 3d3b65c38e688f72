"""napari_sam2.video."""
