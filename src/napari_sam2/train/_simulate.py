"""Cell population dynamics and rasterisation for :func:`.synthetic.make_movie`.

:class:`_Simulator` moves, rotates, deforms, divides, adds and removes cells (struct-of-arrays
state, one row per live cell) and rasterises them into a (H, W) label image with exactly one
cell per pixel. Units: lengths in pixels, times in frames, angles in radians.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

if TYPE_CHECKING:  # pragma: no cover
    from .synthetic_config import SyntheticConfig

_MIN_PIXELS = 10  # a cell visible on fewer pixels is removed (its track ends)
_N_HARMONICS = 4  # boundary harmonics k = 2 .. 5 for nuclei / phase cells
_MITOSIS_FRAMES = 2  # frames a mother shows a rounded mitotic appearance before splitting
_GAP = 2.0  # px kept between cells when ``touching == 0``
_RELAX_ITERS = 8  # overlap-resolution iterations per frame
_TILE = 128  # side of the periodic texture tile
_CROSS = ndimage.generate_binary_structure(2, 1)  # 4-connectivity

# Per-cell state, one row per live cell (struct of arrays).
_FIELDS = (
    "tid",  # track id, 0 until the cell is first visible
    "parent",  # parent track id or 0
    "cy",
    "cx",  # centre (px)
    "vy",
    "vx",  # velocity (px / frame), without drift
    "theta",  # long-axis angle; axis direction is (x, y) = (cos, sin)
    "omega",  # angular velocity (rad / frame)
    "r0",  # nominal radius (ellipses) / half-width (rods), px
    "asp",  # aspect ratio (ellipses) / birth length over width (rods)
    "size",  # area factor (ellipses, nominal 1) / total rod length in px (rods)
    "ldiv",  # rods: length at which the cell divides
    "coef",  # (N, K, 2) boundary harmonics (cos, sin)
    "bright",  # brightness (nuclei) or optical depth (phase, rods)
    "tex",  # (N, 2) texture offset in the tile
    "mito",  # mitotic appearance in [0, 1]
    "countdown",  # frames until division while in mitosis, -1 otherwise
    "age",  # frames since birth
)


def _concat(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([a[k], b[k]]) for k in _FIELDS}


def _take(a: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: a[k][idx] for k in _FIELDS}


class _Simulator:
    """Cell population dynamics and rasterisation for one movie."""

    def __init__(self, cfg: SyntheticConfig, rng: np.random.Generator):
        self.cfg = cfg
        self.rng = rng
        self.rods = cfg.kind == "bacteria"
        self.H, self.W = cfg.shape
        self.confined = cfg.enter_leave == 0
        self.next_id = 1
        self.lineage: dict[int, list[int]] = {}
        # Doubling per frame: rods elongate, ellipse daughters regrow their area.
        self.growth = 2.0**cfg.division_rate
        self.cells = self._new_cells(cfg.n_cells)
        self._place_initial()
        self._relax(4 * _RELAX_ITERS)

    # ---- creation
    def _new_cells(self, n: int) -> dict[str, np.ndarray]:
        """Fresh cells with random shape/appearance, centres at 0 (caller positions them)."""
        cfg, rng = self.cfg, self.rng
        r0 = rng.uniform(*cfg.radius, size=n)
        asp = rng.uniform(*cfg.aspect, size=n)
        if self.rods:
            birth = 2.0 * r0 * asp
            size = birth * rng.uniform(1.0, 1.9, size=n)
            ldiv = np.maximum(
                2.0 * birth * (1.0 + cfg.size_variation * rng.standard_normal(n)), size * 1.05
            )
        else:
            size = rng.uniform(0.55, 1.0, size=n)
            ldiv = np.zeros(n)
        v = rng.standard_normal((n, 2)) * (cfg.step / np.sqrt(2.0))
        return {
            "tid": np.zeros(n, np.int64),
            "parent": np.zeros(n, np.int64),
            "cy": np.zeros(n),
            "cx": np.zeros(n),
            "vy": v[:, 0],
            "vx": v[:, 1],
            "theta": rng.uniform(0.0, 2.0 * np.pi, size=n),
            "omega": rng.standard_normal(n) * cfg.rotation,
            "r0": r0,
            "asp": asp,
            "size": size,
            "ldiv": ldiv,
            "coef": self._harmonics(n),
            "bright": np.exp(cfg.brightness_variation * np.clip(rng.standard_normal(n), -2, 2)),
            "tex": rng.uniform(0.0, _TILE, size=(n, 2)),
            "mito": np.zeros(n),
            "countdown": np.full(n, -1, np.int64),
            "age": rng.integers(0, 50, size=n) if n else np.zeros(0, np.int64),
        }

    def _harmonics(self, n: int) -> np.ndarray:
        """Stationary random boundary harmonics, (n, K, 2); amplitude ~ deformation / k."""
        k = np.arange(2, 2 + _N_HARMONICS, dtype=float)
        sigma = self.cfg.deformation / k  # (K,)
        return self.rng.standard_normal((n, _N_HARMONICS, 2)) * sigma[None, :, None]

    def _place_initial(self) -> None:
        c, n = self.cells, len(self.cells["tid"])
        ys = self.rng.uniform(0, self.H - 1, size=n)
        xs = self.rng.uniform(0, self.W - 1, size=n)
        # With probability ~ touching, start next to an earlier cell (clusters / colonies).
        hs, rs = self._spine()
        cluster = self.rng.random(n) < min(1.0, 2.0 * self.cfg.touching)
        for i in range(1, n):
            if cluster[i]:
                j = int(self.rng.integers(0, i))
                ang = self.rng.uniform(0, 2 * np.pi)
                d = (rs[i] + rs[j] + 0.5 * (hs[i] + hs[j])) * (1.0 - 0.5 * self.cfg.touching)
                ys[i] = ys[j] + d * np.sin(ang)
                xs[i] = xs[j] + d * np.cos(ang)
        c["cy"], c["cx"] = ys, xs
        self._confine()

    # ---- geometry
    def _shape(self) -> tuple[np.ndarray, np.ndarray]:
        """Ellipses: semi-axes (a, b). Rods: (spine half-length h, radius r). Each (N,)."""
        return self._shape_of(self.cells)

    def _shape_of(self, c: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if self.rods:
            r = c["r0"]
            return np.maximum(c["size"] / 2.0 - r, 0.0), r
        s = c["size"] * (1.0 - 0.3 * c["mito"])  # mitotic cells round up and shrink
        asp = 1.0 + (c["asp"] - 1.0) * (1.0 - c["mito"])
        return c["r0"] * np.sqrt(s * asp), c["r0"] * np.sqrt(s / asp)

    def _spine(self) -> tuple[np.ndarray, np.ndarray]:
        """Capsule approximation used for collisions: spine half-length and radius, (N,)."""
        return self._spine_of(self.cells)

    def _spine_of(self, c: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        p, q = self._shape_of(c)
        if self.rods:
            return p, q
        return p - q, q

    # ---- dynamics
    def step(self) -> None:
        """Advance the population by one frame."""
        cfg, rng = self.cfg, self.rng
        c = self.cells
        # Growth.
        c["size"] = c["size"] * self.growth
        if not self.rods:
            c["size"] = np.minimum(c["size"], 1.0)
        # Mitosis / division.
        if self.rods:
            dividing = c["size"] >= c["ldiv"]
        else:
            busy = c["countdown"] > 0
            c["countdown"][busy] -= 1
            dividing = c["countdown"] == 0
            idle = c["countdown"] < 0
            c["mito"][idle] *= 0.6
            start = idle & (c["size"] >= 0.75) & (c["age"] >= 2)
            start &= rng.random(len(start)) < cfg.division_rate
            c["countdown"][start] = _MITOSIS_FRAMES
            c["mito"][start] = 1.0
        if dividing.any():
            self._divide(np.flatnonzero(dividing))
            c = self.cells
        n = len(c["tid"])
        # Correlated random walk, rotation, drift.
        rho = cfg.persistence
        kick = np.sqrt(1.0 - rho**2) * cfg.step / np.sqrt(2.0)
        c["vy"] = rho * c["vy"] + kick * rng.standard_normal(n)
        c["vx"] = rho * c["vx"] + kick * rng.standard_normal(n)
        c["cy"] = c["cy"] + c["vy"] + cfg.drift[0]
        c["cx"] = c["cx"] + c["vx"] + cfg.drift[1]
        c["omega"] = 0.8 * c["omega"] + cfg.rotation * rng.standard_normal(n)
        c["theta"] = c["theta"] + c["omega"]
        # Boundary wobble: Ornstein-Uhlenbeck process with the stationary law of _harmonics.
        c["coef"] = 0.9 * c["coef"] + np.sqrt(1.0 - 0.81) * self._harmonics(n)
        # Slowly changing internal texture.
        c["tex"] = c["tex"] + 0.3 * rng.standard_normal((n, 2))
        c["age"] = c["age"] + 1
        if not self.confined:
            self._enter(rng.poisson(cfg.enter_leave))
        self._relax(_RELAX_ITERS)

    def _divide(self, idx: np.ndarray) -> None:
        """Replace each mother in ``idx`` by two daughters along her long axis."""
        cfg, rng = self.cfg, self.rng
        c = self.cells
        m = _take(c, idx)
        k = len(idx)
        p = self._shape()[0][idx]
        ux, uy = np.cos(m["theta"]), np.sin(m["theta"])
        frac = np.clip(0.5 + 0.25 * cfg.size_variation * rng.standard_normal(k), 0.3, 0.7)
        d1, d2 = _take(m, np.arange(k)), _take(m, np.arange(k))
        for d in (d1, d2):
            d["tid"] = np.zeros(k, np.int64)
            d["parent"] = m["tid"].copy()
            d["age"] = np.zeros(k, np.int64)
            d["countdown"] = np.full(k, -1, np.int64)
            d["r0"] = m["r0"] * (1.0 + 0.25 * cfg.size_variation * rng.standard_normal(k))
            d["asp"] = rng.uniform(*cfg.aspect, size=k)
            # Log-brightness is inherited with correlation 0.7; the population keeps its spread.
            z = np.clip(rng.standard_normal(k), -2, 2)
            d["bright"] = m["bright"] ** 0.7 * np.exp(0.714 * cfg.brightness_variation * z)
            d["tex"] = rng.uniform(0.0, _TILE, size=(k, 2))
            d["coef"] = self._harmonics(k)
            d["omega"] = np.zeros(k)
            v = rng.standard_normal((k, 2)) * (cfg.step / np.sqrt(2.0))
            d["vy"], d["vx"] = m["vy"] + v[:, 0], m["vx"] + v[:, 1]
        if self.rods:
            length = m["size"]
            l1, l2 = length * frac, length * (1.0 - frac)
            off1, off2 = -(length - l1) / 2.0, (length - l2) / 2.0
            for d, ld in ((d1, l1), (d2, l2)):
                d["size"] = ld
                d["r0"] = m["r0"] * (1.0 + 0.05 * cfg.size_variation * rng.standard_normal(k))
                added = (
                    2.0 * d["r0"] * d["asp"] * (1.0 + cfg.size_variation * rng.standard_normal(k))
                )
                d["ldiv"] = ld + np.maximum(added, 0.5 * ld)
                d["theta"] = m["theta"] + 0.05 * rng.standard_normal(k)
                d["mito"] = np.zeros(k)
        else:
            # Half the area each (up to the asymmetry), placed either side of the centre;
            # daughters start round-ish, bright and perpendicular to the division axis.
            off1, off2 = -0.5 * p, 0.5 * p
            d1["size"], d2["size"] = m["size"] * frac, m["size"] * (1.0 - frac)
            for d in (d1, d2):
                d["theta"] = m["theta"] + np.pi / 2 + 0.3 * rng.standard_normal(k)
                d["mito"] = np.full(k, 0.8)
        d1["cy"], d1["cx"] = m["cy"] + off1 * uy, m["cx"] + off1 * ux
        d2["cy"], d2["cx"] = m["cy"] + off2 * uy, m["cx"] + off2 * ux
        keep = np.ones(len(c["tid"]), bool)
        keep[idx] = False
        self.cells = _concat(_concat(_take(c, keep), d1), d2)

    def _enter(self, n: int) -> None:
        """Add ``n`` cells just inside a random border, moving inwards."""
        if n == 0:
            return
        new = self._new_cells(n)
        rng = self.rng
        H, W = self.H, self.W
        side = rng.choice(4, size=n, p=np.array([W, W, H, H], float) / (2 * (H + W)))
        depth = rng.uniform(0.3, 0.7, size=n) * new["r0"]
        along = rng.uniform(0.0, 1.0, size=n)
        cy = np.where(side == 0, depth, np.where(side == 1, H - 1 - depth, along * (H - 1)))
        cx = np.where(side == 2, depth, np.where(side == 3, W - 1 - depth, along * (W - 1)))
        vin = np.stack([(side == 0) * 1.0 - (side == 1), (side == 2) * 1.0 - (side == 3)], 1)
        new["cy"], new["cx"] = cy, cx
        new["vy"] = new["vy"] + vin[:, 0] * max(self.cfg.step, 0.5)
        new["vx"] = new["vx"] + vin[:, 1] * max(self.cfg.step, 0.5)
        # Drop newcomers that would land on a cell already there (or on each other).
        c = _concat(self.cells, new)
        hs, rs = self._spine_of(c)
        reach = (hs + rs) * (1.0 - self.cfg.touching)
        n_old = len(self.cells["tid"])
        keep = np.ones(n, bool)
        for i in range(n):
            j = n_old + i
            others = np.concatenate([np.arange(n_old), n_old + np.flatnonzero(keep[:i])])
            dist = np.hypot(c["cy"][others] - c["cy"][j], c["cx"][others] - c["cx"][j])
            keep[i] = not (dist < reach[others] + reach[j]).any()
        self.cells = _concat(self.cells, _take(new, keep))

    def _relax(self, n_iter: int) -> None:
        """Push overlapping cells apart, with torque for elongated cells.

        Each cell is approximated by a capsule (a segment of half-length ``hs`` along its
        axis, thickened by ``rs``); for every nearby pair the closest points of the two
        segments are pushed apart until the capsules are ``gap`` px apart, or overlap by at
        most ``touching`` times the summed radii.
        """
        c = self.cells
        n = len(c["tid"])
        tol = self.cfg.touching
        if n < 2:
            self._confine()
            return
        hs, rs = self._spine()
        reach = 2.0 * float((hs + rs).max()) + _GAP
        inertia = hs**2 + rs**2
        cap = max(1.0, 0.15 * float(np.mean(self.cfg.radius)))
        for _ in range(n_iter):
            pts = np.stack([c["cy"], c["cx"]], 1)
            pairs = cKDTree(pts).query_pairs(reach, output_type="ndarray")
            if len(pairs) == 0:
                break
            i, j = pairs[:, 0], pairs[:, 1]
            ux, uy = np.cos(c["theta"]), np.sin(c["theta"])
            # Closest points c_i + s u_i and c_j + t u_j of the two segments (clamped).
            dy, dx = c["cy"][i] - c["cy"][j], c["cx"][i] - c["cx"][j]
            e = ux[i] * dx + uy[i] * dy
            f = ux[j] * dx + uy[j] * dy
            b = ux[i] * ux[j] + uy[i] * uy[j]
            den = 1.0 - b * b
            s = np.where(den > 1e-6, (b * f - e) / np.maximum(den, 1e-6), -0.5 * e)
            s = np.clip(s, -hs[i], hs[i])
            t = np.clip(f + s * b, -hs[j], hs[j])
            s = np.clip(t * b - e, -hs[i], hs[i])
            ny = c["cy"][j] + t * uy[j] - c["cy"][i] - s * uy[i]
            nx = c["cx"][j] + t * ux[j] - c["cx"][i] - s * ux[i]
            dist = np.hypot(ny, nx)
            # Crossing segments: separate across the axis of i, towards the centre of j.
            side = np.where(-(dx * -uy[i] + dy * ux[i]) >= 0, 1.0, -1.0)
            tiny = dist < 1e-6
            ny = np.where(tiny, side * ux[i], ny)
            nx = np.where(tiny, -side * uy[i], nx)
            dist = np.where(tiny, 1.0, dist)
            target = (rs[i] + rs[j]) * (1.0 - tol) if tol > 0 else rs[i] + rs[j] + _GAP
            hit = dist < target
            if tiny.any():
                hit |= tiny
            if not hit.any():
                break
            push = np.where(tiny, target, target - dist)[hit] * 0.4
            i, j, s, t = i[hit], j[hit], s[hit], t[hit]
            fy, fx = push * ny[hit] / dist[hit], push * nx[hit] / dist[hit]  # j moves by +f
            my = np.bincount(j, fy, n) - np.bincount(i, fy, n)
            mx = np.bincount(j, fx, n) - np.bincount(i, fx, n)
            # Torque about each centre: lever arm along the axis, cross product u x f.
            tq = np.bincount(j, t * (ux[j] * fy - uy[j] * fx), n) - np.bincount(
                i, s * (ux[i] * fy - uy[i] * fx), n
            )
            norm = np.hypot(my, mx)
            scale = np.minimum(1.0, cap / np.maximum(norm, 1e-9))  # limit jumps per iteration
            c["cy"] = c["cy"] + my * scale
            c["cx"] = c["cx"] + mx * scale
            c["theta"] = c["theta"] + np.clip(tq / inertia, -0.2, 0.2)
            self._confine()
        self._confine()

    def _confine(self) -> None:
        """Keep cells inside the field (only when nothing may enter or leave)."""
        if not self.confined or len(self.cells["tid"]) == 0:
            return
        c = self.cells
        hs, rs = self._spine()
        ey = np.abs(hs * np.sin(c["theta"])) + rs
        ex = np.abs(hs * np.cos(c["theta"])) + rs
        for pos, vel, ext, size in (("cy", "vy", ey, self.H), ("cx", "vx", ex, self.W)):
            lo = np.minimum(ext, (size - 1) / 2.0)
            hi = np.maximum(size - 1 - ext, (size - 1) / 2.0)
            clipped = np.clip(c[pos], lo, hi)
            out = clipped != c[pos]
            c[vel][out] = -c[vel][out]
            c[pos] = clipped

    # ---- rasterisation
    def rasterize(self, t: int) -> np.ndarray:
        """Render the label image of frame ``t`` and update tracks.

        Returns:
            (H, W) int32 image of cell index + 1 (0 = background) into ``self.cells``, after
            cells with too few visible pixels have been removed and new ids assigned.
        """
        c = self.cells
        H, W = self.H, self.W
        lab = np.zeros((H, W), np.int32)
        best = np.ones((H, W), np.float32)
        p, q = self._shape()
        n = len(c["tid"])
        boxes: list[tuple[int, int, int, int] | None] = [None] * n
        wanted = np.zeros(n, np.int64)  # pixels inside the cell before competition
        if self.rods:
            ext = p + q + 1.0
        else:
            ext = p * (1.0 + np.abs(c["coef"]).sum((1, 2))) + 1.0
        # A star-shaped region clipped by the frame stays connected if its centre is inside;
        # otherwise it may need the connectivity check below.
        check = ~((c["cy"] >= 0) & (c["cy"] <= H - 1) & (c["cx"] >= 0) & (c["cx"] <= W - 1))
        # Normalised distance q (< 1 inside) of all cells at once on a common square window
        # of side S around each centre: (N, S, S).
        half = int(np.ceil(ext.max())) if n else 0
        oy = np.floor(c["cy"]).astype(np.int64) - half  # window origin (row, col)
        ox = np.floor(c["cx"]).astype(np.int64) - half
        side = 2 * half + 2
        ar = np.arange(side, dtype=np.float32)
        yy = (oy - c["cy"]).astype(np.float32)[:, None, None] + ar[None, :, None]
        xx = (ox - c["cx"]).astype(np.float32)[:, None, None] + ar[None, None, :]
        ct = np.cos(c["theta"]).astype(np.float32)[:, None, None]
        st = np.sin(c["theta"]).astype(np.float32)[:, None, None]
        u = xx * ct + yy * st  # along the long axis
        v = yy * ct - xx * st  # across it
        pp = p.astype(np.float32)[:, None, None]
        qr = q.astype(np.float32)[:, None, None]
        if self.rods:
            du = np.maximum(np.abs(u) - pp, 0.0)
            qq = np.sqrt(du * du + v * v) / qr
        else:
            eu, ev = u / pp, v / qr
            rho = np.hypot(eu, ev)
            z = (eu + 1j * ev) / np.maximum(rho, 1e-6)  # e^{i phi}
            zk = z * z
            wob = np.zeros(rho.shape, np.float32)
            coef = c["coef"].astype(np.float32)  # (N, K, 2), harmonics k = 2, 3, ...
            for kk in range(coef.shape[1]):
                wob += coef[:, kk, 0, None, None] * zk.real + coef[:, kk, 1, None, None] * zk.imag
                zk = zk * z
            qq = rho / np.maximum(1.0 + wob, 0.3)
        # Competition: each pixel goes to the cell with the smallest q.
        for i in range(n):
            y0, x0 = max(int(oy[i]), 0), max(int(ox[i]), 0)
            y1, x1 = min(int(oy[i]) + side, H), min(int(ox[i]) + side, W)
            if y0 >= y1 or x0 >= x1:
                continue
            boxes[i] = (y0, y1, x0, x1)
            qi = qq[i, y0 - oy[i] : y1 - oy[i], x0 - ox[i] : x1 - ox[i]]
            sub_best = best[y0:y1, x0:x1]
            win = qi < sub_best
            wanted[i] = int(np.count_nonzero(qi < 1.0))
            sub_best[win] = qi[win]
            lab[y0:y1, x0:x1][win] = i + 1
        counts = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        # Keep only the largest connected piece of each cell that lost pixels to a neighbour.
        for i in np.flatnonzero((check | (counts < wanted)) & (counts > 0)):
            y0, y1, x0, x1 = boxes[i]
            sub = lab[y0:y1, x0:x1]
            pieces, n_pieces = ndimage.label(sub == i + 1, structure=_CROSS)
            if n_pieces > 1:
                sizes = np.bincount(pieces.ravel())
                sizes[0] = 0
                drop = (pieces > 0) & (pieces != sizes.argmax())
                sub[drop] = 0
                counts[i] -= int(drop.sum())
        # Remove cells with too few visible pixels (their track ends / never starts).
        alive = counts >= _MIN_PIXELS
        if not alive.all():
            lut = np.zeros(n + 1, np.int32)
            lut[1:][alive] = np.arange(1, int(alive.sum()) + 1)
            lab = lut[lab]
            self.cells = c = _take(c, alive)
        # New ids in order of first appearance; extend every live track to frame t.
        for i in np.flatnonzero(c["tid"] == 0):
            c["tid"][i] = self.next_id
            self.lineage[self.next_id] = [t, t, int(c["parent"][i])]
            self.next_id += 1
        for tid in c["tid"]:
            self.lineage[int(tid)][1] = t
        if self.next_id > np.iinfo(np.uint16).max + 1:
            raise ValueError("more than 65535 tracks; use fewer cells or frames")
        return lab
