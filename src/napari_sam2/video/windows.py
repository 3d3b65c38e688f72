"""Object windows (automatic zoom): small objects run in a square window of the frame.

A model sees its whole input resized to ``image_size`` (256 px for the bundled micro model,
1024 px for Meta's), so a 20-px nucleus on a 1024-px frame shrinks to 5 px and is lost. With
``zoom="auto"`` each object whose diameter at the whole-frame input is below the model's
comfortable range (``SAM2Config.object_size_range``) runs in its own square window of the
frame instead, sized so that the object spans the middle of that range at the model's input:

* the window's side is fixed per object when it is first prompted (from its box or mask, from
  a ``cell_diameter`` hint, or estimated around a click by :mod:`._click_size`), so its memories
  all have one scale;
* the window follows its object: on each tracked frame it is placed around the previous frame's
  mask (``recentre="every"``, the default) or moved only when the mask comes near the window's
  edge (``recentre="edge"``); placements are snapped to a grid of ``side / 8`` pixels;
* windows are functions of their own object only, and objects whose windows coincide (same
  frame, same rectangle) share one image encoding; so an object's masks do not depend on which
  other objects share its encodings (merged windows give the masks of windows run one by one);
* the distinct windows of a frame go through the image encoder as one batch (with several
  workers, one batch per worker side by side, one intra-op thread each: on a loaded 2-core
  CPU two intra-op threads waited on each other, HeLa 0.75-1.63 -> 0.41-1.04 s per frame and
  100 windows on a 1024-px frame 12.5 -> 3.6 s), and the objects of all windows (with equal
  memory layouts) go through the memory attention, the mask decoder and the memory encoder as
  one batch, each on its own window's encoding.

Where a tracked frame's time goes (CTC HeLa, 12 nuclei in windows of 121-171 px on 1100 x 700
frames, micro, 1 thread of a 2-core Xeon, cProfile over 11 tracked frames): image encoding of
the 12 windows 49 %, memory attention 14 %, mask decoder 14 %, memory encoder 16 %, window
input resampling 2 %, label writing 2 %, the rest (window placement, prior remapping, memory
selection, Python) 4 %. Running the objects of different windows as one batch instead of one
batch per window takes the decoder and memory encoder from 30 % to about 17 % of the frame (the
attention, compute-bound, is unchanged): 0.51-0.60 -> 0.42-0.43 CPU s per frame, the masks
unchanged (J 0.683 both).

Overlapping windows are not merged into one shared placement. Measured and not kept: objects of
one side whose previous masks fit together in one window, at least side / 8 inside it, shared a
window placed around their masks (greedy, re-grouped every frame). Each merge or split moves an
object in its window by up to about a quarter of the side, which the memory attention takes as a
jump of the object: HeLa (10 frames) 12 -> 10.3 encodings per frame but J 0.683 -> 0.654 (0.666
with side / 4: 3 merges); validation size bins (seeds 25000) 32-px nuclei on 1024-px frames J
0.576 -> 0.449; 100 nuclei on a 1024-px frame 97 -> 92 encodings per frame, J 0.743 -> 0.728;
two touching synthetic nuclei 19 px wide (85-px windows), tracked at J ~0.8 each in their own
windows, were both lost within 4 frames of sharing one. Merging only windows within one grid
step of each other would keep the loss at the grid's own jitter, but cells that close overlap,
so it saves nothing. Only windows that coincide share an encoding.

Moving a window shifts the memories' positions like a camera pan: the memory attention sees
the object where it was in the old window (the micro model's mask prior, the previous mask, is
resampled into the new window). Measured on 8 synthetic nuclei 15-19 px wide on a 512-px frame
moving ~4 px per frame (16 frames, one click each, micro, 2-core Xeon under load): re-centring
every frame on a side/8 grid J 0.51 (30 window moves); side/4 grid 0.42 (8 moves); only near
the edge 0.41 (side/8, 1 move) and 0.40 (side/4, 0 moves): following the object closely matters
more than keeping the memory's frame still, so "every" with side/8 is the default. (Measured
before the click-size estimate was final; the ranking, not the level, is the result.)

An object large enough at the whole-frame input has no window and runs exactly as without
zoom; ``zoom="off"`` gives no object a window (the results are those of the plain session).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..model.sam2 import FrameFeatures

__all__ = [
    "WHOLE_MARGIN",
    "ZOOM_MODES",
    "fits_whole_region",
    "RECENTRE_MODES",
    "Window",
    "WindowEncodings",
    "ZoomPlanner",
    "check_cell_diameter",
    "logits_extent",
    "prompt_extent",
    "remap_logits",
    "whole_region_diameter",
]

#: ``(y0, x0, y1, x1)`` square frame rectangle in pixels, end exclusive.
Window = tuple[int, int, int, int]

ZOOM_MODES = ("auto", "off")
RECENTRE_MODES = ("every", "edge")

#: smallest window side in frame pixels (below it the model would see fewer pixels than it has)
MIN_SIDE = 16
#: placements are snapped to multiples of side / SNAP pixels
SNAP = 8
#: "edge" re-centring moves the window once the mask comes within side / EDGE_MARGIN of an edge
EDGE_MARGIN = 8
#: logit given to model-input pixels that a remapped mask does not cover
_OUTSIDE_LOGIT = -32.0
#: a size that says the blob scale under-measured an object (:mod:`._click_size`) keeps the
#: object on the whole region from this share of the range's low end
WHOLE_MARGIN = 0.7


def check_cell_diameter(value: float | None) -> float | None:
    """Validate a ``cell_diameter`` hint (frame pixels, > 0) or None."""
    if value is None:
        return None
    try:
        d = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cell_diameter must be a number of pixels, got {value!r}") from exc
    if not math.isfinite(d) or d <= 0:
        raise ValueError(
            f"cell_diameter must be > 0 pixels (a typical cell's width), got {value!r}"
        )
    return d


def logits_extent(
    logits: torch.Tensor, box: Sequence[int]
) -> tuple[tuple[float, float], tuple[float, float, float, float]] | None:
    """Where a mask lies in frame pixels.

    Args:
        logits: (1, 1, h, w) or (h, w) low-resolution logits covering ``box``.
        box: (y0, x0, y1, x1) frame rectangle the logits cover.

    Returns:
        ((cy, cx) centroid, (y0, x0, y1, x1) bounding box) in frame pixels, or None when the
        mask is empty.
    """
    pos = (logits.reshape(logits.shape[-2:]) > 0).cpu().numpy()
    if not pos.any():
        return None
    h, w = pos.shape
    y0, x0, y1, x1 = box
    sy, sx = (y1 - y0) / h, (x1 - x0) / w
    ys, xs = np.nonzero(pos)
    cy, cx = y0 + (ys.mean() + 0.5) * sy, x0 + (xs.mean() + 0.5) * sx
    bbox = (
        y0 + ys.min() * sy,
        x0 + xs.min() * sx,
        y0 + (ys.max() + 1) * sy,
        x0 + (xs.max() + 1) * sx,
    )
    return (float(cy), float(cx)), tuple(float(v) for v in bbox)  # type: ignore[return-value]


def remap_logits(logits: torch.Tensor, src: Sequence[int], dst: Sequence[int]) -> torch.Tensor:
    """Resample (N, 1, h, w) logits covering frame rectangle ``src`` onto rectangle ``dst``.

    Bilinear; model-input pixels of ``dst`` outside ``src`` get a clearly negative logit.
    Returns the input itself when the rectangles are equal.
    """
    if tuple(src) == tuple(dst):
        return logits
    n, _, h, w = logits.shape
    sy0, sx0, sy1, sx1 = (float(v) for v in src)
    dy0, dx0, dy1, dx1 = (float(v) for v in dst)
    dev = logits.device
    # frame coordinates of the centres of dst's output pixels, as [-1, 1] coordinates of src
    ys = dy0 + (torch.arange(h, device=dev, dtype=torch.float32) + 0.5) * (dy1 - dy0) / h
    xs = dx0 + (torch.arange(w, device=dev, dtype=torch.float32) + 0.5) * (dx1 - dx0) / w
    gy = (ys - sy0) / (sy1 - sy0) * 2 - 1
    gx = (xs - sx0) / (sx1 - sx0) * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)  # (h, w, 2) as (x, y)
    grid = grid[None].expand(n, -1, -1, -1)
    shifted = logits.float() - _OUTSIDE_LOGIT
    out = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + _OUTSIDE_LOGIT


def fits_whole_region(
    diameter: float, lo: float, region: Sequence[int], margin: float = 1.0
) -> bool:
    """Whether an object ``diameter`` frame px wide is comfortable at the model's input when the
    whole ``region`` (y0, x0, y1, x1) is resized to it: its share of the region's longer side
    is at least ``margin`` x ``lo``, the low end of the model's ``object_size_range`` (no
    window needed; ``margin`` :data:`WHOLE_MARGIN` for sizes that are lower bounds)."""
    return diameter >= margin * whole_region_diameter(lo, region)


def whole_region_diameter(lo: float, region: Sequence[int]) -> float:
    """Smallest object diameter (frame px) comfortable at the model's input when the whole
    ``region`` (y0, x0, y1, x1) is resized to it: ``lo`` x the region's longer side."""
    y0, x0, y1, x1 = region
    return lo * max(y1 - y0, x1 - x0)


