"""Seeding many objects at once: from a label image, or automatically from a point grid.

* :func:`add_labels` turns every label of a (H, W) label image into a session object with a
  mask prompt (label value = object id), batching the model work over objects (the frame is
  encoded once).
* :func:`find_objects` is SAM's "fully automatic" stage: a regular grid of single-click prompts
  over a frame, run in batches through the prompt encoder and mask decoder on the session's
  cached frame encoding, filtered by predicted IoU, stability and area and de-duplicated by
  greedy mask non-maximum suppression. It returns candidate masks, not objects: the user prunes
  them, then seeds the kept ones with :func:`add_labels` or ``VideoSession.add_mask``.

The helpers :func:`point_grid`, :func:`stability_score`, :func:`mask_iou` and :func:`mask_nms`
are plain numpy / torch (no torchvision).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from contextlib import AbstractContextManager
from typing import Protocol

import numpy as np
import torch

from ..io.label_checks import check_labels
from ..model.sam2 import FrameFeatures, SAM2Model
from ._propagate_plan import check_frame_index
from .prompts import check_obj_id

__all__ = [
    "add_labels",
    "find_objects",
    "find_objects_steps",
    "mask_iou",
    "mask_nms",
    "point_grid",
    "stability_score",
]


class SeedingRunner(Protocol):
    """What seeding uses of a session's model runner
    (:class:`~napari_sam2.video._model_runner.ModelRunner`)."""

    model: SAM2Model

    @property
    def device(self) -> torch.device: ...

    def region(self) -> tuple[int, int, int, int]: ...

    def autocast(self) -> AbstractContextManager: ...

    def features(self, frame: int) -> FrameFeatures: ...

    def to_frame(self, low_res: torch.Tensor) -> torch.Tensor: ...


class SeedingTarget(Protocol):
    """What seeding uses of a session (:class:`~napari_sam2.video.session.VideoSession`)."""

    runner: SeedingRunner

    @property
    def num_frames(self) -> int: ...

    @property
    def frame_shape(self) -> tuple[int, int]: ...

    @property
    def roi(self) -> tuple[int, int, int, int] | None: ...

    def add_masks(self, frame: int, masks: Iterable[tuple[int, np.ndarray]]) -> list[int]: ...


# ----------------------------------------------------------------------------- helpers


def point_grid(points_per_side: int) -> np.ndarray:
    """Centres of a ``points_per_side`` x ``points_per_side`` grid of cells on the unit square.

    Returns:
        (n * n, 2) float64 (x, y) in (0, 1), row by row (y outer, x inner).
    """
    n = int(points_per_side)
    if n < 1:
        raise ValueError(f"points_per_side must be >= 1, got {points_per_side}")
    c = (np.arange(n) + 0.5) / n
    xx, yy = np.meshgrid(c, c)  # (n, n) each, y along rows
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def stability_score(
    logits: torch.Tensor, offset: float = 1.0, threshold: float = 0.0
) -> torch.Tensor:
    """SAM's stability score: IoU of the mask thresholded at ``threshold + offset`` and at
    ``threshold - offset``.

    The stricter mask lies inside the looser one, so the IoU is the ratio of their areas. A mask
    that is empty even at the looser threshold scores 0.

    Args:
        logits: (..., H, W) mask logits.
        offset: half-width of the logit band (SAM: 1.0).
        threshold: the mask threshold (0 for logits).

    Returns:
        (...) float32 scores in [0, 1].
    """
    inner = (logits > threshold + offset).flatten(-2).sum(-1, dtype=torch.int64)
    outer = (logits > threshold - offset).flatten(-2).sum(-1, dtype=torch.int64)
    return torch.where(outer > 0, inner.float() / outer.clamp(min=1).float(), 0.0)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) end-exclusive bounding box of a non-empty (H, W) bool mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return (0, 0, 0, 0)
    return (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (H, W) bool masks (0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b)) / union if union else 0.0


def mask_nms(masks, scores, iou_thresh: float = 0.5) -> np.ndarray:
    """Greedy mask non-maximum suppression.

    Masks are visited by decreasing score; a mask is kept unless its IoU with an already kept
    mask exceeds ``iou_thresh``. Only pairs whose bounding boxes intersect are compared, on the
    crop of their joint box, so sparse masks of a large frame are cheap.

    Args:
        masks: (N, H, W) bool array or a sequence of N (H, W) bool arrays.
        scores: (N,) scores (higher first; ties keep the input order).
        iou_thresh: IoU above which the lower-scored mask is dropped.

    Returns:
        (K,) int64 indices of the kept masks, by decreasing score.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if len(masks) != scores.size:
        raise ValueError(f"got {len(masks)} masks but {scores.size} scores")
    order = np.argsort(-scores, kind="stable")
    boxes = np.array([_bbox(np.asarray(m, bool)) for m in masks], dtype=np.int64).reshape(-1, 4)
    areas = np.array([np.count_nonzero(m) for m in masks], dtype=np.int64)
    kept: list[int] = []
    for i in order:
        by0, bx0, by1, bx1 = boxes[i]
        if kept:
            kb = boxes[kept]  # (K, 4)
            hit = (
                (kb[:, 0] < by1) & (by0 < kb[:, 2]) & (kb[:, 1] < bx1) & (bx0 < kb[:, 3])
            )
            suppressed = False
            for j in np.asarray(kept)[hit]:
                y0, x0 = min(by0, boxes[j, 0]), min(bx0, boxes[j, 1])
                y1, x1 = max(by1, boxes[j, 2]), max(bx1, boxes[j, 3])
                inter = np.count_nonzero(
                    np.asarray(masks[i], bool)[y0:y1, x0:x1]
                    & np.asarray(masks[j], bool)[y0:y1, x0:x1]
                )
                union = areas[i] + areas[j] - inter
                if union > 0 and inter / union > iou_thresh:
                    suppressed = True
                    break
            if suppressed:
                continue
        kept.append(int(i))
    return np.asarray(kept, dtype=np.int64)


