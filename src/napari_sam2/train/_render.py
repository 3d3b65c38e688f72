"""Rendering and imaging model behind :func:`~napari_sam2.train.synthetic.make_movie`.

The noise-free signal of a frame is computed from its label image only (:func:`_render`, with a
periodic texture tile from :func:`_texture_tile`); the imaging model adds smooth uneven
illumination (:func:`_illumination_field`) and photon shot noise (:func:`_shot_noise`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ._simulate import _TILE

if TYPE_CHECKING:  # pragma: no cover
    from ._simulate import _Simulator


def _texture_tile(rng: np.random.Generator) -> np.ndarray:
    """Periodic zero-mean, unit-variance two-scale noise, (_TILE, _TILE) float32."""
    fine = ndimage.gaussian_filter(rng.standard_normal((_TILE, _TILE)), 1.0, mode="wrap")
    coarse = ndimage.gaussian_filter(rng.standard_normal((_TILE, _TILE)), 3.0, mode="wrap")
    tile = fine / fine.std() + 0.7 * coarse / coarse.std()
    return (tile / tile.std()).astype(np.float32)


def _illumination_field(rng: np.random.Generator, shape: tuple[int, int], amp: float) -> np.ndarray:
    """Smooth multiplicative field 1 + amp * f with |f| <= 1, (H, W) float32."""
    H, W = shape
    y = np.linspace(0.0, 1.0, H, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, W, dtype=np.float32)[None, :]
    f = np.zeros((H, W), np.float32)
    for _ in range(3):
        ky, kx = rng.uniform(-1.2, 1.2, size=2)
        f += rng.uniform(0.5, 1.0) * np.cos(2 * np.pi * (ky * y + kx * x) + rng.uniform(0, 7))
    cy, cx = rng.uniform(0.3, 0.7, size=2)
    f -= 1.5 * ((y - cy) ** 2 + (x - cx) ** 2)  # vignetting
    f -= f.mean()
    f /= max(float(np.abs(f).max()), 1e-6)
    return np.maximum(1.0 + amp * f, 0.05).astype(np.float32)


def _render(sim: _Simulator, lab: np.ndarray, tile: np.ndarray, tex_scale: float) -> np.ndarray:
    """Noise-free signal of one frame, computed from the label image only.

    Args:
        sim: simulator (cell appearance and pose, rows matching ``lab``).
        lab: (H, W) int32 cell index + 1.
        tile: periodic texture tile.
        tex_scale: texture coordinate units per pixel.

    Returns:
        (H, W) float32; nuclei: ~0.04 background, ~1 cell interior; phase / bacteria: ~1
        background, darker cells, brighter halos.
    """
    cfg, c = sim.cfg, sim.cells
    nuclei, rods = cfg.kind == "nuclei", sim.rods
    out = np.full(lab.shape, 0.04 if nuclei else 1.0, np.float32)
    if len(c["tid"]) == 0:
        return out
    # Rim map: Gaussian-smoothed inner boundary pixels of every cell (pixels next to another
    # label or the background; the frame border does not count), normalised so that it is
    # ~exp(-d^2 / 2 sigma^2) at distance d (px) from a straight boundary. Seams between
    # touching cells therefore get a rim too.
    pad = np.pad(lab, 1, mode="edge")
    edge = (lab > 0) & (
        (pad[:-2, 1:-1] != lab)
        | (pad[2:, 1:-1] != lab)
        | (pad[1:-1, :-2] != lab)
        | (pad[1:-1, 2:] != lab)
    )
    sigma = max(0.25 * float(np.mean(cfg.radius)), 1.0) if nuclei else (1.0 if rods else 1.5)
    rim_map = ndimage.gaussian_filter(edge.astype(np.float32), sigma, mode="nearest")
    rim_map *= np.float32(np.sqrt(2.0 * np.pi) * sigma)
    ys, xs = np.nonzero(lab)
    k = lab[ys, xs] - 1
    rim = np.minimum(rim_map[ys, xs], 1.0)  # 1 at the boundary, -> 0 inside
    dy, dx = ys - c["cy"][k], xs - c["cx"][k]
    ct, st = np.cos(c["theta"][k]), np.sin(c["theta"][k])
    u, v = dx * ct + dy * st, dy * ct - dx * st  # cell frame (px)
    tex = ndimage.map_coordinates(
        tile,
        [v * tex_scale + c["tex"][k, 1], u * tex_scale + c["tex"][k, 0]],
        order=1,
        mode="grid-wrap",
    ).astype(np.float32)
    mito = c["mito"][k].astype(np.float32)
    if nuclei:
        # Flat-topped dome with a soft rim; mitotic nuclei are brighter with coarser chromatin.
        prof = np.sqrt(1.0 - 0.85 * rim)
        gain = 1.0 + cfg.texture * (1.0 + 0.5 * mito) * tex
        val = c["bright"][k] * (1.0 + 0.5 * mito) * prof * np.maximum(gain, 0.1)
        out[ys, xs] += val.astype(np.float32)
        return out
    # Phase contrast: dark body (darkest at the rim), bright halo outside whose strength
    # follows the nearby cells; mitotic cells round up and turn bright.
    depth = (0.5 if rods else 0.35) * c["bright"][k] * (1.0 - 1.4 * mito)
    shade = (0.8 + 0.2 * rim) if rods else (0.6 + 0.4 * rim)
    body = depth * shade * (1.0 + cfg.texture * tex)
    if not rods:
        a, b = sim._shape()
        rr = (u / (0.45 * a[k])) ** 2 + (v / (0.4 * b[k])) ** 2  # inner nucleus
        body = body + 0.1 * (1.0 - mito) * np.clip(3.0 * (1.0 - rr), 0.0, 1.0)
    amp = np.zeros(lab.shape, np.float32)
    amp[ys, xs] = ((0.5 if rods else 0.4) * (1.0 + c["mito"]) * np.sqrt(c["bright"]))[k]
    halo = ndimage.gaussian_filter(amp, 1.2 if rods else 2.0, mode="nearest")
    bg = lab == 0
    out[bg] += 2.5 * halo[bg]
    out[ys, xs] = (1.0 - body).astype(np.float32)
    return out


def _shot_noise(rng: np.random.Generator, lam: np.ndarray) -> np.ndarray:
    """Photon shot noise: Poisson samples of mean ``lam`` (electrons), float32, same shape.

    Exact below 10 electrons; above, a skew-corrected normal approximation (Cornish-Fisher:
    matches the Poisson mean, variance and skewness) that is several times faster.
    """
    out = np.empty(lam.shape, np.float32)
    low = lam < 10.0
    if low.any():
        out[low] = rng.poisson(lam[low])
    high = ~low
    if high.any():
        lh = lam[high]
        z = rng.standard_normal(lh.shape, dtype=np.float32)
        out[high] = lh + np.sqrt(lh) * z + (z * z - 1.0) / 6.0
    return out
