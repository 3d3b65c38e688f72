"""Hyper-parameters of a training run: :class:`TrainConfig` (no torch, no training code, so the
clip stream, the losses, the loop and the CLI can all import it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TrainConfig"]


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
        kinds: synthetic movie kinds to sample (:func:`~napari_sam2.train.synthetic.make_movie`),
            or ``"zstack"``: consecutive slices of a z-stack of nuclei as the frames.
        families: appearance families of :mod:`napari_sam2.train.looks` to sample instead of
            ``kinds`` (e.g. ``("nuclei", "phase", "bacteria")``); when given, each clip is a
            :func:`~napari_sam2.train.looks.make_look` movie with all its parameters drawn at
            random, and ``kinds``, ``radius`` and ``density`` are not used (``motion_step``,
            when set, still overrides the random-walk step).
        kinds_fraction: with ``families``, the share of clips drawn from the ``kinds`` movies
            instead (with ``radius`` and ``density``); mixing the original nuclei generator
            back in keeps what a model trained on it knew while it learns new looks.
        window_fraction: the share of clips cut as automatic-zoom windows around one object
            (its extent at a random share of the model's input inside ``object_size_range``,
            small objects enlarged and blurred as the zoom shows them); 0 leaves the stream of
            clips as it was.
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
    kinds_fraction: float = 0.0
    window_fraction: float = 0.0
    frame_size: int | None = None
    radius: tuple[float, float] = (14.0, 34.0)
    density: tuple[float, float] = (0.15, 0.45)
    motion_step: tuple[float, float] | None = None
    seed: int = 0
    bf16: bool = False
    save_every: int = 100
    freeze_image_encoder: bool = False
    extra: dict = field(default_factory=dict)
