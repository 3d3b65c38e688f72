"""Training checkpoints: the resumable state in ``<out_dir>/last.pt`` and the model in
``<out_dir>/model.pt``.

``last.pt`` holds ``{"model", "optimizer", "step", "rng", "torch_rng", "train_config"}``: the
weights, the optimiser's state, the number of optimiser steps done, the state of the numpy
generator that draws the clips and prompts, torch's CPU RNG state, and the hyper-parameters. It
is written to ``last.pt.part`` first and then renamed, so an interrupted save never leaves a
broken ``last.pt``. ``model.pt`` is written by :func:`napari_sam2.weights.load.save_checkpoint`
in Meta's layout (``{"model": state_dict}`` plus our ``"config"``), loadable by
:func:`napari_sam2.load_model`.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..model.sam2 import SAM2Model
from ..weights.load import save_checkpoint
from .train_config import TrainConfig

__all__ = ["LAST_NAME", "MODEL_NAME", "restore_training_state", "save_training_state"]

#: File name of the resumable training state inside the output folder.
LAST_NAME = "last.pt"
#: File name of the trained model inside the output folder.
MODEL_NAME = "model.pt"


def restore_training_state(
    out_dir: Path,
    model: SAM2Model,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
) -> int:
    """Load ``out_dir/last.pt`` into the model, the optimiser and the RNGs, when it exists.

    Args:
        out_dir: the run's output folder.
        model: receives the saved weights.
        optimizer: receives the saved optimiser state (same parameter groups).
        rng: the clip / prompt generator; its state is restored.

    Returns:
        The number of optimiser steps already done (0 when there is nothing to resume).
    """
    last = out_dir / LAST_NAME
    if not last.exists():
        return 0
    state = torch.load(last, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"])


def save_training_state(
    out_dir: Path,
    model: SAM2Model,
    optimizer: torch.optim.Optimizer,
    step: int,
    rng: np.random.Generator,
    tcfg: TrainConfig,
) -> None:
    """Write ``out_dir/last.pt`` (atomically) and ``out_dir/model.pt``.

    Args:
        out_dir: the run's output folder (exists).
        model: the model being trained.
        optimizer: its optimiser.
        step: optimiser steps done so far.
        rng: the clip / prompt generator (its state is saved).
        tcfg: the hyper-parameters, saved with both files.
    """
    tmp = out_dir / (LAST_NAME + ".part")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "train_config": asdict(tcfg),
        },
        tmp,
    )
    os.replace(tmp, out_dir / LAST_NAME)
    save_checkpoint(out_dir / MODEL_NAME, model, train_config=asdict(tcfg), step=step)
