"""The label TIFF a command-line run writes: streamed to disk frame by frame, then moved onto
the output path, or saved to a fallback place when that fails.

The label volume is a memory-mapped label TIFF (``NAME.partial.tif`` beside the output) from
the start, so memory use does not grow with the movie's length and every finished frame is on
disk even if the process is killed. At the end the file is renamed onto the output path; if
that fails, the labels are saved beside the input movie or in the temporary folder
(:func:`~napari_sam2.io.outputs.save_with_fallback`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from ..io.outputs import fallback_paths, save_with_fallback

__all__ = ["LabelOutput"]


class LabelOutput:
    """A (T, H, W) label volume on its way to a label TIFF.

    Args:
        out: the output label TIFF the user asked for.
        pixel_size: (y, x) micrometres to record, or None.
        movie: the input movie's path (the first fallback place is beside it), or None.

    Attributes:
        partial: the file holding the volume until :meth:`finish`.
        volume: the memory-mapped volume (after :meth:`create`), or an array of
            :attr:`partial` made elsewhere (e.g. ``segment_movie(labels_path=partial)``).
    """

    def __init__(
        self,
        out: str | os.PathLike,
        pixel_size: tuple[float, float] | None = None,
        movie: str | os.PathLike | None = None,
    ) -> None:
        self.out = Path(out)
        self.partial = self.out.with_name(f"{self.out.stem}.partial{self.out.suffix or '.tif'}")
        self.pixel_size = pixel_size
        self._movie = movie
        self.volume: np.ndarray | None = None

    def create(self, shape: tuple[int, int, int], max_id: int = 1) -> np.ndarray:
        """Create :attr:`volume`, zeros of ``shape`` (T, H, W), uint32 when ``max_id`` (the
        largest id known now) exceeds 65,535, else uint16."""
        from ..video._disk_volume import new_label_volume

        dtype = np.uint32 if max_id > 65535 else np.uint16
        self.volume = new_label_volume(shape, dtype, self.partial, pixel_size=self.pixel_size)
        return self.volume

    def finish(self, labels: np.ndarray) -> tuple[Path, OSError | None]:
        """Put ``labels`` (normally :attr:`volume`) at the output path.

        Returns:
            (the path written, the error that prevented writing the output path, or None).

        Raises:
            OSError: not even a fallback place could be written (the labels are still in
                :attr:`partial` when that file could be created).
        """
        from ..io.tiff import save_labels_tiff
        from ..video._disk_volume import release_pages

        streamed = labels is self.volume
        if streamed:
            release_pages(self.volume)  # flush

        def write(target: Path) -> None:
            if streamed and target == self.out:
                os.replace(self.partial, target)
            else:
                save_labels_tiff(target, labels, pixel_size=self.pixel_size)

        written, err = save_with_fallback(write, self.out, fallback_paths(self.out, self._movie))
        if written != self.out or not streamed:
            self.discard()
        return written, err

    def discard(self) -> None:
        """Delete the partial file (nothing worth keeping, or saved elsewhere)."""
        with contextlib.suppress(OSError):
            self.partial.unlink()
