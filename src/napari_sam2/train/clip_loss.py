"""The loss of one training clip: the model run as the video session runs it.

The first frame gets a random prompt (a click, a box or the true mask) and simulated corrective
clicks (:mod:`.clicks`); then (unless the step is a single-frame one) the remaining frames are
tracked through the memory, each frame's prediction scored with :func:`.losses.loss_terms`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..model.sam2 import FrameFeatures, HeadOutput, SAM2Model
from .clicks import corrective_click, jittered_box, sample_click
from .clips import Clip
from .losses import loss_terms
from .train_config import TrainConfig

__all__ = ["clip_loss"]


def _prompt_step(
    model: SAM2Model,
    feats: FrameFeatures,
    pix: torch.Tensor,
    target: torch.Tensor,
    tcfg: TrainConfig,
    rng: np.random.Generator,
    losses: list,
    logs: list,
    allow_mask: bool = True,
) -> HeadOutput:
    """Prompt the first frame (click / box / mask), then corrective clicks.

    Appends each decoder pass's loss to ``losses`` and its float components to ``logs``, and
    returns the final :class:`HeadOutput` (used for the frame's memory).
    """
    b = target.shape[0]
    s = model.image_size
    tnp = target.cpu().numpy() > 0.5
    kind = rng.choice(["click", "box", "mask"], p=[0.5, 0.35, 0.15]) if allow_mask else (
        rng.choice(["click", "box"], p=[0.6, 0.4])
    )
    if kind == "mask":
        head = model.mask_as_output(feats, target[:, None])
        return head
    coords, labels = [], []
    for k in range(b):
        if kind == "box":
            x0, y0, x1, y1 = jittered_box(tnp[k], rng)
            coords.append([(x0, y0), (x1, y1)])
            labels.append([2, 3])
        else:
            coords.append([sample_click(tnp[k], rng)])
            labels.append([1])
    dev = target.device
    c = torch.tensor(coords, dtype=torch.float32, device=dev)
    lab = torch.tensor(labels, dtype=torch.int32, device=dev)
    prev = None
    head = None
    for round_ in range(tcfg.correction_rounds + 1):
        multimask = model.use_multimask(True, c.shape[1])
        head = model.predict_masks(
            pix, feats.high_res, c, lab, mask_input=prev, multimask=multimask
        )
        loss, log = loss_terms(
            head.raw_multimask_logits, head.ious, head.object_score_logits, target, tcfg
        )
        losses.append(loss)
        logs.append(log)
        if round_ == tcfg.correction_rounds:
            break
        pred = (
            (
                F.interpolate(
                    head.mask_logits.detach(), size=(s, s), mode="bilinear", align_corners=False
                )[:, 0]
                > 0
            )
            .cpu()
            .numpy()
        )
        new_c, new_l = [], []
        for k in range(b):
            corr = corrective_click(pred[k], tnp[k], rng)
            if corr is None:
                new_c.append((0.0, 0.0))
                new_l.append(-1)  # padding point
            else:
                new_c.append(corr[0])
                new_l.append(corr[1])
        c = torch.cat([c, torch.tensor(new_c, device=dev)[:, None]], dim=1)
        lab = torch.cat([lab, torch.tensor(new_l, dtype=torch.int32, device=dev)[:, None]], dim=1)
        prev = head.mask_logits.detach().clamp(-32.0, 32.0)
    return head


def clip_loss(
    model: SAM2Model, clip: Clip, tcfg: TrainConfig, rng: np.random.Generator, single_frame: bool
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one clip: prompted first frame, then (unless ``single_frame``) tracking.

    Args:
        model: the model being trained (its device is used).
        clip: images (K, 3, S, S) and targets (K, N, S, S) of N objects.
        tcfg: loss weights and ``correction_rounds``.
        rng: random generator of the prompts.
        single_frame: only the first frame, prompted by a click or a box (no mask prompt).

    Returns:
        (mean loss over the prediction steps, float components: ``mask``, ``iou_head``,
        ``score``, ``iou`` of the prompted frame, plus ``track_iou`` when frames were tracked).
    """
    dev = next(model.parameters()).device
    images = clip.images.to(dev)
    targets = clip.targets.to(dev)
    k_frames = 1 if single_frame else images.shape[0]
    n = targets.shape[1]
    feats_all = model.encode_image(images[:k_frames])
    losses: list[torch.Tensor] = []
    logs: list[dict] = []
    cfg = model.config

    def frame_feats(t: int) -> FrameFeatures:
        f = FrameFeatures(
            feats_all.vision[t : t + 1],
            feats_all.vision_pos[t : t + 1],
            tuple(x[t : t + 1] for x in feats_all.high_res),
        )
        return f.expand(n)

    f0 = frame_feats(0)
    head = _prompt_step(
        model, f0, model.no_memory(f0), targets[0], tcfg, rng, losses, logs,
        allow_mask=not single_frame,
    )
    if single_frame:
        total = torch.stack(losses).mean()
        return total, {k: float(np.mean([d[k] for d in logs])) for k in logs[0]}
    mem0 = model.encode_memory(
        f0,
        head.mask_logits_hr,
        head.object_score_logits,
        binarize=cfg.binarize_mask_from_pts_for_mem_enc,
    )
    cond = (mem0, head.obj_ptr)
    prev_logits = head.mask_logits
    recent: list[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]] = []
    max_ptrs = min(k_frames, cfg.max_obj_ptrs_in_encoder)
    track_logs = []
    for t in range(1, k_frames):
        ft = frame_feats(t)
        spatial = [(0, cond[0][0], cond[0][1])]
        for back, (m, _) in enumerate(reversed(recent[-(cfg.num_maskmem - 1) :]), start=1):
            spatial.append((cfg.num_maskmem - back, m[0], m[1]))
        pointers = [(t, cond[1])] + [
            (back, p) for back, (_, p) in enumerate(reversed(recent[-(max_ptrs - 1) :]), start=1)
        ]
        memory, memory_pos, n_ptr = model.build_memory(spatial, pointers, max_ptrs)
        pix = model.attend_memory(ft, memory, memory_pos, n_ptr)
        prior = None
        if cfg.track_mask_prior:  # the previous frame's masks as mask prompts (as the session)
            prior = prev_logits.detach().float().clamp(-32.0, 32.0)
        out = model.predict_masks(pix, ft.high_res, mask_input=prior, multimask=True)
        prev_logits = out.mask_logits
        loss, log = loss_terms(
            out.raw_multimask_logits, out.ious, out.object_score_logits, targets[t], tcfg
        )
        losses.append(loss)
        track_logs.append(log)
        mem = model.encode_memory(ft, out.mask_logits_hr, out.object_score_logits, binarize=False)
        recent.append((mem, out.obj_ptr))
    total = torch.stack(losses).mean()
    out_log = {k: float(np.mean([d[k] for d in logs])) for k in logs[0]} if logs else {}
    out_log["track_iou"] = float(np.mean([d["iou"] for d in track_logs]))
    return total, out_log
