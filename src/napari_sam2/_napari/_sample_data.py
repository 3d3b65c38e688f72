"""Sample data: synthetic time-lapses generated on the fly (no download)."""

from __future__ import annotations

from typing import Any

__all__ = ["make_bacteria_sample", "make_nuclei_sample", "make_phase_sample"]

#: Size of the samples: small enough to generate in about a second.
SAMPLE_FRAMES = 40
SAMPLE_SHAPE = (256, 256)
#: Cell sizes the bundled micro model (256-px input) was trained on: radius 14-34 px.
SAMPLE_CELLS = {
    "nuclei": {"n_cells": 16, "radius": (14.0, 24.0)},
    "phase": {"n_cells": 14, "radius": (15.0, 25.0)},
}
#: The bacteria sample: a look of :mod:`napari_sam2.train.looks` (rods 8-13 px wide, dark on a
#: bright phase-contrast background, growing and dividing in small colonies).
BACTERIA_LOOK = {"seed": 3, "n_cells": 20, "mode": "phase_dark", "touching": 0.15,
                 "division_rate": 0.03, "enter_leave": 0.0}


def _sample(kind: str, name: str, colormap: str) -> list[tuple[Any, dict, str]]:
    movie = sample_movie(kind)
    meta = {
        "name": name,
        "colormap": colormap,
        "axis_labels": ("t", "y", "x"),
        "metadata": {"napari_sam2_synthetic": kind, "n_tracks": len(movie.lineage)},
    }
    return [(movie.movie, meta, "image")]


def sample_movie(kind: str):
    """The movie behind a sample, with its exact labels and lineage (``movie`` (T, H, W) uint8,
    ``labels`` (T, H, W), ``lineage``), so its segmentation can be scored.

    Args:
        kind: "nuclei", "phase" or "bacteria".
    """
    if kind == "bacteria":
        from napari_sam2.train.looks import make_look

        look = dict(BACTERIA_LOOK)
        seed = look.pop("seed")
        return make_look("bacteria", seed, SAMPLE_SHAPE, SAMPLE_FRAMES, dtype="uint8", **look)
    from napari_sam2.train.synthetic import make_movie

    return make_movie(
        kind=kind, n_frames=SAMPLE_FRAMES, shape=SAMPLE_SHAPE, seed=2, **SAMPLE_CELLS[kind]
    )


def make_nuclei_sample() -> list[tuple[Any, dict, str]]:
    """Synthetic fluorescent nuclei (T, Y, X) uint8: moving, deforming, dividing."""
    return _sample("nuclei", "synthetic nuclei", "gray")


def make_phase_sample() -> list[tuple[Any, dict, str]]:
    """Synthetic phase-contrast cells (T, Y, X) uint8: dark bodies with bright halos."""
    return _sample("phase", "synthetic phase contrast", "gray")


def make_bacteria_sample() -> list[tuple[Any, dict, str]]:
    """Synthetic phase-contrast bacteria (T, Y, X) uint8: dark rods growing and dividing."""
    return _sample("bacteria", "synthetic bacteria", "gray")