# ----------------------------------------------------------------------------- seeding


def _label_masks(label_image: np.ndarray, ids: np.ndarray):
    """Yield (id, (H, W) bool mask) for each id, using bounding boxes to stay cheap."""
    from scipy import ndimage

    if ids.size and int(ids.max()) <= (1 << 20):
        slices = ndimage.find_objects(label_image)
        for i in ids:
            sl = slices[int(i) - 1]
            m = np.zeros(label_image.shape, dtype=bool)
            m[sl] = label_image[sl] == i
            yield int(i), m
    else:
        for i in ids:
            yield int(i), label_image == i


def add_labels(session: SeedingTarget, frame: int, label_image) -> list[int]:
    """Make every label of a label image an object with a mask prompt on ``frame``.

    Equivalent to ``session.add_mask(frame, i, label_image == i)`` for every non-zero value
    ``i`` (the label value becomes the object id; an existing object with that id gets its
    prompts on ``frame`` replaced), but the model runs once per chunk of objects on the frame's
    single cached encoding, and the chunk's masks are written into the label volume together
    (where their upsampled masks overlap, the highest logit wins): see
    ``VideoSession.add_masks``.

    Args:
        session: the video session.
        frame: frame index t.
        label_image: (H, W) integer (or bool: one object, id 1) label image at the frame size;
            0 is background. With a session ROI, the part of each label outside it is ignored.

    Returns:
        The object ids created or updated, ascending.

    Raises:
        ValueError: wrong shape or dtype, negative values, an id that is not a valid object
            id, or a label lying wholly outside the session's ROI; nothing is changed then.
    """
    frame = check_frame_index(frame, session.num_frames)
    lab = check_labels(
        label_image,
        shape=session.frame_shape,
        name="label image",
        shape_of="the frames (H, W)",
        bool_ok=True,
    )
    ids = np.unique(lab)
    ids = ids[ids != 0]
    for i in ids:
        check_obj_id(int(i))
    if ids.size == 0:
        return []
    if session.roi is not None:
        y0, x0, y1, x1 = session.roi
        outside = np.setdiff1d(ids, np.unique(lab[y0:y1, x0:x1]))
        if outside.size:
            shown = ", ".join(str(int(i)) for i in outside[:10]) + (
                ", ..." if outside.size > 10 else ""
            )
            raise ValueError(
                f"label(s) {shown} lie wholly outside the region of interest (y0, x0, y1, x1) = "
                f"{session.roi}: remove them from the label image or enlarge the region"
            )
    return session.add_masks(frame, _label_masks(lab, ids))


