"""Recipe of the bundled micro model: train on synthetic time-lapses (resumable).

Run:  python scripts/train_micro.py [--steps N] [--out runs/micro] [--threads 1]
Re-running continues from ``<out>/last.pt``. The final weights are ``<out>/model.pt``; copy them
to ``src/napari_sam2/weights/micro.pt`` to ship them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from napari_sam2.train.trainer import TrainConfig, train

RECIPE = TrainConfig(
    steps=3000,
    clip_len=4,
    single_frame_fraction=0.5,
    max_objects=16,
    correction_rounds=2,
    lr=8e-4,
    warmup_steps=100,
    grad_clip=1.0,
    focal_alpha=0.75,
    balanced_bce_weight=1.0,
    # fluorescent nuclei (the main use) and phase-contrast-like cells; no bacteria: the
    # generator's rods are 3-5 px wide, under a pixel of the decoder's 64 x 64 masks
    kinds=("nuclei", "phase"),
    radius=(14.0, 34.0),
    seed=0,
    save_every=25,
)
#: "nuclei": fluorescent nuclei only, from random weights (the first stage of the shipped model;
#: the default recipe continues from it with ``--init``, see the model card).
VARIANTS = {
    "default": {},
    "nuclei": {"kinds": ("nuclei",), "radius": (14.0, 34.0), "seed": 1},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=RECIPE.steps)
    ap.add_argument("--out", default="runs/micro")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="default")
    ap.add_argument("--clip-len", type=int, default=None, help="frames per clip (default: recipe)")
    ap.add_argument("--single-frame-fraction", type=float, default=None, help="default: recipe")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: recipe)")
    ap.add_argument("--init", help="start from these weights (a checkpoint) instead of random ones")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recipe = TrainConfig(**{**RECIPE.__dict__, **VARIANTS[args.variant], "steps": args.steps})
    if args.clip_len:
        recipe.clip_len = args.clip_len
    if args.lr is not None:
        recipe.lr = args.lr
    if args.single_frame_fraction is not None:
        recipe.single_frame_fraction = args.single_frame_fraction

    def log(rec: dict) -> None:
        if rec["step"] % 10 == 0:
            keys = ("step", "loss", "iou", "track_iou", "lr", "sec")
            print(" ".join(f"{k}={rec[k]:.4g}" for k in keys if k in rec), flush=True)

    start = "micro"
    if args.init and not (Path(args.out) / "last.pt").exists():
        from napari_sam2.weights.load import load_model

        start = load_model(args.init, device="cpu")
    train(start, recipe, args.out, log=log)


if __name__ == "__main__":
    main()
