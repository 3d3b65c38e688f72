"""Phase contrast with halos, in both polarities.

``polarity = -1``: dark cell bodies (darkest at the rim) with a bright halo around them, the
classic positive phase contrast of flat cells; ``polarity = +1``: the mirror image, bright
bodies with a dark halo (thick, rounded cells or negative phase contrast). Halo strength and
width, body depth and the visibility of the nucleus vary per movie; mitotic cells round up and
flip their contrast (bright, rounded cells in positive phase contrast).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._base import CellFrame, Family, log_uniform, sample_common


def sample(rng: np.random.Generator, scale: float) -> dict:
    """Random parameters of one phase-contrast movie (sizes at 256 px x ``scale``)."""
    p = sample_common(rng, scale, (8.0, 40.0), fluorescent=False)
    p["deformation"] = float(rng.uniform(0.03, 0.25))
    p["aspect"] = (1.0, float(rng.uniform(1.1, 2.5)))
    p.update(
        polarity=int(rng.choice([-1, 1])),
        depth=float(rng.uniform(0.15, 0.75)),  # body contrast against the background
        rim_shade=float(rng.uniform(0.0, 0.6)),  # extra contrast at the cell edge
        halo=float(rng.uniform(0.2, 0.8)),
        halo_width=log_uniform(rng, 1.0, 8.0) * scale,
        nucleus=float(rng.uniform(0.0, 0.15)),  # visibility of the nucleus inside the body
        full_scale=2.0,
    )
    return p


def render(f: CellFrame, p: dict) -> np.ndarray:
    """Noise-free signal: background 1; body 1 -/+ depth, halo 1 +/- halo outside the cells."""
    mito = f.mito
    rim = f.rim(1.5 * f.scale + 0.5)
    shade = (1.0 - p["rim_shade"]) + p["rim_shade"] * rim
    body = p["depth"] * f.bright * (1.0 - 1.6 * mito) * shade * (1.0 + p["texture"] * f.tex)
    rn = (f.u / (0.45 * np.maximum(f.a, 1.0))) ** 2 + (f.v / (0.4 * np.maximum(f.b, 1.0))) ** 2
    body = body + p["nucleus"] * (1.0 - mito) * np.clip(3.0 * (1.0 - rn), 0.0, 1.0)
    # Halo: outside the cells, following the nearby cells' strength.
    amp = f.scatter((p["halo"] * (1.0 + mito) * np.sqrt(f.bright)).astype(np.float32), 0.0)
    sigma = max(p["halo_width"], 0.5)
    halo = ndimage.gaussian_filter(amp, sigma, mode="nearest")
    halo *= 2.0  # ~amp just outside a straight edge
    dev = np.where(f.lab == 0, halo, 0.0).astype(np.float32)
    dev[f.ys, f.xs] = -body
    sign = -1.0 if p["polarity"] < 0 else 1.0
    return np.maximum(1.0 - sign * dev, 0.03).astype(np.float32)


FAMILY = Family("phase", sample, render)
