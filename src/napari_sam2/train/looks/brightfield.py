"""Brightfield and DIC-like relief: low-contrast cells seen through their thickness.

Each cell is a dome of optical thickness (0 at its boundary, seams included). Two optics,
chosen per movie:

- ``dic``: the thickness gradient along a random shear direction, so cells look like
  shadow-cast reliefs (one side bright, the other dark) on a grey background;
- ``brightfield``: slight absorption plus a defocus term (the Laplacian of the thickness), so
  cells have a faint body and a bright or dark edge ring depending on the focus side.

Contrast is low (a few to ~30 % of the background) and the background is bright (1).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._base import CellFrame, Family, sample_common


def sample(rng: np.random.Generator, scale: float) -> dict:
    """Random parameters of one brightfield / DIC movie (sizes at 256 px x ``scale``)."""
    p = sample_common(rng, scale, (10.0, 40.0), fluorescent=False)
    p["deformation"] = float(rng.uniform(0.03, 0.2))
    p["aspect"] = (1.0, float(rng.uniform(1.1, 2.2)))
    p.update(
        optics="dic" if rng.random() < 0.55 else "brightfield",
        shear=float(rng.uniform(0.0, 2.0 * np.pi)),  # DIC shear direction
        relief=float(rng.uniform(0.08, 0.35)),  # DIC edge contrast
        absorption=float(rng.uniform(0.0, 0.12)),
        defocus=float(rng.uniform(0.05, 0.3) * (1 if rng.random() < 0.5 else -1)),
        smooth=float(rng.uniform(0.8, 2.0)) * scale,  # optical smoothing of the thickness
        full_scale=1.8,
    )
    return p


def render(f: CellFrame, p: dict) -> np.ndarray:
    """Noise-free signal: background 1, cells a low-contrast relief around it."""
    thick = f.bright * f.dome() * (1.0 + 0.5 * p["texture"] * f.tex)
    h = ndimage.gaussian_filter(f.scatter(thick.astype(np.float32), 0.0), max(p["smooth"], 0.5))
    r_mean = 0.5 * (p["radius"][0] + p["radius"][1])
    if p["optics"] == "dic":
        gy, gx = np.gradient(h)
        g = np.cos(p["shear"]) * gx + np.sin(p["shear"]) * gy
        # A dome of height 1 and radius r has slopes ~1 / r: scale edges to ~``relief``.
        out = 1.0 + p["relief"] * 0.7 * r_mean * g - p["absorption"] * h
    else:
        lap = ndimage.laplace(ndimage.gaussian_filter(h, max(p["smooth"], 0.5)))
        # Curvature of the same dome ~1 / r^2: the ring contrast is ~``defocus``.
        out = 1.0 - p["absorption"] * h + p["defocus"] * 0.2 * r_mean**2 * lap
    return np.maximum(out, 0.03).astype(np.float32)


FAMILY = Family("brightfield", sample, render)
