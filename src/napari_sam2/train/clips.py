"""Training clips: model-ready (images, target masks) from synthetic or annotated movies.

:func:`clip_stream` draws endless clips from new random synthetic movies (the ``kinds`` of
:func:`~napari_sam2.train.synthetic.make_movie`, or the appearance ``families`` of
:mod:`napari_sam2.train.looks`); :func:`finetune_clips` cuts clips out of a user's annotated
movie. Frames are normalised exactly as the video session normalises them
(:class:`~napari_sam2.video.frames.FrameSource`), so training sees what inference sees.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..model.config import SAM2Config
from ..video.frames import FrameSource
from ..video.windows import MIN_SIDE
from .train_config import TrainConfig

__all__ = ["Clip", "clip_stream", "finetune_clips"]


@dataclass
class Clip:
    """Model-ready training clip.

    Attributes:
        images: (K, 3, S, S) normalised model input.
        targets: (K, N, S, S) float {0, 1} masks of N objects at model resolution.
    """

    images: torch.Tensor
    targets: torch.Tensor


def _to_model(
    movie: np.ndarray,
    labels: np.ndarray,
    ids: list[int],
    cfg: SAM2Config,
    windows: list[tuple[int, int, int, int]] | None = None,
) -> Clip:
    """Normalise a (K, H, W) movie like the video session does and resize masks to S x S;
    with ``windows`` (one (y0, x0, y1, x1) per frame), each frame's window instead, read as
    the automatic zoom reads it (the whole frame's normalisation, then resized)."""
    src = FrameSource(
        movie,
        axes="TYX",
        image_size=cfg.image_size,
        pixel_mean=cfg.pixel_mean,
        pixel_std=cfg.pixel_std,
        prefetch=False,
    )
    if windows is None:
        images = torch.stack([src.model_input(t) for t in range(len(movie))])
    else:
        images = torch.cat([src.window_inputs(t, [w]) for t, w in enumerate(windows)])
        labels = np.stack([lab[y0:y1, x0:x1] for lab, (y0, x0, y1, x1) in zip(labels, windows)])
    masks = torch.from_numpy(np.stack([labels == i for i in ids], axis=1)).float()  # (K, N, H, W)
    s = cfg.image_size
    if masks.shape[-2:] != (s, s):
        k, n = masks.shape[:2]
        masks = F.interpolate(
            masks.reshape(k * n, 1, *masks.shape[-2:]),
            size=(s, s),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        masks = (masks >= 0.5).float().reshape(k, n, s, s)
    return Clip(images, masks)


def _family_labels(labels: np.ndarray, lineage: dict) -> np.ndarray:
    """Relabel daughters with their clip-first ancestor, so a tracked object's target after a
    division is the union of its descendants (what tracking should follow)."""
    parent = {int(k): int(v[2]) for k, v in lineage.items()}
    present0 = set(np.unique(labels[0]).tolist()) - {0}

    def root(i: int) -> int:
        seen = 0
        while i not in present0 and parent.get(i, 0) and seen < 64:
            i, seen = parent[i], seen + 1
        return i

    ids = np.unique(labels)
    lut = np.zeros(int(ids.max()) + 1, dtype=labels.dtype)
    for i in ids.tolist():
        lut[i] = root(i) if i else 0
    return lut[labels]


def clip_stream(cfg: SAM2Config, tcfg: TrainConfig, rng: np.random.Generator) -> Iterator[Clip]:
    """Endless synthetic training clips, each cut from a new random movie.

    Args:
        cfg: model config (input size ``S``, pixel mean and std).
        tcfg: ``clip_len``, ``max_objects``, and what the movies look like: ``kinds``,
            ``radius``, ``density``, ``motion_step``, ``frame_size``, or ``families``.
        rng: draws every movie's parameters and seed, and the objects of each clip.

    Yields:
        :class:`Clip` of ``clip_len`` frames and up to ``max_objects`` objects of frame 0
        (a division's daughters keep their mother's target, see :func:`_family_labels`).
    """
    size = tcfg.frame_size or cfg.image_size
    if not 0.0 <= tcfg.window_fraction <= 1.0:
        raise ValueError(f"window_fraction must lie in [0, 1], got {tcfg.window_fraction}")
    if not tcfg.families:
        yield from _kind_stream(cfg, tcfg, size, rng)
        return
    if not 0.0 <= tcfg.kinds_fraction <= 1.0:
        raise ValueError(f"kinds_fraction must lie in [0, 1], got {tcfg.kinds_fraction}")
    looks = _look_stream(cfg, tcfg, size, rng)
    if tcfg.kinds_fraction == 0.0:
        yield from looks
        return
    kinds = _kind_stream(cfg, tcfg, size, rng)
    while True:
        yield next(kinds if rng.random() < tcfg.kinds_fraction else looks)


def _kind_stream(
    cfg: SAM2Config, tcfg: TrainConfig, size: int, rng: np.random.Generator
) -> Iterator[Clip]:
    """Endless clips from random :func:`~.synthetic.make_movie` movies of ``tcfg.kinds``
    (the kind ``"zstack"``: :func:`_zstack_frames`, slices of a z-stack as frames)."""
    from .synthetic import make_movie

    while True:
        kind = tcfg.kinds[int(rng.integers(len(tcfg.kinds)))]
        r0, r1 = tcfg.radius
        lo = float(rng.uniform(r0, (r0 + r1) / 2))
        hi = float(rng.uniform(lo + 2, r1))
        area = size * size
        n_cells = int(
            np.clip(area / (math.pi * ((lo + hi) / 2) ** 2) * rng.uniform(*tcfg.density), 2, 60)
        )
        if kind == "zstack":
            movie, labels = _zstack_frames(size, tcfg.clip_len, (lo, hi), n_cells, rng)
            clip = _movie_clip(movie, labels, {}, cfg, tcfg, rng)
            if clip is not None:
                yield clip
            continue
        overrides = dict(
            kind=kind,
            n_frames=tcfg.clip_len,
            shape=(size, size),
            n_cells=n_cells,
            seed=int(rng.integers(2**31)),
            dtype=str(rng.choice(["uint8", "uint16"])),
        )
        if kind != "bacteria":
            overrides["radius"] = (lo, hi)
        if tcfg.motion_step is not None:
            overrides["step"] = float(rng.uniform(*tcfg.motion_step))
        try:
            mv = make_movie(**overrides)
        except (TypeError, ValueError):
            overrides.pop("radius", None)
            mv = make_movie(**overrides)
        clip = _movie_clip(mv.movie, mv.labels, mv.lineage, cfg, tcfg, rng)
        if clip is not None:
            yield clip


def _zstack_frames(
    size: int, n_frames: int, radius: tuple[float, float], n_cells: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_frames`` consecutive slices (every 2nd to 5th) of a random z-stack of touching
    nuclei (:func:`~.zstack.make_zstack`), as a movie: nuclei grow, peak, shrink and vanish
    from frame to frame, which a model propagating along z must follow and then end.

    Returns:
        (movie (n_frames, size, size) uint8 or uint16, labels (n_frames, size, size) uint16).
    """
    from .zstack import make_zstack

    z_scale = float(rng.uniform(0.3, 1.0))
    stride = int(rng.integers(2, 6))
    span = (n_frames - 1) * stride + 1
    n_z = max(span, int(np.ceil(2 * radius[1] * z_scale)) + 4)
    stack, _ = make_zstack((n_z, size, size), count=max(2, n_cells // 2), radius=radius,
                           z_scale=z_scale, noise=float(rng.uniform(0.005, 0.06)),
                           seed=int(rng.integers(2**31)))
    start = int(rng.integers(0, n_z - span + 1))
    pick = slice(start, start + span, stride)
    top = float(rng.choice([255.0, float(rng.uniform(800, 60000))]))
    dtype = np.uint8 if top == 255.0 else np.uint16
    gain = float(rng.uniform(0.4, 1.0)) * top
    movie = np.clip(stack.image[pick] * gain, 0, top).astype(dtype)
    return movie, stack.labels[pick]


def _look_stream(
    cfg: SAM2Config, tcfg: TrainConfig, size: int, rng: np.random.Generator
) -> Iterator[Clip]:
    """Endless clips from random :mod:`.looks` movies of ``tcfg.families`` (size x size px)."""
    from .looks import TRAIN_SEEDS, make_look

    while True:
        family = tcfg.families[int(rng.integers(len(tcfg.families)))]
        overrides = {}
        if tcfg.motion_step is not None:
            overrides["step"] = float(rng.uniform(*tcfg.motion_step))
        # training seeds never coincide with the looks' test / validation seeds (< 2**32)
        movie_rng = np.random.default_rng(int(rng.integers(*TRAIN_SEEDS)))
        mv = make_look(family, movie_rng, (size, size), tcfg.clip_len, **overrides)
        clip = _movie_clip(mv.movie, mv.labels, mv.lineage, cfg, tcfg, rng)
        if clip is not None:
            yield clip


def _movie_clip(
    movie: np.ndarray,
    labels: np.ndarray,
    lineage: dict,
    cfg: SAM2Config,
    tcfg: TrainConfig,
    rng: np.random.Generator,
) -> Clip | None:
    """Clip of up to ``tcfg.max_objects`` random objects of frame 0 (>= 30 px), or None; with
    probability ``tcfg.window_fraction`` read through zoom windows (:func:`_zoom_windows`)."""
    labels = _family_labels(labels, lineage)
    windows = None
    if tcfg.window_fraction > 0 and rng.random() < tcfg.window_fraction:
        windows = _zoom_windows(labels, cfg, rng)
    first = labels[0]
    if windows is not None:
        y0, x0, y1, x1 = windows[0]
        first = first[y0:y1, x0:x1]
    ids, counts = np.unique(first, return_counts=True)
    keep = [(int(i), int(c)) for i, c in zip(ids, counts) if i and c >= 30]
    if not keep:
        return None
    rng.shuffle(keep)
    ids_sel = [i for i, _ in keep[: tcfg.max_objects]]
    return _to_model(movie, labels, ids_sel, cfg, windows)


def _zoom_windows(
    labels: np.ndarray, cfg: SAM2Config, rng: np.random.Generator
) -> list[tuple[int, int, int, int]] | None:
    """Square windows that follow one random object of frame 0 through the clip, as the
    automatic zoom's windows do (:mod:`napari_sam2.video.windows`): the side puts the object's
    extent at a random share of the model's input inside ``cfg.object_size_range`` (1.2 x its
    low end to 0.8 x its high end), so a small object is shown enlarged and as blurred as the
    zoom shows it; each frame's window is centred on the object's mask in that frame (the
    previous frame's centre where it is gone) plus one jitter of up to side / 8 for the clip,
    inside the frame.

    Args:
        labels: (K, H, W) ids.
        cfg: the model config (``object_size_range``).
        rng: draws the object, the share and the jitter.

    Returns:
        One (y0, x0, y1, x1) per frame, or None when the frame has no object or the object is
        too large for a window of the frame.
    """
    ids = [int(i) for i in np.unique(labels[0]) if i]
    if not ids:
        return None
    obj = ids[int(rng.integers(len(ids)))]
    ys, xs = np.nonzero(labels[0] == obj)
    extent = max(np.ptp(ys), np.ptp(xs)) + 1
    lo, hi = cfg.object_size_range
    share = float(rng.uniform(1.2 * lo, 0.8 * hi))
    h, w = labels.shape[1:3]
    side = int(round(extent / share))
    if side >= min(h, w):
        return None
    side = max(side, MIN_SIDE)
    jitter = rng.uniform(-side / 8, side / 8, 2)
    centre = np.array([ys.mean(), xs.mean()])
    windows = []
    for frame in labels:
        ys, xs = np.nonzero(frame == obj)
        if len(ys):
            centre = np.array([ys.mean(), xs.mean()])
        cy, cx = centre + jitter
        y0 = int(np.clip(round(cy - side / 2), 0, h - side))
        x0 = int(np.clip(round(cx - side / 2), 0, w - side))
        windows.append((y0, x0, y0 + side, x0 + side))
    return windows


def finetune_clips(
    movie: np.ndarray,
    labels: np.ndarray,
    cfg: SAM2Config,
    tcfg: TrainConfig,
) -> Callable[[np.random.Generator], Iterator[Clip]]:
    """Clip factory for fine-tuning on a user's annotated movie.

    Args:
        movie: (T, H, W) movie.
        labels: (T, H, W) label volume (ids consistent over time).
        cfg: model config (input size).
        tcfg: uses ``clip_len`` and ``max_objects``.

    Returns:
        A factory: called with a random generator, it yields endless :class:`Clip` of
        ``clip_len`` consecutive frames from a random start, played forward or backward, with
        up to ``max_objects`` objects of >= 10 px on the clip's first frame.

    Raises:
        ValueError: ``movie`` and ``labels`` differ in (T, H, W).
    """
    if movie.shape[:3] != labels.shape[:3]:
        raise ValueError(f"movie {movie.shape} and labels {labels.shape} differ in (T, H, W)")
    k = min(tcfg.clip_len, movie.shape[0])

    def factory(rng: np.random.Generator) -> Iterator[Clip]:
        while True:
            t0 = int(rng.integers(0, movie.shape[0] - k + 1))
            rev = bool(rng.random() < 0.5)
            sl = slice(t0, t0 + k)
            mv, lb = np.asarray(movie[sl]), np.asarray(labels[sl])
            if rev:
                mv, lb = mv[::-1].copy(), lb[::-1].copy()
            ids, counts = np.unique(lb[0], return_counts=True)
            keep = [int(i) for i, c in zip(ids, counts) if i and c >= 10]
            if not keep:
                continue
            rng.shuffle(keep)
            yield _to_model(mv, lb, keep[: tcfg.max_objects], cfg)

    return factory
