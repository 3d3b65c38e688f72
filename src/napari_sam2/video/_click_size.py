"""How large a clicked object is, asked of the model and measured by the blob scale (sizes
zoom windows, :mod:`.windows`).

A click says where an object is, not how large. The model is shown the click in a ladder of
square windows around it, :data:`LADDER_STEP` apart in side, from :data:`~.windows.MIN_SIDE`
pixels up to the region the model would otherwise see (that region itself is the last rung);
all rungs go through the image encoder as one batch and the click is decoded on each (one
click, no memory, the decoder's three candidate masks). A candidate mask is *credible* when

* it covers at most :data:`EDGE_SHARE` of its window's border (more than a thin leak means
  the object is larger than the window; the last rung, the whole region, is exempt),
* its diameter at the model's input lies between half the low end and the high end of the
  model's ``object_size_range`` (its size is consistent with that rung's window), and
* it is at least :data:`MIN_DIAMETER` frame pixels wide.

Each credible candidate is scored by the model's predicted IoU x its stability (the area above
logit +1 over the area above logit -1) x its agreement across zoom: the best mask IoU, in frame
pixels, with a candidate of a neighbouring rung. A mask that follows the object's own boundary
reappears at the next zoom level (agreement near 1); a blob the model draws at the size it was
trained on, whatever the object, grows with the window (agreement ~0.5 between rungs
``sqrt(2)`` apart). The best-scoring candidate gives the model's size (the longer side of its
bounding box in frame pixels, as for a box prompt).

The model decides which structure was clicked; the blob scale around the click
(:func:`._cell_size.blob_diameter`) measures it more precisely. So the blob's size is used
unless the model is confident (score >= :data:`CONFIDENT`) and its size is more than
:data:`DISAGREE` times larger or smaller: then the blob measured a part of the object (the
dark nucleus of a cytoplasm-stained cell) or a cluster, and the model's size is used.
Measured on validation movies (micro; synthetic nuclei 8-64 px on 256-2048-px frames and the
``cytoplasm``, ``phase`` and ``nuclei`` looks at 256 px): the model alone overestimated small
nuclei by 1.1-2.3x (windows too large; one-click J 0.32-0.49 vs 0.39-0.59 with the blob),
the blob alone found the nucleus of cytoplasm-stained cells (0.2-0.4x; J 0.13 vs 0.56 with
the model). One click's estimate encodes 9-16 windows in one batch: 0.2 s on a 256-px frame,
0.4 s on a 1024-px frame (1 thread of a 2-core Xeon shared with other jobs).

Near the range's low end the blob under-measures some cells (a bright neighbour, a flat
response over scale), and a window sized from it is too small: micro draws at most about a
quarter of its input from one click, so a cell filling a third of its window or more is cut
down and its neighbours take its pixels. Two signs that the blob under-measured move such an
object to the whole region once they reach :data:`~.windows.WHOLE_MARGIN` (0.7) of the range's
low end: the model's size is at least :data:`UNDER` times the blob's (score >=
:data:`WHOLE_FRAME_NEAR`), or the blob's peak stays flat up to :data:`FLAT_PEAK` times its
diameter (:data:`EDGE_FLAT_PEAK` for a cell that may be cut by the region's edge). A blob at
0.7-1x the low end with neither sign keeps its window: on the synthetic
looks' cells 20-26 px wide on 256-px frames windows gave J 0.53-0.81 against 0.16-0.56 on the
whole frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ._cell_size import blob_diameters
from .windows import (
    MIN_SIDE,
    WHOLE_MARGIN,
    Window,
    fits_whole_region,
    remap_logits,
    whole_region_diameter,
)

__all__ = [
    "CONFIDENT", "ClickSize", "choose_diameter", "click_diameter", "flat_peak_top",
    "model_click_size", "zoom_agreement", "zoom_ladder",
]

#: ratio between the sides of consecutive rungs of the ladder
LADDER_STEP = math.sqrt(2.0)
#: predicted IoU x stability x agreement across zoom below which the blob estimate is used
CONFIDENT = 0.3
#: model and blob sizes further apart than this factor: the confident model's size is used
DISAGREE = 2.0
#: a less confident model size (score >= this) is used when it is over DISAGREE x the blob's
#: and large enough for the whole frame: the blob measured a part (the dark nucleus of a
#: cytoplasm-stained cell). Validation looks, micro / a generalist candidate: cytoplasm 0.324 ->
#: 0.434 / 0.251 -> 0.438, brightfield 0.225 -> 0.279 / 0.323 -> 0.355, nuclei, phase and the
#: size bins (8-64 px on 256-2048 px) unchanged.
WHOLE_FRAME_CONFIDENT = 0.1
#: a model size at least UNDER x the blob's that scores at least WHOLE_FRAME_NEAR says the
#: blob under-measured the object: from WHOLE_MARGIN x the range's low end it runs on the whole
#: region (7 demo-generator nuclei 30-40 px wide measured 14-24 px by the blob, 24-40 px by
#: the model, validation seeds: in windows J 0.43-0.86, median 0.62, on the whole frame
#: 0.78-0.91); model sizes 1.1-1.4x the blob's were as often right as too large
UNDER = 1.5
WHOLE_FRAME_NEAR = 0.2
#: a blob whose peak stays flat up to this many times its diameter (two steps of the scales
#: tried, :func:`._cell_size.blob_diameters`) may be larger: the top of the peak decides
#: whether it runs on the whole region (from WHOLE_MARGIN x the range's low end); demo-generator
#: nuclei 31-37 px wide measured 14-17 px, flat up to 20-24 px: in windows J 0.40-0.59, on the
#: whole frame 0.74-0.87. A peak flat over one step says little (cells 20-29 px measured
#: 20 px, flat up to 24 px, were as often better in windows)
FLAT_PEAK = 1.4
#: ... unless the blob's disc at the top of its peak reaches the region's edge: a cell cut there
#: is measured by its visible part, its extent along the edge lies at the top of the peak, and
#: one step (2^(1/4) = 1.19x) counts
EDGE_FLAT_PEAK = 1.15
#: a model size more than this many times a blob of at least RELIABLE_BLOB px is not used: the
#: model drew a cluster or the whole region (a generalist candidate gave 320-448 px for 25-35 px
#: nuclei on 2048-px frames at scores 0.11-0.14, and 170 px for a 15-px nucleus on a 1024-px
#: frame; micro 512 px for a 48-px nucleus); true ratios on the validation looks stay under 5
MAX_DISAGREE = 6.0
#: blob diameters (frame px) below this are too small to bound the model's size (texture or
#: noise, e.g. 5 px blobs on 45-78 px phase and brightfield cells whose model size was right)
RELIABLE_BLOB = 8.0
#: stability: area above +STABILITY_OFFSET over area above -STABILITY_OFFSET (logits)
STABILITY_OFFSET = 1.0
#: smallest credible object diameter in frame pixels (users' cells are 8-80 px wide; below
#: this the model draws its training-size blob into a window of a few pixels)
MIN_DIAMETER = 6.0
#: a mask "touches" its window's edge when it covers more than this share of the border
EDGE_SHARE = 0.03
#: most rungs encoded in one batch
BATCH = 16
#: agreement across zoom of a blob that grows with its window (rungs LADDER_STEP apart: the
#: smaller mask covers 1 / LADDER_STEP**2 of the larger); only agreement above it counts
CHANCE_AGREEMENT = 1.0 / LADDER_STEP**2


@dataclass(frozen=True)
class ClickSize:
    """The model's size estimate for a click.

    Attributes:
        diameter: object diameter in frame pixels (longer side of the mask's bounding box).
        score: predicted IoU x stability x agreement across zoom of the chosen mask (0-1).
        window: the rung (y0, x0, y1, x1) whose mask was chosen.
    """

    diameter: float
    score: float
    window: Window


def zoom_ladder(region: Sequence[int], click: tuple[float, float]) -> list[Window]:
    """Square windows around a click, :data:`LADDER_STEP` apart, then the whole region.

    Args:
        region: (y0, x0, y1, x1) frame rectangle the model would otherwise see.
        click: (y, x) in frame pixels.

    Returns:
        Rungs (y0, x0, y1, x1), smallest first, inside ``region``; the last is ``region``.
    """
    ry0, rx0, ry1, rx1 = (int(v) for v in region)
    shortest = min(ry1 - ry0, rx1 - rx0)
    rungs: list[Window] = []
    side = float(MIN_SIDE)
    while int(round(side)) < shortest:
        s = int(round(side))
        y0 = min(max(int(round(click[0] - s / 2)), ry0), ry1 - s)
        x0 = min(max(int(round(click[1] - s / 2)), rx0), rx1 - s)
        rungs.append((y0, x0, y0 + s, x0 + s))
        side *= LADDER_STEP
    rungs.append((ry0, rx0, ry1, rx1))
    return rungs


def _candidates(
    model, inputs: Callable[[list[Window]], torch.Tensor], rungs: list[Window],
    click: tuple[float, float], device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode the click on every rung: (K, M, h, w) candidate logits and (K, M) predicted IoU."""
    s = model.image_size
    logits, ious = [], []
    for i in range(0, len(rungs), BATCH):
        part = rungs[i : i + BATCH]
        images = inputs(part).to(device)
        coords = torch.tensor(
            [[[(click[1] - x0) * s / (x1 - x0), (click[0] - y0) * s / (y1 - y0)]]
             for y0, x0, y1, x1 in part],
            dtype=torch.float32, device=device,
        )  # (k, 1, 2) model-input (x, y)
        labels = torch.ones(len(part), 1, dtype=torch.int32, device=device)
        with torch.inference_mode():
            feats = model.encode_image(images)
            head = model.predict_masks(
                model.no_memory(feats), feats.high_res, coords, labels, multimask=True
            )
        logits.append(head.multimask_logits.float().cpu())
        ious.append(head.ious.float().cpu())
    return torch.cat(logits), torch.cat(ious)


def zoom_agreement(a: torch.Tensor, wa: Window, b: torch.Tensor, wb: Window) -> torch.Tensor:
    """(Ma, Mb) mask IoU in frame pixels between candidates (Ma, h, w) over window ``wa`` and
    (Mb, h, w) over the larger window ``wb`` (``a`` is assumed inside ``wa``)."""
    pa = (a > 0).flatten(1).float()  # (Ma, hw)
    pb_in_a = (remap_logits(b[:, None], wb, wa)[:, 0] > 0).flatten(1).float()  # (Mb, hw)
    inter = pa @ pb_in_a.T  # window-a pixels
    scale = ((wb[2] - wb[0]) * (wb[3] - wb[1])) / ((wa[2] - wa[0]) * (wa[3] - wa[1]))
    area_b = (b > 0).flatten(1).float().sum(1) * scale  # in window-a pixels
    union = pa.sum(1)[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-9), torch.zeros_like(inter))