def find_objects(
    session: SeedingTarget,
    frame: int,
    *,
    points_per_side: int = 16,
    pred_iou_thresh: float = 0.7,
    stability_thresh: float = 0.85,
    stability_offset: float = 1.0,
    min_area: int = 16,
    max_area: int | None = None,
    nms_iou: float = 0.5,
    batch: int = 64,
    return_scores: bool = False,
):
    """Candidate object masks on a frame, found without prompts (SAM's automatic stage).

    A ``points_per_side``² grid of single positive clicks (cell centres of a regular grid over
    the model input, i.e. over the frame or the session's ROI) runs in batches of ``batch``
    clicks through the prompt encoder and mask decoder on the session's cached encoding of the
    frame (no memory). Each click gives 3 candidates (whole / part / subpart). Candidates are
    kept when

    * their predicted IoU is >= ``pred_iou_thresh``,
    * their stability score (:func:`stability_score` of the frame-size logits with
      ``stability_offset``) is >= ``stability_thresh``,
    * their area at frame size is within [``min_area``, ``max_area``] pixels,

    and are then de-duplicated by greedy mask NMS on the predicted IoU (:func:`mask_nms`), first
    within each batch, then over all batches. Candidates whose object score says "absent" are
    blanked by the model and so drop out through ``min_area``.

    Args:
        session: the video session (its frame-encoding cache is used and filled).
        frame: frame index t.
        points_per_side: grid side; ``points_per_side**2`` clicks.
        pred_iou_thresh: minimum predicted IoU (0..1).
        stability_thresh: minimum stability score (0..1).
        stability_offset: logit offset of the stability score.
        min_area: smallest mask area, in frame pixels.
        max_area: largest mask area, in frame pixels (None: a quarter of the frame, or of the
            session's ROI, which drops background-sized masks; pass ``H * W`` for no limit).
        nms_iou: IoU above which the lower-scored of two candidates is dropped.
        batch: clicks per decoder batch (bounds memory: ``3 * batch`` low-resolution masks).
        return_scores: also return the (K,) predicted IoUs of the kept masks.

    :func:`find_objects_steps` is the same search as a generator (progress and cancelling
    between batches).

    Returns:
        A list of K (H, W) bool masks at frame size (empty outside the ROI), by decreasing
        predicted IoU (and, with ``return_scores``, a (K,) float32 array of their predicted
        IoUs).
    """
    steps = find_objects_steps(
        session,
        frame,
        points_per_side=points_per_side,
        pred_iou_thresh=pred_iou_thresh,
        stability_thresh=stability_thresh,
        stability_offset=stability_offset,
        min_area=min_area,
        max_area=max_area,
        nms_iou=nms_iou,
        batch=batch,
    )
    while True:
        try:
            next(steps)
        except StopIteration as done:
            masks, scores = done.value
            break
    return (masks, scores) if return_scores else masks


def find_objects_steps(
    session: SeedingTarget,
    frame: int,
    *,
    points_per_side: int = 16,
    pred_iou_thresh: float = 0.7,
    stability_thresh: float = 0.85,
    stability_offset: float = 1.0,
    min_area: int = 16,
    max_area: int | None = None,
    nms_iou: float = 0.5,
    batch: int = 64,
) -> Generator[tuple[int, int], None, tuple[list[np.ndarray], np.ndarray]]:
    """:func:`find_objects` step by step: a generator that yields ``(batches done, batches)``
    after each batch of ``batch`` clicks and returns ``(masks, scores)`` (what
    ``find_objects(..., return_scores=True)`` returns). Closing it early stops the search.
    """
    frame = check_frame_index(frame, session.num_frames)
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    runner = session.runner
    y0, x0, y1, x1 = runner.region()
    h, w = y1 - y0, x1 - x0
    if max_area is None:
        max_area = (h * w) // 4
    model = runner.model
    dev = runner.device
    s = model.image_size
    feats = runner.features(frame)
    grid = torch.as_tensor(point_grid(points_per_side) * s, dtype=torch.float32, device=dev)
    kept_masks: list[np.ndarray] = []
    kept_scores: list[float] = []
    up_chunk = 16  # candidates upsampled to frame size at once (bounds memory)
    n_batches = -(-grid.shape[0] // batch)
    for b0 in range(0, grid.shape[0], batch):
        coords = grid[b0 : b0 + batch, None, :]  # (b, 1, 2) model-input (x, y)
        n = coords.shape[0]
        labels = torch.ones(n, 1, dtype=torch.int32, device=dev)
        with torch.inference_mode(), runner.autocast():
            fx = feats.expand(n)
            head = model.predict_masks(
                model.no_memory(fx), fx.high_res, coords, labels, multimask=True
            )
        low = head.multimask_logits.float().flatten(0, 1)[:, None]  # (b*M, 1, h4, w4)
        ious = head.ious.float().flatten()  # (b*M,)
        sel = torch.nonzero(ious >= pred_iou_thresh).flatten()
        cand_masks: list[np.ndarray] = []
        cand_scores: list[float] = []
        for c0 in range(0, sel.numel(), up_chunk):
            idx = sel[c0 : c0 + up_chunk]
            with torch.inference_mode():
                logits = runner.to_frame(low[idx])  # (c, H, W)
                stab = stability_score(logits, stability_offset)
                area = (logits > 0).flatten(1).sum(1)
                ok = (stab >= stability_thresh) & (area >= min_area) & (area <= max_area)
                if not bool(ok.any()):
                    continue
                good = (logits[ok] > 0).cpu().numpy()
            cand_masks.extend(good)
            cand_scores.extend(ious[idx][ok].cpu().tolist())
        if cand_masks:
            keep = mask_nms(cand_masks, cand_scores, nms_iou)
            kept_masks.extend(cand_masks[k] for k in keep)
            kept_scores.extend(cand_scores[k] for k in keep)
        yield b0 // batch + 1, n_batches
    if kept_masks:
        keep = mask_nms(kept_masks, kept_scores, nms_iou)
        kept_masks = [kept_masks[k] for k in keep]
        kept_scores = [kept_scores[k] for k in keep]
    return kept_masks, np.asarray(kept_scores, dtype=np.float32)
