"""The steps a :class:`~napari_sam2.video.session.VideoSession` takes on one frame: decode an
object's prompts, seed many objects from masks, file prompt results in the memory banks, and
track objects onto the next frame.

Each step is a function of the session's owned parts (the :class:`~._model_runner.ModelRunner`,
the :class:`~._model_scale.ModelScale` that places zoom windows, the
:class:`~._label_volume.LabelVolume`) and the objects it works on; the session keeps the state
and the checks of the public API.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from ._frame_fit import FrameFit
from ._label_volume import LabelVolume
from ._model_runner import ModelRunner, stack_features
from ._model_scale import ModelScale
from ._objects import TrackedObject, by_window
from ._parallel import Failed, captured
from ._window_fit import KEEP
from .frame_result import FrameResult
from .memory_bank import MemoryEntry, MemorySelection
from .windows import Window

__all__ = ["commit_pending", "prompt_frame", "seed_masks", "track_frame"]


def prompt_frame(
    runner: ModelRunner,
    scale: ModelScale,
    volume: LabelVolume,
    obj: TrackedObject,
    frame: int,
    fit: FrameFit,
) -> np.ndarray:
    """Segment one object on a frame from its prompts there and write it into the labels.

    The result is pending (its memory is encoded when propagation starts). With ``fit``
    enabled (under ``"auto"``: for an object :func:`~._autofit.fits_in_auto` picks) the
    object's image level is set from this mask and the written mask is cut to it.

    Returns:
        (H, W) bool mask of the object on that frame.
    """
    p = obj.prompts[frame]
    is_init = frame not in obj.tracked
    window = scale.prompt_window(obj, frame, p, is_init)
    feats = runner.view_features(frame, window)
    reverse = obj.tracked.get(frame, False)
    s = runner.settings
    prev = sel = None
    multimask = False
    if p.mask is None:
        prev_entry = obj.pending.get(frame, (None, None))[0] or obj.bank.get(frame)
        if prev_entry is not None:
            prev = (prev_entry, obj.windows.get(frame))
        if not is_init:
            sel = obj.bank.select(frame, s, runner.frames.num_frames, reverse)
        multimask = s.multimask_first_click and runner.model.use_multimask(is_init, p.num_points)
    head = runner.prompt_head(feats, p, window, prev, sel, multimask)
    refit = scale.refit_prompt_window(obj, frame, p, window, head.mask_logits)
    if refit is not KEEP:  # the mask says the window's size was wrong: decode again there
        feats = runner.view_features(frame, refit)  # type: ignore[arg-type]
        head2 = runner.prompt_head(feats, p, refit, prev, sel, multimask)  # type: ignore[arg-type]
        if scale.accept_refit(obj, (window, head.mask_logits), (refit, head2.mask_logits)):
            window, head = refit, head2  # type: ignore[assignment]
    entry = runner.entry(head, 0, reverse)
    obj.pending[frame] = (entry, is_init or s.corrections_as_prompts)
    obj.set_window(frame, window)
    logits = entry.mask_logits.to(runner.device)
    crop = next(runner.frame_crops(logits, window))
    fit.set_level(frame, obj.obj_id, crop, window)
    _, masks = volume.write(frame, [obj.obj_id], fit.cut(frame, [obj.obj_id], [crop]))
    mask = np.zeros(volume.shape[1:], bool)
    if masks[0] is not None:
        (y0, x0, y1, x1), m = masks[0]
        mask[y0:y1, x0:x1] = m
    return mask


def seed_masks(
    runner: ModelRunner,
    scale: ModelScale,
    volume: LabelVolume,
    objs: Sequence[TrackedObject],
    frame: int,
    fit: FrameFit,
) -> None:
    """Take the mask prompts of ``objs`` on a frame as their results, batched: objects are
    grouped by their zoom window (the distinct windows encoded as one batch), each group runs
    in chunks on one encoding, and each chunk's masks are written into the labels together
    (where they overlap, the highest logit wins). With ``fit`` enabled each object's image
    level is set from its mask and the written masks are cut to it."""
    groups: dict[Window | None, list[TrackedObject]] = {}
    for obj in objs:
        p = obj.prompts[frame]
        window = scale.prompt_window(obj, frame, p, frame not in obj.tracked)
        groups.setdefault(window, []).append(obj)
    runner.windows.get(frame, [w for w in groups if w is not None])  # one batch
    settings = runner.settings
    for window, members in groups.items():
        feats = runner.view_features(frame, window)
        for chunk in runner.chunks(members):
            head = runner.masks_head(feats, [o.prompts[frame].mask for o in chunk], window)
            entries = []
            for k, obj in enumerate(chunk):
                is_init = frame not in obj.tracked
                entry = runner.entry(head, k, obj.tracked.get(frame, False))
                obj.pending[frame] = (entry, is_init or settings.corrections_as_prompts)
                obj.set_window(frame, window)
                entries.append(entry)
            low = torch.cat([e.mask_logits for e in entries]).to(runner.device)
            ids = [o.obj_id for o in chunk]
            crops = runner.frame_crops(low, window)
            if fit.enabled:
                crops = list(crops)
                for obj_id, crop in zip(ids, crops):
                    fit.set_level(frame, obj_id, crop, window)
            volume.write(frame, ids, fit.cut(frame, ids, crops))


def commit_pending(runner: ModelRunner, objects: Sequence[TrackedObject]) -> None:
    """Encode the memory of prompted frames (batched per frame and window) and file it in the
    objects' banks."""
    by_frame: dict[int, list[TrackedObject]] = {}
    for obj in objects:
        for t in obj.pending:
            by_frame.setdefault(t, []).append(obj)
    binarize = runner.model.config.binarize_mask_from_pts_for_mem_enc
    for t, objs_t in sorted(by_frame.items()):
        groups = by_window(objs_t, t)
        runner.windows.get(t, [w for w in groups if w is not None])  # one batch
        for window, objs in groups.items():
            feats = runner.view_features(t, window)
            for chunk in runner.chunks(objs):
                mem = runner.encode_memories(feats, [o.pending[t][0] for o in chunk], binarize)
                for k, obj in enumerate(chunk):
                    entry, is_cond = obj.pending.pop(t)
                    entry.features = mem[k : k + 1]
                    if is_cond:
                        obj.bank.cond[t] = entry
                        obj.bank.tracked.pop(t, None)
                    else:
                        obj.bank.tracked[t] = entry


