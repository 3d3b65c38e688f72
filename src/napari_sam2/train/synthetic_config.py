"""Parameters of the synthetic time-lapses: :class:`SyntheticConfig`, the kind presets and the
camera response (no simulation code, so the simulator and the renderer can import it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["KINDS", "SyntheticConfig"]

KINDS = ("nuclei", "phase", "bacteria")

# Kind-dependent defaults, tuned for a 256 x 256 field. Any ``None`` field of
# :class:`SyntheticConfig` is filled from here.
_PRESETS: dict[str, dict[str, object]] = {
    "nuclei": {
        "n_cells": 30,
        "radius": (8.0, 14.0),
        "aspect": (1.0, 1.5),
        "size_variation": 0.1,
        "touching": 0.15,
        "step": 1.5,
        "persistence": 0.6,
        "rotation": 0.03,
        "deformation": 0.05,
        "division_rate": 0.008,
        "enter_leave": 0.1,
        "texture": 0.25,
        "brightness_variation": 0.3,
        "photobleaching": 0.01,
        "illumination": 0.2,
        "blur": 1.0,
        "photons": 200.0,
        "read_noise": 2.0,
    },
    "phase": {
        "n_cells": 20,
        "radius": (10.0, 18.0),
        "aspect": (1.0, 1.8),
        "size_variation": 0.1,
        "touching": 0.2,
        "step": 1.5,
        "persistence": 0.7,
        "rotation": 0.03,
        "deformation": 0.12,
        "division_rate": 0.006,
        "enter_leave": 0.1,
        "texture": 0.15,
        "brightness_variation": 0.2,
        "photobleaching": 0.0,
        "illumination": 0.15,
        "blur": 0.8,
        "photons": 600.0,
        "read_noise": 2.0,
    },
    "bacteria": {
        "n_cells": 15,
        "radius": (3.0, 4.5),
        "aspect": (2.0, 3.0),
        "size_variation": 0.1,
        "touching": 0.1,
        "step": 0.5,
        "persistence": 0.5,
        "rotation": 0.01,
        "deformation": 0.0,
        "division_rate": 0.04,
        "enter_leave": 0.0,
        "texture": 0.05,
        "brightness_variation": 0.15,
        "photobleaching": 0.0,
        "illumination": 0.15,
        "blur": 0.8,
        "photons": 600.0,
        "read_noise": 2.0,
    },
}

# Camera response per dtype: (offset, top) in ADU; ``top`` is reached at the noise-free signal
# _FULL_SCALE[kind] (nuclei: ~1 interphase, up to ~3-4 for bright mitotic nuclei; phase and
# bacteria: 1 background, halos up to ~1.8).
_CAMERA = {"uint8": (8.0, 250.0), "uint16": (100.0, 4000.0)}
_FULL_SCALE = {"nuclei": 4.0, "phase": 2.0, "bacteria": 2.0}


@dataclass
class SyntheticConfig:
    """Parameters of a synthetic time-lapse.

    Fields left at ``None`` are filled from the preset of ``kind`` (defaults are tuned for a
    256 x 256 field; scale ``n_cells`` with the area for other shapes).

    Attributes:
        kind: ``"nuclei"`` (fluorescent nuclei: bright textured blobs on a dark background),
            ``"phase"`` (phase-contrast cells: dark body, bright halo, grey background) or
            ``"bacteria"`` (phase-contrast rods that elongate and divide).
        n_frames: number of frames T.
        shape: (H, W) of a frame in pixels.
        n_cells: number of cells in the first frame (before border losses).
        radius: (min, max) nominal cell radius in px, sampled uniformly per cell. For
            bacteria this is the half-width of the rod.
        aspect: (min, max) aspect ratio. Nuclei / phase: long over short axis of the ellipse.
            Bacteria: rod length over width at birth.
        size_variation: relative spread of sizes: daughter-size asymmetry, inherited-radius
            jitter and (bacteria) spread of the length added before division.
        touching: overlap allowed between neighbours before they are pushed apart, as a
            fraction of the summed radii (0 keeps a small gap between all cells). Higher
            values also start more cells in clusters, i.e. denser packing.
        step: root-mean-square random-walk displacement per frame (px).
        persistence: correlation of a cell's velocity between frames, in [0, 1).
        drift: global (dy, dx) drift of all cells in px per frame.
        rotation: standard deviation of the per-frame change of a cell's angular velocity
            (rad / frame).
        deformation: relative amplitude of the slowly varying boundary wobble (nuclei /
            phase; ignored for bacteria).
        division_rate: nuclei / phase: probability per cell per frame to enter mitosis (cells
            must have regrown to 75 % of their nominal area first). Bacteria: exponential
            elongation rate in doublings per frame; a rod divides when it has added its
            target length (adder model).
        enter_leave: expected number of cells entering across the border per frame. When it
            is 0 cells are also kept inside the field; when > 0 they may leave it.
        texture: relative amplitude of the internal texture (chromatin-like for nuclei,
            granules for phase cells and bacteria).
        brightness_variation: log-normal sigma of the per-cell brightness (nuclei) or
            optical depth (phase, bacteria).
        photobleaching: exponential decay rate of the signal per frame
            (signal * exp(-photobleaching * t)).
        illumination: relative amplitude of the smooth uneven illumination field.
        blur: PSF Gaussian sigma in px (0 disables blur).
        photons: expected photo-electrons per pixel at noise-free signal 1.0 (cell interior
            for nuclei, background for phase / bacteria); sets the shot-noise level.
        read_noise: camera read noise standard deviation in electrons.
        dtype: ``"uint8"`` or ``"uint16"``. The camera offset is 8 (uint8) or 100 (uint16)
            ADU and the brightest expected signal (bright mitotic nuclei, phase halos) maps to
            ~250 or ~4000 ADU: a realistic part of the range, not all 16 bits.
        seed: random seed; the same seed and configuration give identical arrays. Geometry
            (labels) does not depend on the imaging parameters.
    """

    kind: str = "nuclei"
    n_frames: int = 20
    shape: tuple[int, int] = (256, 256)
    n_cells: int | None = None
    radius: tuple[float, float] | None = None
    aspect: tuple[float, float] | None = None
    size_variation: float | None = None
    touching: float | None = None
    step: float | None = None
    persistence: float | None = None
    drift: tuple[float, float] = (0.0, 0.0)
    rotation: float | None = None
    deformation: float | None = None
    division_rate: float | None = None
    enter_leave: float | None = None
    texture: float | None = None
    brightness_variation: float | None = None
    photobleaching: float | None = None
    illumination: float | None = None
    blur: float | None = None
    photons: float | None = None
    read_noise: float | None = None
    dtype: str = "uint8"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for name, value in _PRESETS[self.kind].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.dtype = np.dtype(self.dtype).name
        if self.dtype not in _CAMERA:
            raise ValueError(f"dtype must be uint8 or uint16, got {self.dtype!r}")
        self.shape = (int(self.shape[0]), int(self.shape[1]))
        self.radius = (float(self.radius[0]), float(self.radius[1]))
        self.aspect = (float(self.aspect[0]), float(self.aspect[1]))
        self.drift = (float(self.drift[0]), float(self.drift[1]))
        if self.n_frames < 1 or min(self.shape) < 1 or self.n_cells < 0:
            raise ValueError("n_frames, shape must be positive and n_cells >= 0")
        if not 0 < self.radius[0] <= self.radius[1]:
            raise ValueError(f"radius must satisfy 0 < min <= max, got {self.radius}")
        if not 1.0 <= self.aspect[0] <= self.aspect[1]:
            raise ValueError(f"aspect must satisfy 1 <= min <= max, got {self.aspect}")
        if not 0.0 <= self.touching < 0.9:
            raise ValueError(f"touching must be in [0, 0.9), got {self.touching}")
        if not 0.0 <= self.persistence < 1.0:
            raise ValueError(f"persistence must be in [0, 1), got {self.persistence}")
        nonneg = (
            "size_variation",
            "step",
            "rotation",
            "deformation",
            "division_rate",
            "enter_leave",
            "texture",
            "brightness_variation",
            "photobleaching",
            "illumination",
            "blur",
            "read_noise",
        )
        for name in nonneg:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.photons <= 0:
            raise ValueError(f"photons must be > 0, got {self.photons}")