class ZoomPlanner:
    """Decides whether an object gets a window, its side and where it goes.

    Args:
        mode: "auto" (small objects get windows) or "off" (never).
        size_range: (lo, hi) object diameters the model segments well, as fractions of its
            input side (``SAM2Config.object_size_range``).
        image_size: the model's input side S in pixels.
        region: (y0, x0, y1, x1) frame rectangle the model would otherwise see (the frame or
            the session's ROI); windows stay inside it.
        cell_diameter: typical cell diameter in frame pixels for objects given by clicks
            (None: estimated per object).
        recentre: "every" (each tracked frame around the previous mask) or "edge" (only when
            the mask comes within side / 8 of the window's edge).
    """

    def __init__(
        self,
        mode: str,
        size_range: tuple[float, float],
        image_size: int,
        region: Sequence[int],
        cell_diameter: float | None = None,
        recentre: str = "every",
    ) -> None:
        lo, hi = (float(v) for v in size_range)
        if not 0 < lo < hi:
            raise ValueError(f"object_size_range must be 0 < lo < hi, got {size_range!r}")
        self.mode = mode
        self.lo, self.hi = lo, hi
        self.image_size = int(image_size)
        self.region = tuple(int(v) for v in region)
        self.cell_diameter = cell_diameter
        self.recentre = recentre

    @property
    def mode(self) -> str:
        """"auto" or "off"."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in ZOOM_MODES:
            raise ValueError(f"zoom must be one of {ZOOM_MODES}, got {value!r}")
        self._mode = value

    @property
    def cell_diameter(self) -> float | None:
        """Typical cell diameter in frame pixels, or None."""
        return self._cell_diameter

    @cell_diameter.setter
    def cell_diameter(self, value: float | None) -> None:
        self._cell_diameter = check_cell_diameter(value)

    @property
    def recentre(self) -> str:
        """"every" or "edge"."""
        return self._recentre

    @recentre.setter
    def recentre(self, value: str) -> None:
        if value not in RECENTRE_MODES:
            raise ValueError(f"recentre must be one of {RECENTRE_MODES}, got {value!r}")
        self._recentre = value

    @property
    def active(self) -> bool:
        return self.mode == "auto"

    @property
    def target(self) -> float:
        """Diameter an object should span at the model's input, as a fraction of its side
        (the geometric middle of the comfortable range)."""
        return math.sqrt(self.lo * self.hi)

    def side_for(self, diameter: float) -> int | None:
        """Window side in frame pixels for an object ``diameter`` px wide, or None when the
        object is large enough at the whole-region input (or zoom is off)."""
        if not self.active or not diameter > 0:
            return None
        y0, x0, y1, x1 = self.region
        longest, shortest = max(y1 - y0, x1 - x0), min(y1 - y0, x1 - x0)
        if fits_whole_region(diameter, self.lo, self.region):
            return None
        side = int(round(diameter / self.target))
        side = max(MIN_SIDE, min(side, shortest))
        if side >= longest:
            return None
        return side

    def place(self, centre: tuple[float, float], side: int) -> Window:
        """The window of ``side`` px around ``centre`` (y, x), snapped to the grid, inside the
        region."""
        ry0, rx0, ry1, rx1 = self.region
        step = max(1, side // SNAP)
        out = []
        for c, lo, hi in ((centre[0], ry0, ry1), (centre[1], rx0, rx1)):
            start = lo + int(round((c - side / 2 - lo) / step)) * step
            out.append(min(max(start, lo), hi - side))
        y0, x0 = out
        return (y0, x0, y0 + side, x0 + side)

    def follow(self, window: Window, logits: torch.Tensor | None) -> Window:
        """Where an object's window goes on the next frame, given its window and mask logits
        (covering that window) on the current one; the same window when the mask is empty."""
        if logits is None:
            return window
        ext = logits_extent(logits, window)
        if ext is None:
            return window
        centre, (by0, bx0, by1, bx1) = ext
        side = window[2] - window[0]
        if self.recentre == "edge":
            m = side / EDGE_MARGIN
            y0, x0, y1, x1 = window
            if by0 >= y0 + m and bx0 >= x0 + m and by1 <= y1 - m and bx1 <= x1 - m:
                return window
        return self.place(centre, side)

    def fits(self, window: Window, extent: tuple[float, float, float, float]) -> bool:
        """Whether a (y0, x0, y1, x1) frame extent lies inside ``window`` away from its edges."""
        side = window[2] - window[0]
        m = side / EDGE_MARGIN
        y0, x0, y1, x1 = window
        return (
            extent[0] >= y0 + m
            and extent[1] >= x0 + m
            and extent[2] <= y1 - m
            and extent[3] <= x1 - m
        )


class WindowEncodings:
    """Image encodings of frame windows, batched and cached for the most recent frames.

    Args:
        encode: maps (t, list of windows) to one :class:`FrameFeatures` of batch K (the
            windows' crops resized to the model's input and encoded together).
        frames_kept: how many frames' window encodings stay cached.
        batch: most windows encoded at once.
    """

    def __init__(
        self,
        encode: Callable[[int, list[Window]], FrameFeatures],
        frames_kept: int,
        batch: int = 16,
    ) -> None:
        self._encode = encode
        self.frames_kept = max(1, int(frames_kept))
        self.batch = max(1, int(batch))
        self._cache: OrderedDict[int, dict[Window, FrameFeatures]] = OrderedDict()
        self.encodings = 0

    def clear(self) -> None:
        self._cache.clear()

    def drop(self, t: int) -> None:
        """Forget frame t's window encodings (its pixels changed)."""
        self._cache.pop(t, None)

    def get(self, t: int, windows: Sequence[Window]) -> dict[Window, FrameFeatures]:
        """Encodings (batch 1 each) of the distinct ``windows`` on frame t."""
        have = self._cache.setdefault(t, {})
        self._cache.move_to_end(t)
        todo = list(dict.fromkeys(w for w in windows if w not in have))
        for i in range(0, len(todo), self.batch):
            part = todo[i : i + self.batch]
            feats = self._encode(t, part)
            for k, w in enumerate(part):
                have[w] = FrameFeatures(
                    feats.vision[k : k + 1],
                    feats.vision_pos[k : k + 1],
                    tuple(x[k : k + 1] for x in feats.high_res),  # type: ignore[arg-type]
                )
            self.encodings += len(part)
        while len(self._cache) > self.frames_kept:
            self._cache.popitem(last=False)
        return {w: have[w] for w in windows}


