"""Synthetic microscopy time-lapses with exact ground truth.

:func:`make_movie` simulates a population of cells (fluorescent nuclei, phase-contrast cells or
rod-shaped phase-contrast bacteria) that move, rotate, deform, divide and cross the field of
view, and renders a (T, H, W) movie together with exact (T, H, W) track labels and a Cell
Tracking Challenge style lineage table.

How a frame is made:

1. **Geometry.** Every cell is an ellipse whose boundary is perturbed by a few slowly varying
   Fourier harmonics (nuclei, phase) or a capsule (bacteria). Each cell gets a normalised
   radial distance ``q`` (``q < 1`` inside) on its bounding box; a pixel belongs to the cell
   with the smallest ``q``, so overlapping cells are split along a seam and every pixel has
   exactly one id. Only the largest connected piece of each cell is kept.
2. **Intensity.** The noise-free image is computed from the label image only (distance to the
   cell's own boundary, distance to the nearest cell, a texture sampled in the cell's own
   rotating frame), so every bright or dark structure in the movie is exactly where the labels
   say it is.
3. **Imaging.** Smooth uneven illumination, exponential photobleaching, Gaussian PSF blur,
   Poisson shot noise plus Gaussian read noise, then an affine camera response into a
   realistic part of the uint8 or uint16 range.

Cells that are visible on fewer than a handful of pixels are removed for good (and never get
an id if they were not yet visible), so every track is contiguous in time. Division follows the
CTC convention: the mother's track ends at frame ``t - 1`` and both daughters start at ``t``
with the mother as parent.

Units: lengths in pixels, times in frames, angles in radians.

Code: the parameters (:class:`~napari_sam2.train.synthetic_config.SyntheticConfig`) in
``synthetic_config.py``, geometry and cell dynamics in ``_simulate.py``, rendering and imaging in
``_render.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage

from ._render import _illumination_field, _render, _shot_noise, _texture_tile
from ._simulate import _Simulator
from .synthetic_config import _CAMERA, _FULL_SCALE, SyntheticConfig

__all__ = ["SyntheticMovie", "make_movie"]


@dataclass
class SyntheticMovie:
    """A synthetic time-lapse and its exact ground truth.

    Attributes:
        movie: (T, H, W) image in ``config.dtype``.
        labels: (T, H, W) uint16; 0 = background, otherwise the track id (consistent over
            time; a daughter gets a new id).
        lineage: ``{track_id: (start_frame, end_frame, parent_id)}``, frames inclusive,
            ``parent_id`` 0 when the track has no parent (CTC ``res_track.txt`` convention).
        config: the fully resolved configuration that produced the movie.
    """

    movie: np.ndarray
    labels: np.ndarray
    lineage: dict[int, tuple[int, int, int]]
    config: SyntheticConfig


# ----------------------------------------------------------------------------- entry point


def make_movie(config: SyntheticConfig | None = None, **overrides: object) -> SyntheticMovie:
    """Simulate and render a synthetic microscopy time-lapse with exact ground truth.

    Args:
        config: full configuration; ``None`` builds ``SyntheticConfig(**overrides)`` (so
            ``make_movie(kind="phase")`` gives the phase preset).
        **overrides: fields replacing those of ``config``. Changing ``kind`` of an existing
            config keeps its other (already resolved) values.

    Returns:
        :class:`SyntheticMovie` with ``movie`` (T, H, W) in ``config.dtype``, ``labels``
        (T, H, W) uint16 track ids and the ``lineage`` table.
    """
    if config is None:
        cfg = SyntheticConfig(**overrides)  # type: ignore[arg-type]
    else:
        values = {f.name: getattr(config, f.name) for f in fields(config)}
        values.update(overrides)
        cfg = SyntheticConfig(**values)  # type: ignore[arg-type]
    sim_ss, look_ss, noise_ss = np.random.SeedSequence(cfg.seed).spawn(3)
    sim = _Simulator(cfg, np.random.default_rng(sim_ss))
    look_rng = np.random.default_rng(look_ss)
    noise_rng = np.random.default_rng(noise_ss)
    tile = _texture_tile(look_rng)
    illum = _illumination_field(look_rng, cfg.shape, cfg.illumination)
    tex_scale = 10.0 / float(np.mean(cfg.radius))
    offset, top = _CAMERA[cfg.dtype]
    adu_per_e = (top - offset) / (_FULL_SCALE[cfg.kind] * cfg.photons)
    vmax = np.iinfo(cfg.dtype).max

    T, (H, W) = cfg.n_frames, cfg.shape
    labels = np.zeros((T, H, W), np.uint16)
    movie = np.zeros((T, H, W), cfg.dtype)
    for t in range(T):
        if t > 0:
            sim.step()
        lab = sim.rasterize(t)
        labels[t] = np.concatenate([[0], sim.cells["tid"]]).astype(np.uint16)[lab]
        signal = _render(sim, lab, tile, tex_scale) * illum
        if cfg.photobleaching > 0:
            signal *= np.float32(np.exp(-cfg.photobleaching * t))
        if cfg.blur > 0:
            signal = ndimage.gaussian_filter(signal, cfg.blur, mode="reflect")
        electrons = _shot_noise(noise_rng, np.maximum(signal, 0.0) * np.float32(cfg.photons))
        if cfg.read_noise > 0:
            electrons += np.float32(cfg.read_noise) * noise_rng.standard_normal(
                (H, W), dtype=np.float32
            )
        adu = offset + adu_per_e * electrons
        movie[t] = np.clip(np.rint(adu), 0, vmax).astype(cfg.dtype)
    lineage = {tid: (s, e, p) for tid, (s, e, p) in sim.lineage.items()}
    return SyntheticMovie(movie=movie, labels=labels, lineage=lineage, config=cfg)
