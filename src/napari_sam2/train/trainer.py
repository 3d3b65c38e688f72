"""Train or fine-tune a SAM 2 model on time-lapse clips (synthetic or the user's own).

The recipe follows SAM 2's: a clip of K frames; the first frame gets a prompt drawn at random
(one click, a box, or the true mask), the decoder is refined with simulated corrective clicks on
its error regions, then the remaining frames are tracked through the memory, exactly as the
video session does at inference. Losses are SAM 2's: focal + dice on masks (the best of the
multimask candidates), L1 on the IoU head, BCE on object presence. AdamW with linear warm-up
and cosine decay, gradient clipping, optional bf16 autocast (CPU or CUDA).

Training is resumable: ``<out_dir>/last.pt`` holds weights, optimiser, scheduler step and RNG
state; ``<out_dir>/metrics.jsonl`` logs every step. The weights are saved in Meta's layout
(``{"model": state_dict}`` plus our ``"config"``), loadable by :func:`napari_sam2.load_model`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..model.config import SAM2Config, get_config
from ..model.sam2 import FrameFeatures, SAM2Model
from ..video.frames import FrameSource

__all__ = [
    "Clip",
    "TrainConfig",
    "clip_stream",
    "finetune_clips",
    "loss_terms",
    "train",
]


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run (all saved with the checkpoints).

    Attributes:
        steps: optimiser steps in total.
        clip_len: frames per clip (1 = single-frame promptable segmentation only).
        single_frame_fraction: share of steps spent on single-frame segmentation with
            corrective clicks (cheap: one encoding, many decoder passes).
        max_objects: objects per clip (batched through the model).
        correction_rounds: simulated corrective clicks after the first prompt.
        lr, weight_decay, warmup_steps, grad_clip: optimiser settings.
        focal_weight, dice_weight, iou_weight, score_weight: loss weights (SAM 2's 20:1:1:1).
        focal_alpha: weight of positive pixels in the focal loss (SAM 2: 0.25).
        balanced_bce_weight: extra BCE in which an object's pixels and the background weigh
            equally, whatever the object's size; helps a model trained from scratch out of the
            "everything is background" minimum (0 = SAM 2's losses only).
        kinds: synthetic movie kinds to sample (:func:`~napari_sam2.train.synthetic.make_movie`).
        families: appearance families of :mod:`napari_sam2.train.looks` to sample instead of
            ``kinds`` (e.g. ``("nuclei", "phase", "bacteria")``); when given, each clip is a
            :func:`~napari_sam2.train.looks.make_look` movie with all its parameters drawn at
            random, and ``kinds``, ``radius`` and ``density`` are not used (``motion_step``,
            when set, still overrides the random-walk step).
        frame_size: side of the synthetic frames (pixels); the model input size by default.
        radius: cell radius range in pixels of the synthetic frames.
        density: range of the fraction of the frame that the cells cover (their mean disc area
            times their number, over the frame's area) from which each clip's cell count is
            drawn (2 to 60 cells); higher: more crowded, touching cells.
        motion_step: range (px per frame, at the synthetic frames' size) from which each clip's
            random-walk step is drawn; None: the kind's default (1.5 px for nuclei). Faster
            cells teach the memory to follow the image rather than copy the last mask.
        seed: RNG seed (data and initialisation).
        bf16: autocast in bfloat16.
        save_every: checkpoint interval in steps.
        freeze_image_encoder: keep the image encoder fixed (fine-tuning on little data).
    """

    steps: int = 4000
    clip_len: int = 6
    single_frame_fraction: float = 0.3
    max_objects: int = 8
    correction_rounds: int = 2
    lr: float = 6e-4
    weight_decay: float = 0.05
    warmup_steps: int = 200
    grad_clip: float = 1.0
    focal_weight: float = 20.0
    dice_weight: float = 1.0
    iou_weight: float = 1.0
    score_weight: float = 1.0
    focal_alpha: float = 0.25
    balanced_bce_weight: float = 0.0
    kinds: tuple[str, ...] = ("nuclei", "phase", "bacteria")
    families: tuple[str, ...] = ()
    frame_size: int | None = None
    radius: tuple[float, float] = (14.0, 34.0)
    density: tuple[float, float] = (0.15, 0.45)
    motion_step: tuple[float, float] | None = None
    seed: int = 0
    bf16: bool = False
    save_every: int = 100
    freeze_image_encoder: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class Clip:
    """Model-ready training clip.

    Attributes:
        images: (K, 3, S, S) normalised model input.
        targets: (K, N, S, S) float {0, 1} masks of N objects at model resolution.
    """

    images: torch.Tensor
    targets: torch.Tensor


