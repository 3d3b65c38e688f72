"""Rod-shaped bacteria in dense, growing and dividing colonies.

Rods are capsules 8-14 px wide at a 256-px frame (wide enough for the model's 64 x 64 mask
grid; the automatic zoom enlarges small real bacteria to that size). They elongate
exponentially and divide in two at an added length (adder model), pushing their neighbours
aside, so a few founders grow into packed colonies. Three modalities, chosen per movie: phase
contrast with dark rods and a bright halo, the inverted phase look (bright rods, dark halo),
and fluorescence (bright rods, brightest along the midline, on a dark background).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._base import CellFrame, Family, log_uniform, sample_common

MODES = ("phase_dark", "phase_bright", "fluorescent")


def sample(rng: np.random.Generator, scale: float) -> dict:
    """Random parameters of one bacteria movie (sizes at 256 px x ``scale``)."""
    mode = str(rng.choice(MODES, p=[0.45, 0.2, 0.35]))
    p = sample_common(rng, scale, (8.0, 40.0), fluorescent=mode == "fluorescent")
    half = float(rng.uniform(4.0, 6.5))  # half-width at 256 px
    p["radius"] = (half * scale, half * float(rng.uniform(1.0, 1.15)) * scale)
    asp = float(rng.uniform(1.3, 2.5))
    p["aspect"] = (asp, asp + float(rng.uniform(0.2, 1.0)))
    rod_area = (2 * half * scale) ** 2 * (p["aspect"][0] + 0.5) * 1.4
    coverage = float(rng.uniform(0.15, 0.75))
    p["n_cells"] = int(np.clip(round(coverage * (256.0 * scale) ** 2 / rod_area), 2, 250))
    p["touching"] = float(rng.uniform(0.05, 0.3))  # clustered start -> colonies
    p["step"] = float(3.0 * rng.uniform(0.0, 1.0) ** 2) * scale  # cells in colonies move little
    p["persistence"] = float(rng.uniform(0.2, 0.6))
    p["rotation"] = float(rng.uniform(0.0, 0.02))
    p["deformation"] = 0.0
    p["division_rate"] = log_uniform(rng, 0.02, 0.15)  # doublings per frame
    p["enter_leave"] = float(rng.choice([0.0, rng.uniform(0.05, 0.4)], p=[0.6, 0.4]))
    p["texture"] = float(rng.uniform(0.02, 0.15))
    p["brightness_variation"] = float(rng.uniform(0.03, 0.2))  # rods of a strain look alike
    p.update(
        mode=mode,
        background=float(rng.uniform(0.0, 0.12)),
        depth=float(rng.uniform(0.3, 0.85)),  # real phase-contrast rods are nearly black
        halo=float(rng.uniform(0.2, 0.8)),
        halo_width=log_uniform(rng, 0.8, 8.0) * scale,  # wide: a glow around the colony
        seam=float(rng.uniform(0.2, 0.6)),  # contrast of the seam between touching rods
        full_scale=float(rng.uniform(1.5, 2.5)) if mode == "fluorescent" else 2.0,
    )
    return p


def render(f: CellFrame, p: dict) -> np.ndarray:
    """Noise-free signal of rods (dark or bright on background 1, or bright on ~0)."""
    rim = f.rim(0.8 * f.scale + 0.4)
    across = np.minimum(np.abs(f.v) / np.maximum(f.b, 1.0), 1.0)
    tex = 1.0 + p["texture"] * f.tex
    if p["mode"] == "fluorescent":
        prof = np.sqrt(1.0 - 0.8 * across**2) * (1.0 - p["seam"] * rim)
        return f.scatter((f.bright * prof * tex).astype(np.float32), p["background"])
    body = p["depth"] * f.bright * (0.75 + 0.25 * rim) * tex
    amp = f.scatter((p["halo"] * np.sqrt(f.bright)).astype(np.float32), 0.0)
    halo = 2.0 * ndimage.gaussian_filter(amp, max(p["halo_width"], 0.5), mode="nearest")
    dev = np.where(f.lab == 0, halo, 0.0).astype(np.float32)
    # Seams between touching rods: a thin line of the halo's sign.
    dev[f.ys, f.xs] = -body + p["seam"] * p["depth"] * rim * (f.depth() < 1.5)
    sign = -1.0 if p["mode"] == "phase_dark" else 1.0
    return np.maximum(1.0 - sign * dev, 0.03).astype(np.float32)


FAMILY = Family("bacteria", sample, render, rods=True)
