"""``napari-sam2 train`` and ``napari-sam2 finetune`` (package-private; see ``cli``)."""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROG,
    CLIError,
    _desc,
    _err,
    _Formatter,
    _info,
    _load_model_cli,
    _movie_input,
    _one_line,
    _parse_channel,
    _tqdm,
)


def _train_config(args: argparse.Namespace, **base: Any):
    from ..train.train_config import TrainConfig

    values = dict(base)
    for name in (
        "steps",
        "clip_len",
        "max_objects",
        "single_frame_fraction",
        "correction_rounds",
        "lr",
        "warmup_steps",
        "frame_size",
        "save_every",
        "seed",
    ):
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    if getattr(args, "kinds", None):
        values["kinds"] = tuple(args.kinds)
    if getattr(args, "bf16", False):
        values["bf16"] = True
    if getattr(args, "freeze_image_encoder", False):
        values["freeze_image_encoder"] = True
    tcfg = TrainConfig(**values)
    for name in ("steps", "clip_len", "max_objects", "save_every"):
        if getattr(tcfg, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1")
    return tcfg


def _resume_step(out: Path) -> int:
    last = out / "last.pt"
    if not last.is_file():
        return 0
    import torch

    try:
        state = torch.load(last, map_location="cpu", weights_only=False)
        return int(state["step"])
    except Exception as err:  # noqa: BLE001
        raise CLIError(
            f"cannot resume from {last} ({_one_line(err)}); delete it to start over"
        ) from None


def _run_training(
    model, tcfg, out: Path, device, clips, *, quiet: bool, label: str, threads: int | None
) -> int:
    import torch

    from ..train.trainer import train

    if threads:
        torch.set_num_threads(threads)
    start = _resume_step(out)
    if start:
        _info(f"resuming from {out / 'last.pt'} at step {start}", quiet)
    if start >= tcfg.steps:
        print(
            f"{out / 'last.pt'} is already at step {start} >= --steps {tcfg.steps}: nothing to "
            "do (raise --steps to train longer)"
        )
        return EXIT_OK
    bar = _tqdm(tcfg.steps, label, "step", quiet, initial=start)
    last: dict = {}

    def log(rec: dict) -> None:
        last.update(rec)
        bar.update(rec["step"] - bar.n)
        post = {k: f"{rec[k]:.3g}" for k in ("loss", "iou", "track_iou") if k in rec}
        bar.set_postfix(post, refresh=False)

    t0 = time.perf_counter()
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
    try:
        train(model, tcfg, out, clips=clips, device=str(device), log=log)
    except KeyboardInterrupt:
        bar.close()
        saved = _resume_step(out)
        _err(
            f"interrupted at step {last.get('step', start)}; {out / 'last.pt'} holds step "
            f"{saved} (saved every {tcfg.save_every} steps): run the same command to resume"
        )
        return EXIT_INTERRUPTED
    finally:
        bar.close()
    took = time.perf_counter() - t0
    loss = f", last loss {last['loss']:.4g}" if "loss" in last else ""
    print(f"trained to step {tcfg.steps} in {took:.1f} s{loss}")
    print(f"weights: {out / 'model.pt'}   (use: --model {out / 'model.pt'})")
    print(f"resume or extend: run the same command with a larger --steps ({out / 'last.pt'})")
    print(f"metrics per step: {out / 'metrics.jsonl'}")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from ..model.config import CONFIGS
    from ..weights.load import resolve_device

    if args.config not in CONFIGS:
        raise CLIError(f"unknown --config {args.config!r}; known: {', '.join(sorted(CONFIGS))}")
    tcfg = _train_config(args)
    out = Path(args.out or f"runs/{args.config}")
    device = resolve_device(args.device)
    _info(
        f"training {args.config} from scratch on synthetic movies ({', '.join(tcfg.kinds)}) on "
        f"{device}: {tcfg.steps} steps, clips of {tcfg.clip_len} frames, <= {tcfg.max_objects} "
        f"objects -> {out}",
        args.quiet,
    )
    return _run_training(
        args.config,
        tcfg,
        out,
        device,
        None,
        quiet=args.quiet,
        label="training",
        threads=args.threads,
    )


class _MovieView:
    """(T, H, W) single-channel view of a FrameSource, sliceable along T (for fine-tuning)."""

    def __init__(self, frames, channel: int | None) -> None:
        self._frames = frames
        self._channel = channel
        first = self._frame(0)
        self.shape = (frames.num_frames, *first.shape)
        self.dtype = first.dtype

    def _frame(self, t: int):
        f = self._frames.raw(t)
        if f.ndim == 3:
            f = f[..., self._channel or 0]
        return f

    def __getitem__(self, index):
        import numpy as np

        ts = range(self.shape[0])[index]
        if isinstance(ts, int):
            return self._frame(ts)
        return np.stack([self._frame(t) for t in ts]) if len(ts) else np.zeros((0, *self.shape[1:]))


def cmd_finetune(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io.label_checks import check_labels
    from ..io.tiff import load_labels_tiff
    from ..train.clips import finetune_clips
    from ..video.frames import FrameSource
    from ..weights.load import resolve_device

    channel = _parse_channel(args.channel)
    if isinstance(channel, tuple):
        raise CLIError("finetune takes a single --channel")
    movie = _movie_input(args.movie)
    if not Path(args.labels).is_file():
        raise CLIError(f"labels not found: {args.labels}")
    frames = FrameSource(movie, axes=args.axes, channel=channel, prefetch=False)
    view = _MovieView(frames, channel)
    try:
        labels = load_labels_tiff(args.labels)
    except Exception as err:  # noqa: BLE001
        raise CLIError(f"cannot read labels {args.labels}: {_one_line(err)}") from None
    if labels.ndim == 2:
        labels = labels[None]
    try:
        labels = check_labels(
            labels,
            shape=view.shape,
            name=f"labels {Path(args.labels).name}",
            shape_of="the movie frames (T, H, W)",
        )
    except ValueError as err:
        raise CLIError(str(err)) from None
    if not any(np.bincount(labels[t].ravel())[1:].max(initial=0) >= 10 for t in range(len(labels))):
        raise CLIError(f"{args.labels} holds no object of at least 10 pixels to learn from")
    steps = args.steps
    warmup = args.warmup_steps if args.warmup_steps is not None else max(1, min(50, steps // 10))
    tcfg = _train_config(args, lr=1e-4, warmup_steps=warmup, save_every=50)
    out = Path(args.out)
    device = resolve_device(args.device)
    model = _load_model_cli(args.checkpoint, "cpu", args.quiet)
    clips = finetune_clips(view, labels, model.config, tcfg)
    frozen = ", image encoder frozen" if tcfg.freeze_image_encoder else ""
    _info(
        f"fine-tuning {model.config.name} on {Path(args.movie).name} ({view.shape[0]} frames) "
        f"on {device}: {tcfg.steps} steps, lr {tcfg.lr:g}{frozen} -> {out}",
        args.quiet,
    )
    return _run_training(
        model,
        tcfg,
        out,
        device,
        clips,
        quiet=args.quiet,
        label="fine-tuning",
        threads=args.threads,
    )


_TRAIN_EPILOG = f"""\
examples:
  {PROG} train --steps 200 --config test_tiny_256 --clip-len 3 --max-objects 4 --out runs/try
  {PROG} train --steps 6000 --clip-len 5 --single-frame-fraction 0.5 --save-every 50 \\
      --out runs/micro       # like scripts/train_micro.py (the bundled model): hours on a CPU
Run the same command again (with a larger --steps) to resume from OUT/last.pt.
"""

_FINETUNE_EPILOG = f"""\
examples:
  {PROG} finetune micro --movie movie.tif --labels labels.tif --out runs/ft --steps 300
  {PROG} finetune sam2.1_hiera_tiny --movie m.tif --labels l.tif --freeze-image-encoder \\
      --device cuda --out runs/ft_tiny
Then: {PROG} segment new.tif --prompts clicks.csv --model runs/ft/model.pt
The labels must have the movie's (T, H, W) and consistent ids over time (e.g. corrected
napari-sam2 output).
"""


def _add_training_flags(p: argparse.ArgumentParser, finetune: bool) -> argparse._ArgumentGroup:
    """Flags shared by train and finetune (defaults: TrainConfig's, or fine-tuning ones)."""
    g = p.add_argument_group("training")
    defaults = {  # shown in --help; the values themselves come from TrainConfig / cmd_finetune
        "steps": "300" if finetune else "4000",
        "lr": "1e-4" if finetune else "6e-4",
        "warmup": "steps/10, at most 50" if finetune else "200",
        "save": "50" if finetune else "100",
    }
    g.add_argument(
        "--steps",
        type=int,
        metavar="N",
        default=300 if finetune else None,
        help=f"optimiser steps in total (default: {defaults['steps']})",
    )
    g.add_argument(
        "--clip-len", type=int, metavar="K", help="frames per training clip (default: 6)"
    )
    g.add_argument("--max-objects", type=int, metavar="N", help="objects per clip (default: 8)")
    g.add_argument("--lr", type=float, help=f"peak learning rate (default: {defaults['lr']})")
    g.add_argument(
        "--warmup-steps",
        type=int,
        metavar="N",
        help=f"linear warm-up steps (default: {defaults['warmup']})",
    )
    g.add_argument(
        "--single-frame-fraction",
        type=float,
        metavar="F",
        help="share of single-frame steps (one click + corrective clicks) (default: 0.3)",
    )
    g.add_argument(
        "--correction-rounds",
        type=int,
        metavar="N",
        help="simulated corrective clicks per prompt (default: 2)",
    )
    g.add_argument(
        "--save-every",
        type=int,
        metavar="N",
        help=f"write OUT/last.pt and OUT/model.pt every N steps (default: {defaults['save']})",
    )
    g.add_argument("--seed", type=int, metavar="S", help="random seed (default: 0)")
    g.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda", "mps"],
        help="where to train (default: auto = CUDA, then MPS, then CPU)",
    )
    g.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    g.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch")
    return g


def add_train_parsers(sub, common: argparse.ArgumentParser) -> None:
    """Add the ``train`` and ``finetune`` subcommands to ``sub`` (argparse subparsers)."""
    # train
    p = sub.add_parser(
        "train",
        parents=[common],
        formatter_class=_Formatter,
        epilog=_TRAIN_EPILOG,
        help="train a model from scratch on synthetic time-lapses (resumable)",
        description=_desc(
            "Train a model from scratch on synthetic time-lapses (nuclei, phase-contrast "
            "cells, bacteria). Writes OUT/last.pt (resume state), OUT/model.pt (weights for "
            "--model) and OUT/metrics.jsonl."
        ),
    )
    p.add_argument(
        "--config",
        default="micro",
        metavar="NAME",
        help="architecture (default: %(default)s; e.g. test_tiny_256, sam2.1_hiera_tiny)",
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/CONFIG)")
    g = _add_training_flags(p, finetune=False)
    g.add_argument(
        "--kinds",
        nargs="+",
        choices=["nuclei", "phase", "bacteria"],
        metavar="KIND",
        help="synthetic movie kinds: nuclei, phase, bacteria (default: all three)",
    )
    g.add_argument(
        "--frame-size",
        type=int,
        metavar="PX",
        help="side of the synthetic frames (default: the model input size)",
    )
    p.set_defaults(func=cmd_train)

    # finetune
    p = sub.add_parser(
        "finetune",
        parents=[common],
        formatter_class=_Formatter,
        epilog=_FINETUNE_EPILOG,
        help="fine-tune a model on your own annotated movie (resumable)",
        description=_desc(
            "Fine-tune CHECKPOINT (a model name or .pt file) on a movie and its label "
            "TIFF. Writes OUT/model.pt, OUT/last.pt and OUT/metrics.jsonl."
        ),
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="model name or checkpoint file")
    p.add_argument("--movie", required=True, metavar="M.tif", help="movie (T, Y, X)")
    p.add_argument("--labels", required=True, metavar="L.tif", help="labels (T, Y, X)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--freeze-image-encoder",
        action="store_true",
        help="train only the memory and decoder parts (little data)",
    )
    p.add_argument("--axes", metavar="AXES", help="axes of the movie, e.g. TCYX")
    p.add_argument("--channel", metavar="N", help="channel to train on (multi-channel movies)")
    _add_training_flags(p, finetune=True)
    p.set_defaults(func=cmd_finetune)