def _to_model(movie: np.ndarray, labels: np.ndarray, ids: list[int], cfg: SAM2Config) -> Clip:
    """Normalise a (K, H, W) movie like the video session does and resize masks to S x S."""
    src = FrameSource(
        movie,
        axes="TYX",
        image_size=cfg.image_size,
        pixel_mean=cfg.pixel_mean,
        pixel_std=cfg.pixel_std,
        prefetch=False,
    )
    images = torch.stack([src.model_input(t) for t in range(len(movie))])
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
    """Endless synthetic training clips (new random movie each time)."""
    from .synthetic import make_movie

    size = tcfg.frame_size or cfg.image_size
    if tcfg.families:
        yield from _look_stream(cfg, tcfg, size, rng)
        return
    while True:
        kind = tcfg.kinds[int(rng.integers(len(tcfg.kinds)))]
        r0, r1 = tcfg.radius
        lo = float(rng.uniform(r0, (r0 + r1) / 2))
        hi = float(rng.uniform(lo + 2, r1))
        area = size * size
        n_cells = int(
            np.clip(area / (math.pi * ((lo + hi) / 2) ** 2) * rng.uniform(*tcfg.density), 2, 60)
        )
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
    """Clip of up to ``tcfg.max_objects`` random objects of frame 0 (>= 30 px), or None."""
    labels = _family_labels(labels, lineage)
    ids, counts = np.unique(labels[0], return_counts=True)
    keep = [(int(i), int(c)) for i, c in zip(ids, counts) if i and c >= 30]
    if not keep:
        return None
    rng.shuffle(keep)
    ids_sel = [i for i, _ in keep[: tcfg.max_objects]]
    return _to_model(movie, labels, ids_sel, cfg)


# ---------------------------------------------------------------------- prompts


def _sample_click(mask: np.ndarray, rng: np.random.Generator, interior: bool = True):
    """A point (x, y) inside ``mask``, biased to its interior (distance transform)."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    if interior:
        dist = ndimage.distance_transform_edt(mask)[ys, xs]
        p = dist / dist.sum() if dist.sum() > 0 else None
        k = rng.choice(len(ys), p=p)
    else:
        k = rng.integers(len(ys))
    return float(xs[k]), float(ys[k])


def _box(mask: np.ndarray, rng: np.random.Generator, jitter: float = 0.1):
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    h, w = y1 - y0 + 1, x1 - x0 + 1
    n = rng.normal(0, jitter, 4) * np.array([w, h, w, h])
    s = mask.shape[0] - 1
    return (
        float(np.clip(x0 + n[0], 0, s)),
        float(np.clip(y0 + n[1], 0, s)),
        float(np.clip(x1 + n[2], 0, s)),
        float(np.clip(y1 + n[3], 0, s)),
    )


def _correction(pred: np.ndarray, target: np.ndarray, rng: np.random.Generator):
    """A corrective click in the largest error region: positive on a miss, negative on a
    false detection; None when the prediction is perfect."""
    err = pred != target
    if not err.any():
        return None
    lab, n = ndimage.label(err)
    sizes = np.bincount(lab.ravel())[1:]
    region = lab == (int(np.argmax(sizes)) + 1)
    xy = _sample_click(region, rng)
    positive = bool(target[region].mean() > 0.5)
    return xy, 1 if positive else 0


# ---------------------------------------------------------------------- losses


def loss_terms(
    logits: torch.Tensor,
    ious: torch.Tensor,
    obj_logits: torch.Tensor,
    target: torch.Tensor,
    tcfg: TrainConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SAM 2's losses for one prediction step.

    Args:
        logits: (B, M, h, w) candidate mask logits (any resolution; targets are resized).
        ious: (B, M) predicted IoU.
        obj_logits: (B, 1) object presence logit.
        target: (B, S, S) binary target.

    Returns:
        (total loss, dict of float components).
    """
    b, m = logits.shape[:2]
    up = F.interpolate(logits.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
    t = target[:, None].expand_as(up)
    prob = up.sigmoid()
    # focal loss (alpha 0.25, gamma 2) per candidate, mean over pixels
    ce = F.binary_cross_entropy_with_logits(up, t, reduction="none")
    p_t = prob * t + (1 - prob) * (1 - t)
    alpha = tcfg.focal_alpha
    focal = (ce * (1 - p_t) ** 2 * (alpha * t + (1 - alpha) * (1 - t))).flatten(2).mean(-1)
    inter = (prob * t).flatten(2).sum(-1)
    dice = 1 - (2 * inter + 1) / (prob.flatten(2).sum(-1) + t.flatten(2).sum(-1) + 1)  # (B, M)
    with torch.no_grad():
        hard = (up > 0).float()
        i = (hard * t).flatten(2).sum(-1)
        u = ((hard + t) > 0).float().flatten(2).sum(-1)
        actual_iou = torch.where(u > 0, i / u.clamp(min=1), torch.ones_like(u))
    present = (target.flatten(1).sum(-1) > 0).float()  # (B,)
    per_cand = tcfg.focal_weight * focal + tcfg.dice_weight * dice
    if tcfg.balanced_bce_weight:
        n_pos = t.flatten(2).sum(-1).clamp(min=1)
        n_neg = (1 - t).flatten(2).sum(-1).clamp(min=1)
        pos = (ce * t).flatten(2).sum(-1) / n_pos
        neg = (ce * (1 - t)).flatten(2).sum(-1) / n_neg
        per_cand = per_cand + tcfg.balanced_bce_weight * 0.5 * (pos + neg)
    best = per_cand.argmin(dim=1)  # only the best candidate gets mask gradients
    rows = torch.arange(b, device=logits.device)
    mask_loss = (per_cand[rows, best] * present).sum() / present.sum().clamp(min=1)
    iou_loss = (F.l1_loss(ious.float(), actual_iou, reduction="none").mean(-1) * present).sum()
    iou_loss = iou_loss / present.sum().clamp(min=1)
    score_loss = F.binary_cross_entropy_with_logits(obj_logits.float()[:, 0], present)
    total = mask_loss + tcfg.iou_weight * iou_loss + tcfg.score_weight * score_loss
    with torch.no_grad():
        iou_best = actual_iou[rows, ious.argmax(1)]
        mean_iou = float((iou_best * present).sum() / present.sum().clamp(min=1))
    return total, {
        "mask": mask_loss.item(),
        "iou_head": iou_loss.item(),
        "score": score_loss.item(),
        "iou": mean_iou,
    }


# ---------------------------------------------------------------------- one clip


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
):
    """Prompt the first frame (click / box / mask), then corrective clicks. Returns the final
    HeadOutput (used for the frame's memory)."""
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
            x0, y0, x1, y1 = _box(tnp[k], rng)
            coords.append([(x0, y0), (x1, y1)])
            labels.append([2, 3])
        else:
            coords.append([_sample_click(tnp[k], rng)])
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
            corr = _correction(pred[k], tnp[k], rng)
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
    """Loss of one clip: prompted first frame, then (unless ``single_frame``) tracking."""
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


