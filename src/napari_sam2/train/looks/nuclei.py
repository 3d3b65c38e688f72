"""Textured fluorescent nuclei: chromatin texture, nucleoli, bright condensed mitotic cells.

Nuclei are domes with a soft edge on a dark background (autofluorescence); chromatin is a
two-scale texture fixed to each nucleus; 0-3 nucleoli per nucleus are darker (DAPI/Hoechst)
or, in some movies, brighter (nucleolar markers) spots; mitotic nuclei round up, turn up to
2.5x brighter with coarser chromatin and lose their nucleoli.
"""

from __future__ import annotations

import numpy as np

from ._base import CellFrame, Family, cell_random, sample_common


def sample(rng: np.random.Generator, scale: float) -> dict:
    """Random parameters of one nuclei movie (sizes at 256 px times ``scale``)."""
    p = sample_common(rng, scale, (8.0, 40.0), fluorescent=True)
    p.update(
        background=float(rng.uniform(0.0, 0.15)),
        edge_softness=float(rng.uniform(0.1, 0.35)),  # rim width over the mean radius
        edge_drop=float(rng.uniform(0.4, 0.95)),  # how much dimmer the edge is than the centre
        nucleoli=float(rng.uniform(0.0, 3.0)),  # mean count per nucleus
        nucleolus_contrast=float(rng.uniform(0.2, 0.7) * (1 if rng.random() < 0.25 else -1)),
        mitotic_gain=float(rng.uniform(0.5, 1.5)),
        full_scale=float(rng.uniform(1.6, 3.0)),
    )
    return p


def render(f: CellFrame, p: dict) -> np.ndarray:
    """Noise-free signal: ~``background`` outside, ~1 (x brightness) inside nuclei."""
    r_mean = 0.5 * (p["radius"][0] + p["radius"][1])
    rim = f.rim(p["edge_softness"] * r_mean)
    prof = np.sqrt(1.0 - p["edge_drop"] * rim)
    mito = f.mito
    gain = np.maximum(1.0 + p["texture"] * (1.0 + 0.8 * mito) * f.tex, 0.1)
    val = f.bright * (1.0 + p["mitotic_gain"] * mito) * prof * gain
    # Nucleoli: Gaussian spots at fixed positions in the nucleus's own (normalised) frame.
    un = f.u / np.maximum(f.a, 1.0)
    vn = f.v / np.maximum(f.b, 1.0)
    spots = np.zeros_like(val)
    count = np.floor(cell_random(f.tid, 0, f.salt) * (p["nucleoli"] + 1.0))
    for j in range(3):
        cy = cell_random(f.tid, 3 * j + 1, f.salt) - 0.5
        cx = cell_random(f.tid, 3 * j + 2, f.salt) - 0.5
        s = 0.1 + 0.12 * cell_random(f.tid, 3 * j + 3, f.salt)
        g = np.exp(-((un - 1.1 * cx) ** 2 + (vn - 1.1 * cy) ** 2) / (2 * s * s))
        spots += np.where(count > j, g, 0.0).astype(np.float32)
    val = val * np.maximum(1.0 + p["nucleolus_contrast"] * (1.0 - mito) * np.minimum(spots, 1.0),
                           0.05)
    return f.scatter(val.astype(np.float32), p["background"])


FAMILY = Family("nuclei", sample, render)
