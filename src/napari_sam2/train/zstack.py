"""Synthetic fluorescence z-stacks and 3-D + time movies of nuclei, with exact labels.

Nuclei are axis-aligned ellipsoids (radii in voxels, ``rz`` shrunk by the z anisotropy) packed
so that neighbours touch: each voxel belongs to the ellipsoid it lies deepest in (smallest
normalised distance), so touching nuclei share a flat boundary and labels are exact. Seen slice
by slice along z, a nucleus grows, peaks at its central slice, shrinks and vanishes, which is
what a model propagating along z must learn to follow and to end.

:func:`make_zstack` draws one (Z, Y, X) stack; :func:`make_zstack_movie` a (T, Z, Y, X) movie
of nuclei drifting in 3-D, some of which divide (two daughters with new ids, the mother ends),
with the lineage for Cell Tracking Challenge ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

__all__ = ["Nucleus", "ZStack", "make_zstack", "make_zstack_movie", "render_nuclei"]


@dataclass
class Nucleus:
    """One ellipsoidal nucleus.

    Attributes:
        obj_id: label value (>= 1).
        centre: (z, y, x) in voxels.
        radii: (rz, ry, rx) in voxels.
        brightness: mean intensity in [0, 1].
    """

    obj_id: int
    centre: np.ndarray
    radii: np.ndarray
    brightness: float


@dataclass
class ZStack:
    """A synthetic stack or 3-D movie.

    Attributes:
        image: float32 intensities in [0, 1], (Z, Y, X) or (T, Z, Y, X).
        labels: uint16 exact labels of the same shape (0 = background).
        voxel_size: (z, y, x) voxel size in micrometres.
        lineage: {daughter_id: mother_id} divisions (movies only).
    """

    image: np.ndarray
    labels: np.ndarray
    voxel_size: tuple[float, float, float]
    lineage: dict[int, int] = field(default_factory=dict)


def render_nuclei(
    shape: tuple[int, int, int], nuclei: list[Nucleus], rng: np.random.Generator, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Draw nuclei into a (Z, Y, X) stack.

    Args:
        shape: (Z, Y, X) in voxels.
        nuclei: the nuclei to draw.
        rng: random generator (texture and noise).
        noise: standard deviation of the Gaussian noise added to [0, 1] intensities.

    Returns:
        (image float32 (Z, Y, X) in [0, 1], labels uint16 (Z, Y, X)).
    """
    depth = np.full(shape, np.inf, np.float32)
    labels = np.zeros(shape, np.uint16)
    signal = np.zeros(shape, np.float32)
    for n in nuclei:
        lo = np.maximum(np.floor(n.centre - n.radii).astype(int), 0)
        hi = np.minimum(np.ceil(n.centre + n.radii).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        zz, yy, xx = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        d = (
            ((zz - n.centre[0]) / n.radii[0]) ** 2
            + ((yy - n.centre[1]) / n.radii[1]) ** 2
            + ((xx - n.centre[2]) / n.radii[2]) ** 2
        ).astype(np.float32)
        box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        win = (d < 1.0) & (d < depth[box])
        depth[box][win] = d[win]
        labels[box][win] = n.obj_id
        # brighter centre, dimmer rim (chromatin-like falloff)
        signal[box][win] = n.brightness * (1.0 - 0.35 * d[win])
    texture = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.5)
    image = 0.08 + signal * (1.0 + 0.6 * texture)
    image = ndimage.gaussian_filter(image, (0.6, 1.0, 1.0))  # optics: less blur along z
    image += rng.normal(0.0, noise, shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32), labels


def _place(
    shape: tuple[int, int, int],
    count: int,
    radius: tuple[float, float],
    z_scale: float,
    rng: np.random.Generator,
    first_id: int = 1,
) -> list[Nucleus]:
    """Nuclei inside the stack, each new one touching an earlier one when it can."""
    out: list[Nucleus] = []
    size = np.asarray(shape, float)
    for _ in range(count * 40):
        if len(out) == count:
            break
        r = rng.uniform(*radius)
        ryx = np.maximum(r * rng.uniform(0.8, 1.0, 2), radius[0])
        radii = np.array([r * z_scale, ryx[0], ryx[1]])
        if out and rng.random() < 0.7:  # touch a neighbour: centre at the sum of the radii
            other = out[rng.integers(len(out))]
            v = rng.normal(size=3) * np.array([0.3, 1.0, 1.0])
            v /= np.linalg.norm(v / np.array([z_scale, 1.0, 1.0])) + 1e-9
            centre = other.centre + v * (other.radii[1] + radii[1]) * 0.95
        else:
            centre = rng.uniform(0, 1, 3) * size
        # the whole nucleus ends inside the stack (z margin of one slice), so its end is seen
        margin = radii + np.array([1.0, 1.0, 1.0])
        if np.any(centre < margin) or np.any(centre > size - 1 - margin):
            continue
        clash = False
        for o in out:
            gap = np.linalg.norm((centre - o.centre) / ((radii + o.radii) / 2))
            if gap < 1.7:  # allow touching, not engulfing
                clash = True
                break
        if not clash:
            out.append(Nucleus(first_id + len(out), centre, radii, float(rng.uniform(0.5, 0.9))))
    return out