def model_click_size(
    model,
    inputs: Callable[[list[Window]], torch.Tensor],
    click: tuple[float, float],
    region: Sequence[int],
    size_range: tuple[float, float],
    device: torch.device | str = "cpu",
) -> ClickSize | None:
    """Ask the model how large the object under a click is (see the module docstring).

    Args:
        model: a :class:`~napari_sam2.model.sam2.SAM2Model`.
        inputs: maps K windows (y0, x0, y1, x1) of the frame to their (K, 3, S, S) model inputs.
        click: (y, x) positive click in frame pixels.
        region: (y0, x0, y1, x1) frame rectangle the model would otherwise see.
        size_range: the model's comfortable object diameters as fractions of its input side.
        device: where the model runs.

    Returns:
        The best-scoring credible mask's :class:`ClickSize`, or None when no mask is credible.
    """
    device = torch.device(device)
    rungs = zoom_ladder(region, click)
    logits, ious = _candidates(model, inputs, rungs, click, device)  # (K, M, h, w), (K, M)
    k_n, m_n, h, w = logits.shape
    lo, hi = size_range
    pos = logits > 0
    area = pos.flatten(2).sum(-1).float()  # (K, M) low-res pixels
    stab = (logits > STABILITY_OFFSET).flatten(2).sum(-1) / (
        (logits > -STABILITY_OFFSET).flatten(2).sum(-1).clamp(min=1)
    )
    d_in = 2 * torch.sqrt(area / math.pi) / w  # fraction of the input side
    border = pos[..., 0, :].sum(-1) + pos[..., -1, :].sum(-1) + pos[..., 1:-1, 0].sum(-1)
    border = border + pos[..., 1:-1, -1].sum(-1)
    edge = border > EDGE_SHARE * 4 * (w - 1)  # more than a thin leak reaches the edge
    edge[-1] = False  # the whole region: an object may touch the frame's border
    sides = torch.tensor([float(min(r[2] - r[0], r[3] - r[1])) for r in rungs])
    credible = (area > 0) & ~edge & (d_in >= lo / 2) & (d_in <= hi)
    credible &= d_in * sides[:, None] >= MIN_DIAMETER
    quality = ious.clamp(0, 1) * stab * credible
    prev = torch.zeros(k_n, m_n)  # agreement with the next smaller rung
    nxt = torch.zeros(k_n, m_n)  # with the next larger rung
    for k in range(k_n - 1):
        iou = zoom_agreement(logits[k], rungs[k], logits[k + 1], rungs[k + 1])  # (M, M)
        iou = iou * credible[k][:, None] * credible[k + 1][None, :]
        nxt[k] = iou.max(1).values
        prev[k + 1] = iou.max(0).values
    # beyond what a blob growing with the window gets, rescaled to 0-1
    agree = ((torch.maximum(prev, nxt) - CHANCE_AGREEMENT) / (1 - CHANCE_AGREEMENT)).clamp(min=0)
    score = quality * agree
    best = int(torch.argmax(score))
    k, m = divmod(best, m_n)
    if not score[k, m] > 0:
        return None
    y0, x0, y1, x1 = rungs[k]
    ys, xs = np.nonzero(pos[k, m].numpy())
    extent = max(
        (ys.max() - ys.min() + 1) * (y1 - y0) / h, (xs.max() - xs.min() + 1) * (x1 - x0) / w
    )
    return ClickSize(float(extent), float(score[k, m]), rungs[k])


