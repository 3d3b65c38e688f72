"""Synthetic looks of cells: one appearance family per module, one entry point.

:func:`make_look` renders a random movie of one family with exact labels and lineage. All
families share the cell geometry and dynamics of :mod:`napari_sam2.train.synthetic` (moving,
turning, deforming, dividing cells that enter and leave the field) and one imaging model
(uneven illumination, photobleaching, PSF blur, shot + read noise, camera offset and gain into
uint8 or uint16), plus unlabelled debris. Families (:data:`FAMILIES`):

- ``nuclei``: textured fluorescent nuclei with nucleoli and bright mitotic cells;
- ``cytoplasm``: cytoplasm- or membrane-stained cells with dark nuclei;
- ``phase``: phase contrast with halos, dark-body or bright-body polarity;
- ``bacteria``: rods 8-14 px wide in dense growing and dividing colonies (phase or
  fluorescence);
- ``brightfield``: brightfield or DIC-like low-contrast relief.

Everything is randomised per movie: signal-to-noise ratio, blur, illumination, bleaching,
debris, density (sparse to confluent), motion (0-8 px per frame at 256 px), divisions, cells
entering and leaving, dtype. Object radii are ~8-40 px on a 256-px frame (the bundled model's
input); on other frame sizes every length scales with min(H, W) / 256.

Example:
    >>> import numpy as np
    >>> from napari_sam2.train.looks import make_look
    >>> mv = make_look("phase", np.random.default_rng(0), (256, 256), 8)
    >>> mv.movie.shape, mv.labels.shape, mv.params["polarity"] in (-1, 1)
    ((8, 256, 256), (8, 256, 256), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .._render import _illumination_field, _texture_tile
from .._simulate import _Simulator
from ..synthetic import SyntheticMovie
from ..synthetic_config import SyntheticConfig
from . import bacteria, brightfield, cytoplasm, nuclei, phase
from ._base import GEOMETRY_KEYS, CellFrame, Debris, Family, camera, camera_range

__all__ = [
    "FAMILIES",
    "TEST_SEED0",
    "TRAIN_SEEDS",
    "VALIDATION_SEED0",
    "LookMovie",
    "eval_seed",
    "make_look",
    "sample_params",
]

#: Integer seeds of training movies: the trainer draws them from [2**32, 2**63).
TRAIN_SEEDS = (2**32, 2**63)
#: First seed of the test movies (reported once) and of the validation movies (for choosing
#: checkpoints and settings); see :func:`eval_seed`. Both ranges lie below 2**32, so they never
#: coincide with a training seed, and they are 1 000 000 apart.
TEST_SEED0 = 1_000_000
VALIDATION_SEED0 = 2_000_000

_REGISTRY: dict[str, Family] = {
    m.FAMILY.name: m.FAMILY for m in (nuclei, cytoplasm, phase, bacteria, brightfield)
}
#: Names of the appearance families, in a fixed order.
FAMILIES: tuple[str, ...] = tuple(_REGISTRY)


@dataclass
class LookMovie(SyntheticMovie):
    """A :class:`~napari_sam2.train.synthetic.SyntheticMovie` of one appearance family.

    Attributes:
        family: the family name.
        params: every random parameter of the movie (geometry, appearance, imaging), after
            ``overrides``; ``config`` holds the geometry and imaging part as a
            :class:`~napari_sam2.train.synthetic_config.SyntheticConfig` (its ``kind`` is
            ``"bacteria"`` for rods and ``"nuclei"`` for the other families' cell shapes).
    """

    family: str
    params: dict


def eval_seed(family: str, index: int, split: str = "test") -> int:
    """Seed of the ``index``-th evaluation movie of ``family`` (``split``: test / validation).

    ``TEST_SEED0`` (or ``VALIDATION_SEED0``) + 1000 x the family's position in
    :data:`FAMILIES` + ``index``; ``index`` must be in [0, 1000).
    """
    if split not in ("test", "validation"):
        raise ValueError(f"split must be 'test' or 'validation', got {split!r}")
    if not 0 <= index < 1000:
        raise ValueError(f"index must be in [0, 1000), got {index}")
    base = TEST_SEED0 if split == "test" else VALIDATION_SEED0
    return base + 1000 * FAMILIES.index(_family(family).name) + index


def sample_params(family: str, rng: np.random.Generator, shape: tuple[int, int]) -> dict:
    """The random parameters :func:`make_look` would draw first from ``rng`` (advanced).

    Args:
        family: one of :data:`FAMILIES`.
        rng: random generator.
        shape: (H, W) of a frame in pixels; sizes scale with min(H, W) / 256.
    """
    return _family(family).sample(rng, min(shape) / 256.0)


def make_look(
    family: str,
    rng: np.random.Generator | int,
    shape: tuple[int, int] = (256, 256),
    n_frames: int = 8,
    **overrides: object,
) -> LookMovie:
    """Render a random movie of one appearance family with exact ground truth.

    Args:
        family: one of :data:`FAMILIES`.
        rng: random generator (advanced by a fixed number of draws) or an integer seed; the
            same seed, shape, frame count and overrides give identical arrays.
        shape: (H, W) of a frame in pixels.
        n_frames: number of frames T.
        **overrides: values replacing the randomly drawn parameters (any key of
            ``LookMovie.params``, e.g. ``polarity=-1``, ``debris=0``, ``n_cells=5``,
            ``step=0.0``, ``dtype="uint16"``). Overriding never changes the other draws, so
            ``debris=0`` gives the same labels as the movie with debris.

    Returns:
        :class:`LookMovie`: ``movie`` (T, H, W) uint8 or uint16, ``labels`` (T, H, W) uint16
        track ids, ``lineage`` ``{id: (start, end, parent)}`` (CTC convention), ``params``.

    Raises:
        ValueError: unknown family or override, or parameters the geometry rejects.
    """
    fam = _family(family)
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    shape = (int(shape[0]), int(shape[1]))
    if n_frames < 1 or min(shape) < 8:
        raise ValueError(f"need n_frames >= 1 and frames of at least 8 x 8 px, got "
                         f"{n_frames} frames of {shape}")
    scale = min(shape) / 256.0
    p = fam.sample(rng, scale)
    unknown = sorted(set(overrides) - set(p))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for family {family!r}; "
                         f"valid: {sorted(p)}")
    p.update(overrides)
    if p["dtype"] not in ("uint8", "uint16"):
        raise ValueError(f"dtype must be 'uint8' or 'uint16', got {p['dtype']!r}")
    offset, top = camera_range(p["dtype"], p["camera_q"])
    p["offset"] = offset if p["offset"] is None else float(p["offset"])
    p["top"] = top if p["top"] is None else float(p["top"])
    sim_seed, look_seed, noise_seed, salt = (int(x) for x in rng.integers(0, 2**62, size=4))
    cfg = SyntheticConfig(
        kind="bacteria" if fam.rods else "nuclei",
        n_frames=n_frames,
        shape=shape,
        seed=sim_seed,
        dtype=p["dtype"],
        photobleaching=p["photobleaching"],
        illumination=p["illumination"],
        blur=p["blur"],
        photons=p["photons"],
        read_noise=p["read_noise"],
        **{k: p[k] for k in GEOMETRY_KEYS},  # type: ignore[arg-type]
    )
    sim = _Simulator(cfg, np.random.default_rng(sim_seed))
    look_rng = np.random.default_rng(look_seed)
    noise_rng = np.random.default_rng(noise_seed)
    tile = _texture_tile(look_rng)
    illum = _illumination_field(look_rng, shape, p["illumination"])
    # background mottle: a second texture tile stretched 2-4x (blobs of ~5-20 px)
    stretch, mottle_tile = look_rng.uniform(2.0, 4.0), _texture_tile(look_rng)
    if p["mottle"] > 0:
        yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32) / np.float32(stretch)
        mottle = ndimage.map_coordinates(mottle_tile, [yy, xx], order=1, mode="grid-wrap")
        illum = illum * np.maximum(1.0 + p["mottle"] * mottle, 0.5).astype(np.float32)
    fluorescent = bool(p["fluorescent"])
    debris = Debris.sample(look_rng, int(p["debris"]), shape, scale,
                           bright_fraction=0.7 if fluorescent else 0.35)
    tex_scale = 10.0 / max(float(np.mean(cfg.radius)), 1.0)
    salt = float(salt % 100_000)
    labels = np.zeros((n_frames, *shape), np.uint16)
    movie = np.zeros((n_frames, *shape), cfg.dtype)
    for t in range(n_frames):
        if t > 0:
            sim.step()
        lab = sim.rasterize(t)
        labels[t] = np.concatenate([[0], sim.cells["tid"]]).astype(np.uint16)[lab]
        signal = fam.render(CellFrame(sim, lab, tile, tex_scale, scale, salt), p)
        if len(debris.amp):
            bright, dark = debris.maps(t, shape)
            signal = signal * (1.0 - dark) + np.float32(0.8 if fluorescent else 1.0) * bright
        movie[t] = camera(signal, t, p, illum, p["full_scale"], noise_rng)
    lineage = {tid: (s, e, par) for tid, (s, e, par) in sim.lineage.items()}
    return LookMovie(movie=movie, labels=labels, lineage=lineage, config=cfg, family=family,
                     params=p)


def _family(name: str) -> Family:
    if name not in _REGISTRY:
        raise ValueError(f"unknown look family {name!r}; choose one of {FAMILIES}")
    return _REGISTRY[name]
