"""Sample data: synthetic time-lapses generated on the fly (no download)."""

from __future__ import annotations

from typing import Any

__all__ = ["make_nuclei_sample", "make_phase_sample"]

#: Size of the samples: small enough to generate in about a second.
SAMPLE_FRAMES = 40
SAMPLE_SHAPE = (256, 256)
#: Cell sizes the bundled micro model (256-px input) was trained on: radius 14-34 px.
SAMPLE_CELLS = {
    "nuclei": {"n_cells": 16, "radius": (14.0, 24.0)},
    "phase": {"n_cells": 14, "radius": (15.0, 25.0)},
}


def _sample(kind: str, name: str, colormap: str) -> list[tuple[Any, dict, str]]:
    from napari_sam2.train.synthetic import make_movie

    movie = make_movie(
        kind=kind, n_frames=SAMPLE_FRAMES, shape=SAMPLE_SHAPE, seed=2, **SAMPLE_CELLS[kind]
    )
    meta = {
        "name": name,
        "colormap": colormap,
        "axis_labels": ("t", "y", "x"),
        "metadata": {"napari_sam2_synthetic": kind, "n_tracks": len(movie.lineage)},
    }
    return [(movie.movie, meta, "image")]


def make_nuclei_sample() -> list[tuple[Any, dict, str]]:
    """Synthetic fluorescent nuclei (T, Y, X) uint8: moving, deforming, dividing."""
    return _sample("nuclei", "synthetic nuclei", "gray")


def make_phase_sample() -> list[tuple[Any, dict, str]]:
    """Synthetic phase-contrast cells (T, Y, X) uint8: dark bodies with bright halos."""
    return _sample("phase", "synthetic phase contrast", "gray")