def make_zstack(
    shape: tuple[int, int, int] = (40, 128, 128),
    count: int = 6,
    radius: tuple[float, float] = (8.0, 30.0),
    z_scale: float = 0.5,
    noise: float = 0.03,
    seed: int = 0,
) -> tuple[ZStack, list[Nucleus]]:
    """One synthetic z-stack of touching ellipsoidal nuclei.

    Args:
        shape: (Z, Y, X) in voxels.
        count: nuclei to place (fewer when they do not fit).
        radius: (min, max) y/x radius in voxels.
        z_scale: z radius / y-x radius: the anisotropy (0.5 = z voxels twice as deep as wide).
        noise: Gaussian noise on [0, 1] intensities.
        seed: random seed.

    Returns:
        The stack (voxel size (0.5 / z_scale, 0.5, 0.5) µm) and its nuclei.
    """
    rng = np.random.default_rng(seed)
    nuclei = _place(shape, count, radius, z_scale, rng)
    image, labels = render_nuclei(shape, nuclei, rng, noise)
    return ZStack(image, labels, (0.5 / z_scale, 0.5, 0.5)), nuclei


def make_zstack_movie(
    shape: tuple[int, int, int] = (24, 96, 96),
    frames: int = 20,
    count: int = 4,
    radius: tuple[float, float] = (9.0, 14.0),
    z_scale: float = 0.5,
    step: float = 1.5,
    divisions: int = 1,
    noise: float = 0.03,
    seed: int = 0,
) -> ZStack:
    """A (T, Z, Y, X) movie of nuclei drifting in 3-D; ``divisions`` of them divide.

    A dividing mother ends at its division frame; two daughters (new ids, each about 0.8 of the
    mother's radii) start the frame after, side by side along y-x, and move apart.

    Args:
        shape: (Z, Y, X) of each timepoint in voxels.
        frames: number of timepoints T.
        count: nuclei at the start.
        radius: (min, max) y/x radius in voxels.
        z_scale: z radius / y-x radius.
        step: drift per timepoint in y-x voxels (z drift is scaled by ``z_scale``).
        divisions: how many of the first nuclei divide (between 1/3 and 2/3 of the movie).
        noise: Gaussian noise on [0, 1] intensities.
        seed: random seed.

    Returns:
        The movie, its labels and lineage ({daughter: mother}).
    """
    rng = np.random.default_rng(seed)
    alive = _place(shape, count, radius, z_scale, rng)
    next_id = max((n.obj_id for n in alive), default=0) + 1
    split_at = {
        n.obj_id: int(rng.integers(frames // 3, 2 * frames // 3 + 1))
        for n in alive[: min(divisions, len(alive))]
    }
    velocity = {n.obj_id: rng.normal(0, step, 3) * np.array([z_scale, 1, 1]) for n in alive}
    lineage: dict[int, int] = {}
    size = np.asarray(shape, float)
    image = np.zeros((frames, *shape), np.float32)
    labels = np.zeros((frames, *shape), np.uint16)
    for t in range(frames):
        image[t], labels[t] = render_nuclei(shape, alive, rng, noise)
        nxt: list[Nucleus] = []
        for n in alive:
            if split_at.get(n.obj_id) == t:
                axis = rng.normal(size=3) * np.array([0.0, 1.0, 1.0])
                axis /= np.linalg.norm(axis) + 1e-9
                for sign in (-1.0, 1.0):
                    radii = n.radii * 0.8
                    d = Nucleus(
                        next_id, n.centre + sign * axis * radii[1], radii, n.brightness
                    )
                    velocity[next_id] = sign * axis * step * 0.7
                    lineage[next_id] = n.obj_id
                    next_id += 1
                    nxt.append(d)
                continue
            v = 0.7 * velocity[n.obj_id] + rng.normal(0, step * 0.4, 3) * np.array([z_scale, 1, 1])
            centre = n.centre + v
            low, high = n.radii + 1.0, size - 2.0 - n.radii
            bounce = (centre < low) | (centre > high)
            v[bounce] *= -1
            velocity[n.obj_id] = v
            n.centre = np.clip(centre, low, high)
            nxt.append(n)
        alive = nxt
    return ZStack(image, labels, (0.5 / z_scale, 0.5, 0.5), lineage)