def click_diameter(
    model,
    inputs: Callable[[list[Window]], torch.Tensor],
    image: Callable[[], np.ndarray],
    click: tuple[float, float],
    region: Sequence[int],
    size_range: tuple[float, float],
    device: torch.device | str = "cpu",
    hint: float | None = None,
) -> float:
    """Diameter (frame px) of the object under a click.

    The model decides which structure was clicked, the blob scale measures it: the blob
    estimate (:func:`._cell_size.blob_diameter`) is used unless :func:`choose_diameter` finds
    the model's size more credible (the blob scale then measured a part of the object, such
    as the dark nucleus of a cytoplasm-stained cell, or a cluster).

    Args:
        model: a :class:`~napari_sam2.model.sam2.SAM2Model`.
        inputs: maps K windows of the frame to their (K, 3, S, S) model inputs.
        image: returns the (H, W) or (H, W, C) frame as the model reads it (for the blob).
        click: (y, x) positive click in frame pixels.
        region: (y0, x0, y1, x1) frame rectangle the model would otherwise see.
        size_range: the model's comfortable object diameters as fractions of its input side.
        device: where the model runs.
        hint: a typical cell diameter (frame px, ``cell_diameter``) used instead of the blob
            scale: the model's confident size (score >= :data:`CONFIDENT`) still wins when it
            is more than :data:`DISAGREE` times larger or smaller (a hint 3x off is corrected).
    """
    y0, x0, y1, x1 = region
    top = None
    if hint is not None:
        blob = float(hint)
    else:
        d_max = max(8.0, size_range[0] * max(y1 - y0, x1 - x0))
        blob, top = blob_diameters(image(), click, 4.0, d_max)
        top = flat_peak_top(blob, top, click, region)
    est = model_click_size(model, inputs, click, region, size_range, device)
    return choose_diameter(blob, est, region, size_range[0], hint=hint is not None, blob_top=top)