def prompt_extent(
    points: np.ndarray, labels: np.ndarray, box: Sequence[float] | None, mask_box
) -> tuple[tuple[float, float], tuple[float, float, float, float]] | None:
    """Where an object's prompts on a frame lie, in frame pixels.

    Args:
        points: (N, 2) clicks (y, x); labels: (N,) 1 positive / 0 negative.
        box: (y0, x0, y1, x1) box prompt or None.
        mask_box: (y0, x0, y1, x1) bounding rectangle of a mask prompt or None.

    Returns:
        (centre (y, x), extent (y0, x0, y1, x1)) or None without prompts. The centre is the
        mask's or box's centre, else the mean positive click; the extent covers everything.
    """
    rects = []
    centre = None
    for r in (mask_box, box):
        if r is not None:
            y0, x0, y1, x1 = (float(v) for v in r)
            rects.append((y0, x0, y1, x1))
            centre = centre or ((y0 + y1) / 2, (x0 + x1) / 2)
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts):
        rects.append((pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max() + 1, pts[:, 1].max() + 1))
        pos = pts[np.asarray(labels).reshape(-1) > 0]
        if centre is None and len(pos):
            centre = (float(pos[:, 0].mean()) + 0.5, float(pos[:, 1].mean()) + 0.5)
    if not rects:
        return None
    r = np.array(rects)
    extent = (r[:, 0].min(), r[:, 1].min(), r[:, 2].max(), r[:, 3].max())
    if centre is None:
        centre = ((extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2)
    return centre, tuple(float(v) for v in extent)  # type: ignore[return-value]
