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

This module is the optimisation loop. The parts it chains live beside it: the hyper-parameters
in ``train_config.py``, the clips in ``clips.py``, simulated prompts in ``clicks.py``, one
clip's forward pass and loss in ``clip_loss.py`` (losses in ``losses.py``), and the files of a
run in ``checkpoint.py``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..model.config import get_config
from ..model.sam2 import SAM2Model
from .checkpoint import restore_training_state, save_training_state
from .clip_loss import clip_loss
from .clips import Clip, clip_stream
from .train_config import TrainConfig

__all__ = ["train"]


def _lr_at(step: int, tcfg: TrainConfig) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up over
    ``warmup_steps``, then cosine decay to 2 % of ``lr`` at ``steps``."""
    if step < tcfg.warmup_steps:
        return tcfg.lr * (step + 1) / tcfg.warmup_steps
    frac = (step - tcfg.warmup_steps) / max(1, tcfg.steps - tcfg.warmup_steps)
    return tcfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def _optimizer(params: list[torch.nn.Parameter], tcfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and kernels only (not on biases, norms, tokens)."""
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": tcfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=tcfg.lr,
    )


def train(
    model: SAM2Model | str = "micro",
    tcfg: TrainConfig | None = None,
    out_dir: str | os.PathLike = "runs/micro",
    *,
    clips: Callable[[np.random.Generator], Iterator[Clip]] | None = None,
    device: str = "cpu",
    log: Callable[[dict], None] | None = print,
    clip_workers: int = 0,
    stop_at: float | None = None,
) -> SAM2Model:
    """Train (or continue training) a model; resumes from ``out_dir/last.pt`` when present.

    Args:
        model: a model, or a config name to start from random weights.
        tcfg: hyper-parameters.
        out_dir: checkpoints (``last.pt``, ``model.pt``) and ``metrics.jsonl``.
        clips: clip generator factory (default: synthetic movies); called with the RNG.
        device: torch device.
        log: called with each step's metrics dict (None: silent).
        clip_workers: render the synthetic clips in this many background processes
            (:class:`~napari_sam2.train.clip_workers.ClipWorkers`; for a GPU, which trains
            faster than one core renders); 0: in this process, reproducibly.
        stop_at: wall-clock time (``time.time()``, seconds) after which the run saves its
            state and returns, even before ``tcfg.steps`` (re-run to continue).

    Returns:
        The trained model (eval mode).
    """
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
    opt = _optimizer(params, tcfg)
    rng = np.random.default_rng(tcfg.seed)
    step = restore_training_state(out, model, opt, rng)
    if clips is None and clip_workers > 0:
        from .clip_workers import ClipWorkers

        stream = ClipWorkers(model.config, tcfg, clip_workers, start_step=step)
    else:
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
            late = stop_at is not None and time.time() >= stop_at
            if step % tcfg.save_every == 0 or step == tcfg.steps or late:
                save_training_state(out, model, opt, step, rng, tcfg)
            if late:
                break
    finally:
        metrics.close()
        if hasattr(stream, "close"):
            stream.close()
    return model.eval()