# ---------------------------------------------------------------------- loop


def _lr_at(step: int, tcfg: TrainConfig) -> float:
    if step < tcfg.warmup_steps:
        return tcfg.lr * (step + 1) / tcfg.warmup_steps
    frac = (step - tcfg.warmup_steps) / max(1, tcfg.steps - tcfg.warmup_steps)
    return tcfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def train(
    model: SAM2Model | str = "micro",
    tcfg: TrainConfig | None = None,
    out_dir: str | os.PathLike = "runs/micro",
    *,
    clips: Callable[[np.random.Generator], Iterator[Clip]] | None = None,
    device: str = "cpu",
    log: Callable[[dict], None] | None = print,
) -> SAM2Model:
    """Train (or continue training) a model; resumes from ``out_dir/last.pt`` when present.

    Args:
        model: a model, or a config name to start from random weights.
        tcfg: hyper-parameters.
        out_dir: checkpoints (``last.pt``, ``model.pt``) and ``metrics.jsonl``.
        clips: clip generator factory (default: synthetic movies); called with the RNG.
        device: torch device.
        log: called with each step's metrics dict (None: silent).

    Returns:
        The trained model (eval mode).
    """
    from ..weights.load import save_checkpoint

    tcfg = tcfg or TrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(tcfg.seed)
    if isinstance(model, str):
        model = SAM2Model(get_config(model))
    model = model.to(device).train()
    if tcfg.freeze_image_encoder:
        for p in model.image_encoder.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": tcfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=tcfg.lr,
    )
    step = 0
    rng = np.random.default_rng(tcfg.seed)
    last = out / "last.pt"
    if last.exists():
        state = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
    stream = (clips or (lambda r: clip_stream(model.config, tcfg, r)))(rng)
    metrics = (out / "metrics.jsonl").open("a")
    autocast = (
        torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
        if tcfg.bf16
        else torch.autocast("cpu", enabled=False)
    )
    try:
        while step < tcfg.steps:
            t0 = time.perf_counter()
            clip = next(stream)
            single = tcfg.clip_len == 1 or rng.random() < tcfg.single_frame_fraction
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, tcfg)
            with autocast:
                loss, parts = clip_loss(model, clip, tcfg, rng, single)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, tcfg.grad_clip)
            opt.step()
            step += 1
            rec = {
                "step": step,
                "loss": loss.item(),
                "lr": opt.param_groups[0]["lr"],
                "grad_norm": float(gnorm),
                "single": single,
                "sec": round(time.perf_counter() - t0, 3),
                **parts,
            }
            metrics.write(json.dumps(rec) + "\n")
            metrics.flush()
            if log:
                log(rec)
            if step % tcfg.save_every == 0 or step == tcfg.steps:
                tmp = out / "last.pt.part"
                torch.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "step": step,
                        "rng": rng.bit_generator.state,
                        "torch_rng": torch.get_rng_state(),
                        "train_config": asdict(tcfg),
                    },
                    tmp,
                )
                os.replace(tmp, last)
                save_checkpoint(out / "model.pt", model, train_config=asdict(tcfg), step=step)
    finally:
        metrics.close()
    return model.eval()


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
