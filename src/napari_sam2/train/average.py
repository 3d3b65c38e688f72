"""Weight averaging of fine-tuned checkpoints (a "model soup").

Two checkpoints of one architecture that descend from the same weights (a model and its
fine-tuned copy) usually lie in one basin of the loss, so their weighted average keeps most of
what each learned. For the bundled model this keeps the original generator's nuclei (the
model before fine-tuning) and the new looks (the fine-tuned one) better than either alone;
``docs/micro_model.md`` gives the measured numbers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["average_checkpoints"]


def average_checkpoints(
    paths: Sequence[str | os.PathLike],
    weights: Sequence[float],
    out: str | os.PathLike,
    note: str | None = None,
) -> Path:
    """Write the weighted average of checkpoints' parameters.

    Args:
        paths: checkpoints in our (Meta's) layout, ``{"model": state_dict, "config": ...}``,
            all of one architecture (same keys and shapes).
        weights: one non-negative weight per checkpoint; they are normalised to sum to 1.
        out: the averaged checkpoint's path. It takes the config and metadata of the LAST
            checkpoint; ``"init"`` records the average (or ``note``).
        note: provenance text stored under ``"init"`` (default: the paths and weights).

    Returns:
        ``out`` as a Path (written atomically).

    Raises:
        ValueError: on a weight count that does not match, negative or all-zero weights, or
            checkpoints whose parameters differ in names or shapes.
    """
    if len(paths) != len(weights) or not paths:
        raise ValueError(f"give one weight per checkpoint: {len(paths)} paths, {len(weights)} "
                         "weights")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be non-negative and not all zero, got {list(weights)}")
    total = float(sum(weights))
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
    ref = states[-1]["model"]
    for p, s in zip(paths, states):
        m = s["model"]
        if set(m) != set(ref) or any(m[k].shape != ref[k].shape for k in ref):
            raise ValueError(f"{p} is not the architecture of {paths[-1]}: parameter names or "
                             "shapes differ; only checkpoints of one model can be averaged")
    avg = {}
    for k, v in ref.items():
        if not v.is_floating_point():
            avg[k] = v.clone()  # counters and indices: the last checkpoint's
            continue
        acc = sum(float(w) / total * s["model"][k].double() for w, s in zip(weights, states))
        avg[k] = acc.to(v.dtype)
    from ..weights.load import load_model, save_checkpoint

    model = load_model(paths[-1], device="cpu")
    model.load_state_dict(avg)
    extra = {k: v for k, v in states[-1].items() if k not in ("model", "config")}
    extra["init"] = note or "average of " + ", ".join(
        f"{w / total:.3g} x {Path(p).name}" for p, w in zip(paths, weights))
    return save_checkpoint(out, model, **extra)
