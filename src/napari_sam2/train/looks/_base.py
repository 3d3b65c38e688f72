"""Shared machinery of the synthetic looks: per-frame cell coordinates, debris, imaging.

Every family (one module each) provides two functions:

- ``sample(rng, scale) -> dict``: the family's random parameters of one movie (geometry,
  appearance, imaging), drawn from ``rng``; ``scale`` = min(H, W) / 256, so sizes, speeds and
  blur are given for a 256-px frame (the bundled model's input) and shrink with the frame.
- ``render(frame: CellFrame, p: dict) -> np.ndarray``: the noise-free (H, W) float32 signal of
  one frame, computed from its label image only (fluorescence: ~0 background, ~1 cells;
  transmitted light: 1 background), so every structure sits where the labels say.

This module holds what all families share: :func:`sample_common` (motion, density, imaging,
debris), :class:`CellFrame` (pixel coordinates in each cell's own rotating frame, rim and depth
maps, texture), :class:`Debris` (unlabelled specks and blobs) and :func:`camera` (illumination,
photobleaching, PSF blur, shot and read noise, camera response into uint8 or uint16).

Units: lengths in pixels, times in frames, angles in radians.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .._render import _shot_noise
from .._simulate import _Simulator

__all__ = [
    "CellFrame",
    "Debris",
    "Family",
    "camera",
    "camera_range",
    "cell_random",
    "sample_common",
]

#: Geometry parameters handed to :class:`~napari_sam2.train.synthetic_config.SyntheticConfig`.
GEOMETRY_KEYS = (
    "n_cells",
    "radius",
    "aspect",
    "size_variation",
    "touching",
    "step",
    "persistence",
    "drift",
    "rotation",
    "deformation",
    "division_rate",
    "enter_leave",
    "texture",
    "brightness_variation",
)
#: Imaging parameters shared by all families.
IMAGING_KEYS = (
    "illumination",
    "mottle",
    "photobleaching",
    "blur",
    "photons",
    "read_noise",
    "dtype",
    "offset",
    "top",
    "camera_q",
    "debris",
    "full_scale",
    "fluorescent",
)


@dataclass(frozen=True)
class Family:
    """One appearance family.

    Attributes:
        name: family name (a key of :data:`~napari_sam2.train.looks.FAMILIES`).
        sample: ``(rng, scale) -> params`` of one movie.
        render: ``(CellFrame, params) -> (H, W) float32`` noise-free signal.
        rods: cells are capsules (bacteria) instead of wobbly ellipses.
    """

    name: str
    sample: Callable[[np.random.Generator, float], dict]
    render: Callable[[CellFrame, dict], np.ndarray]
    rods: bool = False


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """One sample, log-uniform on [lo, hi]."""
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def sample_common(
    rng: np.random.Generator,
    scale: float,
    radius: tuple[float, float],
    *,
    fluorescent: bool,
    cell_area: float = 0.8,
    max_cells: int = 250,
) -> dict:
    """Parameters every family randomises the same way (sizes in px at a 256-px frame x scale).

    Args:
        rng: random generator (advanced).
        scale: min(H, W) / 256.
        radius: (min, max) of the movie's smallest and largest nominal radius at 256 px; the
            movie's range is drawn inside it (lower end log-uniform, upper 1.1-1.6 x lower).
        fluorescent: fluorescence imaging (photobleaching, photon-limited) rather than
            transmitted light (bright background, many photons, no bleaching).
        cell_area: mean cell area over pi * radius^2 (sets the count for a drawn coverage).
        max_cells: cap on the number of cells.

    Returns:
        dict with the :data:`GEOMETRY_KEYS` and :data:`IMAGING_KEYS` filled in; families
        override what they need.
    """
    lo = log_uniform(rng, radius[0], radius[1] / 1.15) * scale
    hi = min(lo * rng.uniform(1.1, 1.6), radius[1] * scale)
    coverage = rng.uniform(0.04, 0.7)  # sparse .. confluent
    r_mean = 0.5 * (lo + hi)
    area = (256.0 * scale) ** 2
    n_cells = int(np.clip(round(coverage * area / (np.pi * r_mean**2 * cell_area)), 1, max_cells))
    p: dict = {
        "fluorescent": fluorescent,
        "n_cells": n_cells,
        "radius": (lo, hi),
        "aspect": (1.0, float(rng.uniform(1.05, 2.0))),
        "size_variation": float(rng.uniform(0.05, 0.25)),
        "touching": float(np.clip(0.35 * coverage + rng.uniform(-0.05, 0.15), 0.0, 0.45)),
        # 0-8 px per frame at 256 px, most movies slow
        "step": float(8.0 * rng.uniform(0.0, 1.0) ** 1.7) * scale,
        "persistence": float(rng.uniform(0.2, 0.9)),
        "drift": (0.0, 0.0),
        "rotation": float(rng.uniform(0.0, 0.06)),
        "deformation": float(rng.uniform(0.0, 0.15)),
        "division_rate": float(rng.choice([0.0, rng.uniform(0.005, 0.04)], p=[0.2, 0.8])),
        "enter_leave": float(rng.choice([0.0, rng.uniform(0.05, 0.6)], p=[0.4, 0.6])),
        "texture": float(rng.uniform(0.05, 0.4)),
        "brightness_variation": float(rng.uniform(0.05, 0.45)),
        "illumination": float(rng.uniform(0.0, 0.45)),
        # fine static mottle of the background (optics, dirt on the glass, autofluorescence)
        "mottle": float(rng.uniform(0.0, 0.05)),
        "photobleaching": float(rng.uniform(0.0, 0.06) * (rng.random() < 0.6) * fluorescent),
        "blur": float(rng.uniform(0.3, 2.2)) * scale,
        # photo-electrons at signal 1 (cells in fluorescence, background in transmitted light)
        "photons": log_uniform(rng, *((20.0, 800.0) if fluorescent else (150.0, 5000.0))),
        "read_noise": float(rng.uniform(0.5, 3.0)),  # electrons (sCMOS / EMCCD)
        "dtype": str(rng.choice(["uint8", "uint16"])),
    }
    if rng.random() < 0.25:  # stage drift
        ang = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0.0, 3.0) * scale
        p["drift"] = (float(speed * np.sin(ang)), float(speed * np.cos(ang)))
    # camera offset and top ADU: drawn as quantiles, turned into ADU for the final dtype
    p["camera_q"] = (float(rng.random()), float(rng.random()))
    p["offset"] = p["top"] = None
    # (a fixed number of draws per parameter, so parameters drawn later do not depend on scale)
    p["debris"] = int(rng.uniform(0.0, 30.0) * scale**2)
    return p


def camera_range(dtype: str, q: tuple[float, float]) -> tuple[float, float]:
    """Camera (offset, top) in ADU for ``dtype`` from two quantiles in [0, 1).

    uint8: offset 0-25, top 110-250 ADU; uint16: offset 0-600, top log-uniform from
    offset + 600 to 60 000 ADU (a realistic part of the range, rarely all 16 bits).
    """
    if np.dtype(dtype) == np.uint8:
        return 25.0 * q[0], 110.0 + 140.0 * q[1]
    offset = 600.0 * q[0]
    span = np.exp(np.log(600.0) + q[1] * (np.log(60000.0 - offset) - np.log(600.0)))
    return offset, float(offset + span)


def cell_random(tid: np.ndarray, j: int, salt: float) -> np.ndarray:
    """Deterministic pseudo-random numbers in [0, 1) per track id (same value every frame).

    Args:
        tid: integer track ids, any shape.
        j: which number of the cell (0, 1, 2, ...).
        salt: per-movie offset.
    """
    x = np.sin(tid.astype(np.float64) * 12.9898 + j * 78.233 + salt) * 43758.5453
    return x - np.floor(x)


class CellFrame:
    """Pixel coordinates of one frame's cells, in each cell's own rotating frame.

    Attributes:
        lab: (H, W) int32 cell index + 1 into ``sim.cells`` (0 = background).
        ys, xs: (P,) coordinates of the P cell pixels.
        k: (P,) cell index of each cell pixel.
        u, v: (P,) position along / across the cell's long axis, px from its centre.
        a, b: (P,) the cell's semi-axes (ellipses) or spine half-length and radius (rods), px.
        tex: (P,) zero-mean unit-variance texture, fixed to the cell (moves and turns with it).
        tid: (P,) track id of each cell pixel.
        mito: (P,) mitotic appearance in [0, 1].
        bright: (P,) per-cell brightness / optical depth (log-normal around 1).
        sim: the simulator (cell table ``sim.cells``).
        scale: min(H, W) / 256.
        salt: per-movie salt for :func:`cell_random`.
    """

    def __init__(
        self,
        sim: _Simulator,
        lab: np.ndarray,
        tile: np.ndarray,
        tex_scale: float,
        scale: float,
        salt: float,
    ):
        c = sim.cells
        self.sim, self.lab, self.scale, self.salt = sim, lab, scale, salt
        self.ys, self.xs = np.nonzero(lab)
        k = lab[self.ys, self.xs] - 1
        self.k = k
        dy, dx = self.ys - c["cy"][k], self.xs - c["cx"][k]
        ct, st = np.cos(c["theta"][k]), np.sin(c["theta"][k])
        self.u = (dx * ct + dy * st).astype(np.float32)
        self.v = (dy * ct - dx * st).astype(np.float32)
        a, b = sim._shape()
        self.a, self.b = a[k].astype(np.float32), b[k].astype(np.float32)
        self.tid = c["tid"][k]
        self.mito = c["mito"][k].astype(np.float32)
        self.bright = c["bright"][k].astype(np.float32)
        self.tex = ndimage.map_coordinates(
            tile,
            [self.v * tex_scale + c["tex"][k, 1], self.u * tex_scale + c["tex"][k, 0]],
            order=1,
            mode="grid-wrap",
        ).astype(np.float32)
        self._edge: np.ndarray | None = None
        self._depth: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the frame."""
        return self.lab.shape  # type: ignore[return-value]

    def edge(self) -> np.ndarray:
        """(H, W) bool: cell pixels next to another label or the background (not the border)."""
        if self._edge is None:
            lab = self.lab
            pad = np.pad(lab, 1, mode="edge")
            self._edge = (lab > 0) & (
                (pad[:-2, 1:-1] != lab)
                | (pad[2:, 1:-1] != lab)
                | (pad[1:-1, :-2] != lab)
                | (pad[1:-1, 2:] != lab)
            )
        return self._edge

    def rim(self, sigma: float) -> np.ndarray:
        """(P,) ~exp(-d^2 / 2 sigma^2) at distance d (px) inside a cell's boundary (1 on it).

        Seams between touching cells count as boundary, the frame border does not.
        """
        sigma = max(float(sigma), 0.5)
        m = ndimage.gaussian_filter(self.edge().astype(np.float32), sigma, mode="nearest")
        m *= np.float32(np.sqrt(2.0 * np.pi) * sigma)
        return np.minimum(m[self.ys, self.xs], 1.0)

    def depth(self) -> np.ndarray:
        """(P,) distance (px) of each cell pixel to its own cell's boundary (0.5 on the rim)."""
        if self._depth is None:
            inner = (self.lab > 0) & ~self.edge()
            d = ndimage.distance_transform_edt(inner).astype(np.float32)
            self._depth = d[self.ys, self.xs] + 0.5
        return self._depth

    def dome(self) -> np.ndarray:
        """(P,) cell thickness profile in [0, 1]: 0 at the boundary, 1 deeper than the radius."""
        x = np.minimum(self.depth() / np.maximum(self.b, 1.0), 1.0)
        return np.sqrt(1.0 - (1.0 - x) ** 2)

    def scatter(self, values: np.ndarray, background: float) -> np.ndarray:
        """(H, W) float32 image: ``values`` (P,) at the cell pixels, ``background`` elsewhere."""
        out = np.full(self.shape, background, np.float32)
        out[self.ys, self.xs] = values
        return out


