"""napari_sam2._napari."""
