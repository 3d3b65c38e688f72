"""Cytoplasm- or membrane-stained cells with dark nuclei.

Two stains, chosen per movie:

- ``cytoplasm``: a textured body, thinner (dimmer) towards the cell edge and darker along seams
  between touching cells, with a dark, off-centre nucleus;
- ``membrane``: a bright rim along each cell's boundary (touching cells share a double rim),
  a dim interior and an even darker nucleus.

Mitotic cells round up, their cytoplasm brightens and the nucleus disappears.
"""

from __future__ import annotations

import numpy as np

from ._base import CellFrame, Family, cell_random, sample_common


def sample(rng: np.random.Generator, scale: float) -> dict:
    """Random parameters of one cytoplasm / membrane movie (sizes at 256 px x ``scale``)."""
    p = sample_common(rng, scale, (12.0, 40.0), fluorescent=True)
    p["deformation"] = float(rng.uniform(0.05, 0.25))
    p["aspect"] = (1.0, float(rng.uniform(1.2, 2.5)))
    membrane = bool(rng.random() < 0.4)
    p.update(
        stain="membrane" if membrane else "cytoplasm",
        background=float(rng.uniform(0.0, 0.12)),
        nucleus_size=float(rng.uniform(0.35, 0.6)),  # semi-axes over the cell's
        nucleus_level=float(rng.uniform(0.05, 0.45)),  # nucleus over cytoplasm brightness
        thinning=float(rng.uniform(0.0, 0.6)),  # dimming of the cytoplasm towards the edge
        seam_dark=float(rng.uniform(0.2, 0.7)),
        membrane_gain=float(rng.uniform(0.8, 2.0)),
        membrane_width=float(rng.uniform(0.8, 2.0)) * scale,
        interior=float(rng.uniform(0.1, 0.4)),  # membrane stain: interior over rim
        full_scale=float(rng.uniform(1.5, 2.5)),
    )
    return p


def render(f: CellFrame, p: dict) -> np.ndarray:
    """Noise-free signal: ~``background`` outside, cytoplasm / membrane ~1, dark nuclei."""
    mito = f.mito
    un = f.u / np.maximum(f.a, 1.0)
    vn = f.v / np.maximum(f.b, 1.0)
    cy = 0.3 * (cell_random(f.tid, 0, f.salt) - 0.5)
    cx = 0.3 * (cell_random(f.tid, 1, f.salt) - 0.5)
    rn = np.hypot(un - cx, vn - cy) / p["nucleus_size"]
    nucleus = np.clip(3.0 * (1.0 - rn), 0.0, 1.0) * (1.0 - mito)  # soft-edged, 1 inside
    body = 1.0 - (1.0 - p["nucleus_level"]) * nucleus
    tex = np.maximum(1.0 + p["texture"] * f.tex, 0.1)
    if p["stain"] == "membrane":
        rim = f.rim(p["membrane_width"])
        val = p["interior"] * body * tex + p["membrane_gain"] * rim * (0.8 + 0.2 * tex)
    else:
        rho2 = np.minimum(un * un + vn * vn, 1.0)
        thin = 1.0 - p["thinning"] * rho2
        rim = f.rim(1.5 * f.scale + 0.5)
        val = body * thin * tex * (1.0 - p["seam_dark"] * rim)
    val = f.bright * (1.0 + 0.6 * mito) * val
    return f.scatter(val.astype(np.float32), p["background"])


FAMILY = Family("cytoplasm", sample, render)