def flat_peak_top(
    blob: float, top: float, click: tuple[float, float], region: Sequence[int]
) -> float | None:
    """The top of a blob's peak when the peak is flat enough to say the object may be that
    large (frame px), else None.

    Args:
        blob: the blob's diameter, ``top``: the upper end of its peak
            (:func:`._cell_size.blob_diameters`), frame px.
        click: (y, x) in frame pixels.
        region: (y0, x0, y1, x1) frame rectangle the model would otherwise see.

    Returns:
        ``top`` when it is at least :data:`FLAT_PEAK` x ``blob``, or :data:`EDGE_FLAT_PEAK` x
        ``blob`` when a disc of diameter ``top`` around the click reaches the region's edge
        (a cell cut there); else None.
    """
    y0, x0, y1, x1 = region
    cut = min(click[0] - y0, click[1] - x0, y1 - click[0], x1 - click[1]) < top / 2
    return top if top >= (EDGE_FLAT_PEAK if cut else FLAT_PEAK) * blob else None


def choose_diameter(
    blob: float,
    est: ClickSize | None,
    region: Sequence[int],
    lo: float,
    hint: bool = False,
    blob_top: float | None = None,
) -> float:
    """The click-size rule: the blob's (or hint's) diameter or the model's (frame px).

    The model's size is used when it differs from the blob's more than :data:`DISAGREE` times
    and is confident (score >= :data:`CONFIDENT`), or, for a blob (not a hint), when it is over
    :data:`DISAGREE` times larger, needs no window (:func:`~.windows.fits_whole_region`) and
    scores at least :data:`WHOLE_FRAME_CONFIDENT`; never when it is over :data:`MAX_DISAGREE`
    times a blob of at least :data:`RELIABLE_BLOB` px. A blob that under-measured its object
    (the model's size at least :data:`UNDER` times larger, scoring at least
    :data:`WHOLE_FRAME_NEAR`, or the blob's peak flat up to ``blob_top``) gives way to the
    smallest size that needs no window (:func:`~.windows.whole_region_diameter`) when that
    sign reaches :data:`~.windows.WHOLE_MARGIN` of it.

    Args:
        blob: blob-scale (or ``cell_diameter`` hint) diameter in frame pixels.
        est: the model's estimate (:func:`model_click_size`), or None.
        region: (y0, x0, y1, x1) frame rectangle the model would otherwise see.
        lo: low end of the model's ``object_size_range`` (fraction of its input side).
        hint: ``blob`` is the user's ``cell_diameter``: only a confident model size overrides it.
        blob_top: the top of the blob's flat peak (:func:`flat_peak_top`, frame px) or None;
            where the blob's size is used, this one is when it needs no window.
    """
    whole = whole_region_diameter(lo, region)
    own = blob
    if blob_top is not None and blob_top > blob:
        if fits_whole_region(blob_top, lo, region, WHOLE_MARGIN):
            own = max(blob_top, whole)  # the blob's peak reaches a size the model handles
    if est is None:
        return own
    ratio = est.diameter / blob
    if blob >= RELIABLE_BLOB and ratio > MAX_DISAGREE:
        return own
    if est.score >= CONFIDENT and (ratio > DISAGREE or ratio < 1 / DISAGREE):
        return est.diameter
    if hint:
        return blob
    if est.score >= WHOLE_FRAME_CONFIDENT and ratio > DISAGREE:
        if fits_whole_region(est.diameter, lo, region):
            return est.diameter
    if est.score >= WHOLE_FRAME_NEAR and ratio >= UNDER:
        if fits_whole_region(est.diameter, lo, region, WHOLE_MARGIN):
            return max(est.diameter, whole)  # the blob under-measured the object
    return own