@dataclass
class Debris:
    """Unlabelled specks and blobs (dust, dead cells, precipitate), some floating.

    Attributes:
        y, x: (N,) centres at frame 0, px.
        vy, vx: (N,) velocities, px per frame (0 for stuck debris).
        sy, sx: (N,) Gaussian sigmas along the blob's own axes, px.
        angle: (N,) orientation, rad.
        amp: (N,) signed amplitude; > 0 bright, < 0 dark (relative to ``level``).
    """

    y: np.ndarray
    x: np.ndarray
    vy: np.ndarray
    vx: np.ndarray
    sy: np.ndarray
    sx: np.ndarray
    angle: np.ndarray
    amp: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def sample(
        cls, rng: np.random.Generator, n: int, shape: tuple[int, int], scale: float,
        bright_fraction: float,
    ) -> Debris:
        """``n`` random items: specks (sigma ~1 px), blobs (sigma up to 4 px at 256 px)."""
        H, W = shape
        floating = rng.random(n) < 0.3
        speed = rng.uniform(0.0, 3.0, n) * scale * floating
        ang = rng.uniform(0.0, 2 * np.pi, n)
        # Blobs stay smaller than the smallest cells (radius 8 px at 256 px) and have no sharp
        # edge; specks are near the PSF size and can be bright.
        big = rng.random(n) < 0.3
        s = np.where(big, rng.uniform(1.8, 4.0, n), rng.uniform(0.6, 1.4, n)) * max(scale, 0.25)
        elong = rng.uniform(1.0, 2.0, n)
        sign = np.where(rng.random(n) < bright_fraction, 1.0, -1.0)
        amp = sign * np.where(big, rng.uniform(0.1, 0.5, n), rng.uniform(0.2, 1.0, n))
        return cls(
            y=rng.uniform(0, H, n), x=rng.uniform(0, W, n),
            vy=speed * np.sin(ang), vx=speed * np.cos(ang),
            sy=s, sx=s * elong, angle=rng.uniform(0, np.pi, n), amp=amp,
        )

    def maps(self, t: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(bright, dark) (H, W) float32 maps >= 0 of frame ``t`` (dark clipped to 0.95)."""
        H, W = shape
        bright = np.zeros(shape, np.float32)
        dark = np.zeros(shape, np.float32)
        for i in range(len(self.amp)):
            cy, cx = self.y[i] + t * self.vy[i], self.x[i] + t * self.vx[i]
            reach = 3.0 * max(self.sx[i], self.sy[i])
            y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, H)
            x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, W)
            if y0 >= y1 or x0 >= x1:
                continue
            yy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
            xx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
            ca, sa = np.float32(np.cos(self.angle[i])), np.float32(np.sin(self.angle[i]))
            uu, vv = xx * ca + yy * sa, yy * ca - xx * sa
            g = np.exp(-0.5 * ((uu / self.sx[i]) ** 2 + (vv / self.sy[i]) ** 2))
            target = bright if self.amp[i] > 0 else dark
            target[y0:y1, x0:x1] += np.float32(abs(self.amp[i])) * g.astype(np.float32)
        return bright, np.minimum(dark, 0.95)


def camera(
    signal: np.ndarray,
    t: int,
    p: dict,
    illum: np.ndarray,
    full_scale: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Image one frame: illumination, photobleaching, PSF blur, shot + read noise, camera.

    Args:
        signal: (H, W) float32 noise-free signal (debris included).
        t: frame index (photobleaching ``exp(-photobleaching * t)``).
        p: movie parameters (:data:`IMAGING_KEYS`).
        illum: (H, W) float32 multiplicative illumination field.
        full_scale: signal mapped to ``p["top"]`` ADU (brighter pixels clip).
        rng: noise generator (advanced).

    Returns:
        (H, W) array of ``p["dtype"]``.
    """
    s = signal * illum
    if p["photobleaching"] > 0:
        s *= np.float32(np.exp(-p["photobleaching"] * t))
    if p["blur"] > 0:
        s = ndimage.gaussian_filter(s, p["blur"], mode="reflect")
    electrons = _shot_noise(rng, np.maximum(s, 0.0) * np.float32(p["photons"]))
    if p["read_noise"] > 0:
        electrons += np.float32(p["read_noise"]) * rng.standard_normal(s.shape, dtype=np.float32)
    gain = (p["top"] - p["offset"]) / (full_scale * p["photons"])
    vmax = np.iinfo(p["dtype"]).max
    return np.clip(np.rint(p["offset"] + gain * electrons), 0, vmax).astype(p["dtype"])

