"""Per-component CPU speed of our SAM2Model against Meta's reference, same weights and inputs.

Components (one frame, float32, default ``sam2.1_hiera_tiny`` at 1024 px):

* image encoder: Hiera trunk + FPN neck + the decoder's two high-resolution projections
  (ours ``encode_image``; Meta's ``forward_image``);
* prompt encoder + mask decoder for one click, multimask, object pointer and the upsampled mask
  (ours ``predict_masks``; Meta's ``_forward_sam_heads``);
* memory encoder on the predicted mask (ours ``encode_memory``; Meta's ``_encode_new_memory``);
* memory attention for one object attending to 7 memory frames and 16 object pointers
  (4096 * 7 + 16 * 4 = 28,736 memory tokens of width 64; ours ``memory_attention``; Meta's
  ``memory_attention``).

Ours and Meta's calls alternate within every repetition (who goes first alternates too), so
load from other processes affects both alike. Each call is timed twice: CPU time used by this
process (``time.process_time``, all its threads; on a shared machine it does not count the time
spent waiting for a core, so it is the steadier measure of the work done) and wall-clock time
(what a user waits; with ``--threads`` > 1 CPU time exceeds it). The table gives medians (and
the CPU minimum), the speed ratio Meta / ours (> 1: ours is faster), and the largest absolute
difference between the two outputs (a check that both computed the same thing).

Usage:  python benchmarks/bench_model.py [--threads N] [--reps 5] [--config sam2.1_hiera_tiny]
                                        [--only "memory attention"]
Needs the reference package (``sam2==1.1.0``, test-only).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from _models import cpu_name  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

N_MEMORY_FRAMES = 7
N_POINTERS = 16


def _load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except (OSError, AttributeError):  # not available on Windows
        return "n/a"


def _busy(cores: int) -> bool:
    try:
        return os.getloadavg()[0] > cores
    except (OSError, AttributeError):
        return False


def header(threads: int, cfg_name: str, reps: int) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ref_version = version("sam2")
    except PackageNotFoundError:
        ref_version = "?"
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return "\n".join(
        [
            f"- CPU: {cpu_name()} ({cores} logical cores, {usable} usable by this process)",
            f"- torch {torch.__version__}, threads {threads}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}",
            f"- reference: sam2 {ref_version} (Meta), same random weights and inputs",
            f"- config {cfg_name}, float32, {reps} timed repetitions after 1 warm-up",
            f"- load average (1/5/15 min) at start: {_load()} (above the core count: the "
            "machine is shared and wall times are inflated)"
            if _busy(usable or 1)
            else f"- load average (1/5/15 min) at start: {_load()}",
        ]
    )


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    """(CPU seconds used by this process, wall-clock seconds) of one call."""
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def build(cfg_name: str):
    from napari_sam2.model.config import CONFIGS
    from napari_sam2.model.sam2 import SAM2Model
    from reference import build_reference, random_state_dict

    cfg = CONFIGS[cfg_name]
    sd = random_state_dict(cfg, seed=0, object_bias=6.0)
    ref = build_reference(cfg, video=False)
    ref.load_state_dict(sd, strict=True)
    ours = SAM2Model(cfg)
    ours.load_state_dict(sd, strict=True)
    return cfg, ours.eval(), ref.eval()


def cases(cfg, ours, ref) -> list[tuple[str, Callable, Callable, Callable]]:
    """(name, ours(), ref(), compare(ours_out, ref_out) -> max abs diff) per component."""
    g = torch.Generator().manual_seed(0)
    s, d, mem_dim, fs = cfg.image_size, cfg.d_model, cfg.mem_dim, cfg.feat_size
    image = torch.randn(1, 3, s, s, generator=g)

    # Inputs for the later components come from our (equal) encoder output, so both models get
    # identical tensors in their own layouts.
    feats = ours.encode_image(image)
    pix = ours.no_memory(feats)
    coords = torch.tensor([[[0.4 * s, 0.55 * s]]])
    labels = torch.ones(1, 1, dtype=torch.int32)
    head = ours.predict_masks(pix, feats.high_res, coords, labels, multimask=True)
    ref_feats = [x.flatten(2).permute(2, 0, 1) for x in (*feats.high_res, feats.vision)]
    sizes = [tuple(x.shape[-2:]) for x in (*feats.high_res, feats.vision)]

    n_mem = N_MEMORY_FRAMES * fs * fs + N_POINTERS * (d // mem_dim)
    curr = feats.vision.flatten(2).transpose(1, 2)  # (1, HW, d)
    curr_pos = feats.vision_pos.flatten(2).transpose(1, 2)
    memory = torch.randn(1, n_mem, mem_dim, generator=g)
    memory_pos = torch.randn(1, n_mem, mem_dim, generator=g)
    n_ptr = N_POINTERS * (d // mem_dim)

    def seq(x: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> Meta's (L, B, C)
        return x.transpose(0, 1)

    return [
        (
            "image encoder",
            lambda: ours.encode_image(image),
            lambda: ref.forward_image(image),
            lambda o, r: max(
                _max_diff(o.vision, r["vision_features"]),
                _max_diff(o.high_res[0], r["backbone_fpn"][0]),
                _max_diff(o.high_res[1], r["backbone_fpn"][1]),
            ),
        ),
        (
            "prompt encoder + mask decoder (1 click)",
            lambda: ours.predict_masks(pix, feats.high_res, coords, labels, multimask=True),
            lambda: ref._forward_sam_heads(
                backbone_features=pix,
                point_inputs={"point_coords": coords, "point_labels": labels},
                mask_inputs=None,
                high_res_features=list(feats.high_res),
                multimask_output=True,
            ),
            lambda o, r: max(_max_diff(o.mask_logits_hr, r[4]), _max_diff(o.obj_ptr, r[5])),
        ),
        (
            "memory encoder",
            lambda: ours.encode_memory(
                feats, head.mask_logits_hr, head.object_score_logits, binarize=False
            ),
            lambda: ref._encode_new_memory(
                ref_feats, sizes, head.mask_logits_hr, head.object_score_logits, False
            ),
            lambda o, r: max(_max_diff(o[0], r[0]), _max_diff(o[1], r[1][-1])),
        ),
        (
            f"memory attention ({N_MEMORY_FRAMES} frames + {N_POINTERS} pointers, {n_mem} tokens)",
            lambda: ours.memory_attention(curr, curr_pos, memory, memory_pos, n_ptr),
            lambda: ref.memory_attention(
                curr=[seq(curr)],
                curr_pos=[seq(curr_pos)],
                memory=seq(memory),
                memory_pos=seq(memory_pos),
                num_obj_ptr_tokens=n_ptr,
            ),
            lambda o, r: _max_diff(o, seq(r)),
        ),
    ]


def _ms(x: float) -> str:
    return f"{1e3 * x:.0f}" if x >= 1 else f"{1e3 * x:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per component")
    parser.add_argument("--config", default="sam2.1_hiera_tiny", help="model config name")
    parser.add_argument(
        "--only", default="", help="run only components whose name contains this text"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    cfg, ours, ref = build(args.config)  # outside inference mode, like load_model's models
    with torch.inference_mode():
        title = f"ours vs Meta's ({args.config}, {cfg.image_size} px)"
        print(f"## SAM 2 components on the CPU: {title}")
        print()
        print(header(args.threads, args.config, args.reps))
        print()
        rows = []
        sums = {key: 0.0 for key in ("oc", "rc", "ow", "rw")}
        for name, run_ours, run_ref, compare in cases(cfg, ours, ref):
            if args.only not in name:
                continue
            diff = compare(run_ours(), run_ref())  # warm-up + correctness check
            t_ours: list[tuple[float, float]] = []
            t_ref: list[tuple[float, float]] = []
            for rep in range(args.reps):
                # alternate who goes first, so drifting load from other processes cancels out
                if rep % 2 == 0:
                    t_ours.append(_time(run_ours))
                    t_ref.append(_time(run_ref))
                else:
                    t_ref.append(_time(run_ref))
                    t_ours.append(_time(run_ours))
            oc = [c for c, _ in t_ours]
            rc = [c for c, _ in t_ref]
            med = statistics.median
            stats = {
                "oc": med(oc),
                "rc": med(rc),
                "ow": med(w for _, w in t_ours),
                "rw": med(w for _, w in t_ref),
            }
            for key, value in stats.items():
                sums[key] += value
            rows.append(
                f"| {name} | {_ms(stats['oc'])} / {_ms(min(oc))} | "
                f"{_ms(stats['rc'])} / {_ms(min(rc))} | **{stats['rc'] / stats['oc']:.2f}x** | "
                f"{_ms(stats['ow'])} | {_ms(stats['rw'])} | {stats['rw'] / stats['ow']:.2f}x | "
                f"{diff:.1e} |"
            )
            print(f"<!-- done: {name} -->", flush=True)
        print()
        print(
            "| component | ours CPU median / min (ms) | Meta CPU median / min (ms) "
            "| speed (Meta / ours, CPU) | ours wall median (ms) | Meta wall median (ms) "
            "| speed (wall) | max abs diff |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        print("\n".join(rows))
        print(
            f"| **sum of medians** | {_ms(sums['oc'])} | {_ms(sums['rc'])} | "
            f"**{sums['rc'] / sums['oc']:.2f}x** | {_ms(sums['ow'])} | {_ms(sums['rw'])} | "
            f"{sums['rw'] / sums['ow']:.2f}x | |"
        )
        print()
        print(f"- load average (1/5/15 min) at the end: {_load()}")


if __name__ == "__main__":
    main()