def track_frame(
    runner: ModelRunner,
    scale: ModelScale,
    volume: LabelVolume,
    t: int,
    objects: list[TrackedObject],
    reverse: bool,
    fit: FrameFit,
    ahead: int | None = None,
) -> FrameResult:
    """Track ``objects`` on frame t (from their memories) and write them into the labels.

    With several workers the next frame to visit (``ahead``) is encoded meanwhile when some
    object needs this frame's whole-frame encoding. Objects
    with windows (automatic zoom) are tracked in their windows, placed from their previous
    masks; objects with equal memory layouts run batched, in chunks, each on its own window's
    encoding. With ``fit`` enabled the written masks (and the result's) are cut to each
    object's image level; the memory bank keeps the model's own masks.
    """
    s = runner.settings
    results: dict[int, MemoryEntry] = {}
    windows: dict[int, Window | None] = {}
    groups: dict[tuple, list[tuple[TrackedObject, MemorySelection]]] = {}
    use_prior = runner.model.config.track_mask_prior
    before = t + 1 if reverse else t - 1
    num_frames = runner.frames.num_frames
    for obj in objects:
        if t in obj.bank.cond:
            results[obj.obj_id] = obj.bank.cond[t]
            windows[obj.obj_id] = obj.windows.get(t)
            continue
        windows[obj.obj_id] = scale.track_window(obj, t, before)
        sel = obj.bank.select(t, s, num_frames, reverse)
        key = sel.signature()
        if use_prior:
            key = (key, obj.bank.get(before) is not None)
        groups.setdefault(key, []).append((obj, sel))
    feats = {None: runner.features(t)} if any(w is None for w in windows.values()) else {}
    feats.update(runner.windows.get(t, [w for w in windows.values() if w is not None]))
    parts = runner.pool.size
    # objects with equal memory layouts run as one batch whatever their windows: each object
    # brings its window's encoding (so its masks do not depend on the batch it runs in)
    jobs = [chunk for members in groups.values() for chunk in runner.chunks(members, parts)]
    tasks = []
    for chunk in jobs:
        wins = [windows[o.obj_id] for o, _ in chunk]
        chunk_feats = stack_features([feats[w] for w in wins])
        tasks.append(functools.partial(runner.track_chunk, chunk_feats, chunk, before, wins))
    # the whole next frame is encoded ahead only when this frame needed it (objects in
    # windows are placed from this frame's masks, so their windows cannot be encoded ahead)
    encode_ahead = ahead is not None and parts > 1 and bool(jobs) and None in feats
    if encode_ahead:  # a failure there is raised when frame `ahead` itself is visited
        tasks.append(captured(functools.partial(runner.encode, ahead)))
    outputs = runner.pool.run(tasks)
    if encode_ahead:
        feats_ahead = outputs.pop()
        if not isinstance(feats_ahead, Failed):
            runner.cache_features(ahead, feats_ahead)
    for chunk, (head, mem, pos) in zip(jobs, outputs):
        if pos is not None:
            runner.memory_pos(pos.float())
        for k, (obj, _) in enumerate(chunk):
            entry = runner.entry(head, k, reverse, features=mem)
            obj.bank.tracked[t] = entry
            results[obj.obj_id] = entry
    ids = [o.obj_id for o in objects]
    for obj in objects:
        obj.tracked[t] = reverse
        obj.bank.prune(t, s, reverse)
        obj.set_window(t, windows[obj.obj_id])
    low = torch.cat([results[i].mask_logits for i in ids]).to(runner.device)
    if all(windows[i] is None for i in ids):
        crops = runner.frame_crops(low)
    else:
        crops = (
            next(runner.frame_crops(low[k : k + 1], windows[i])) for k, i in enumerate(ids)
        )
    winner, masks = volume.write(t, ids, fit.cut(t, ids, crops))
    scores = torch.sigmoid(torch.cat([results[i].object_score for i in ids]).float())
    runner.stats["frames_propagated"] += 1
    boxes = np.zeros((len(ids), 4), np.int64)
    out = []
    for k, item in enumerate(masks):
        if item is None:
            out.append(np.zeros((0, 0), bool))
            continue
        boxes[k] = item[0]
        y0, x0, y1, x1 = item[0]
        if s.non_overlap:  # only the pixels the object won
            out.append(item[1] & (winner[y0:y1, x0:x1] == k))
        else:
            out.append(item[1])
    return FrameResult(
        t,
        ids,
        scores=scores[:, 0].cpu().numpy(),
        boxes=boxes,
        crops=out,
        shape=volume.shape[1:],
    )
