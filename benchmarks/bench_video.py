"""Video propagation benchmark: ours vs Meta's SAM2VideoPredictor, plus our memory on long movies.

Prints Markdown tables:

1. Speed on the same 10-frame 512x512 movie, tiny config (1024-px input), same random weights,
   float32 on the CPU: frames/s with 1 and 3 objects, beside the mask IoU of our output against
   Meta's (same weights, same frames: a fast but wrong engine shows here), and the time to
   re-propagate after a correction click (ours reuses cached frame encodings; Meta's re-encodes
   every frame). Our opt-in ``precision="bf16"`` mode is timed too, with its mask IoU against
   our float32 output.
2. Peak RSS of a propagation over 100 and 1,000 frames (small 256-px config, 3 objects), each in
   a fresh subprocess, frames generated lazily, output streamed (``keep_labels=False``) and with
   the label volume kept.

Usage:  python benchmarks/bench_video.py [--frames 10] [--size 512] [--threads N] [--skip-ref]
            [--config sam2.1_hiera_tiny] [--skip-rss]
        python benchmarks/bench_video.py --rss-only
Needs the reference package (``sam2==1.1.0``, test-only) for the comparison part.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from _models import cpu_name  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def header(threads: int) -> str:
    return (f"CPU: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"threads {threads}, Python {platform.python_version()}")


def make_movie(folder: Path, n: int, size: int) -> np.ndarray:
    """Moving bright blobs as JPEGs (Meta reads JPEG folders) and their decoded frames."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    frames = []
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(n):
        img = rng.normal(40, 10, (size, size))
        for cy, cx, r in ((150 + 4 * t, 160 + 6 * t, 40), (330 - 3 * t, 360 - 5 * t, 32),
                          (400, 120 + 2 * t, 28)):
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += 150
        rgb = np.clip(np.stack([img] * 3, -1), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"{t:05d}.jpg", quality=95)
    for t in range(n):
        frames.append(np.array(Image.open(folder / f"{t:05d}.jpg").convert("RGB")))
    return np.stack(frames)


CLICKS = [(150, 160), (330, 360), (400, 120)]  # (y, x) at 512 px


def scaled(size: int):
    return [(y * size / 512, x * size / 512) for y, x in CLICKS]


def run_ref(ref, folder: Path, n_obj: int, size: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = ref.init_state(str(folder))
        for i, (y, x) in enumerate(scaled(size)[:n_obj], start=1):
            ref.add_new_points_or_box(state, 0, i, points=np.array([[x, y]], np.float32),
                                      labels=np.array([1]))
        t0 = time.perf_counter()
        masks = [(m[:, 0] > 0).numpy() for _, _, m in ref.propagate_in_video(state)]
        prop = time.perf_counter() - t0
        y, x = scaled(size)[0]
        k = state["num_frames"] // 2
        ref.add_new_points_or_box(state, k, 1, points=np.array([[x + 10, y + 10]], np.float32),
                                  labels=np.array([0]), clear_old_points=False)
        t0 = time.perf_counter()
        for _ in ref.propagate_in_video(state, start_frame_idx=k):
            pass
        reprop = time.perf_counter() - t0
    return {"prop": prop, "reprop": reprop, "masks": masks}


def mean_iou(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Mean IoU over frames and objects of two runs' (n_obj, H, W) boolean masks per frame."""
    ious = [
        float((x & y).sum() / max((x | y).sum(), 1))
        for fa, fb in zip(a, b, strict=True) for x, y in zip(fa, fb, strict=True)
    ]
    return float(np.mean(ious))


def run_ours(model, frames: np.ndarray, n_obj: int, size: int, precision: str = "fp32") -> dict:
    from napari_sam2 import MemorySettings, VideoSession

    # zoom off: Meta's predictor always sees the whole frame
    s = VideoSession(model, frames, axes="TYXC", contrast_limits=(0, 255), precision=precision,
                     settings=MemorySettings(fill_holes_area=0), zoom="off")
    for i, (y, x) in enumerate(scaled(size)[:n_obj], start=1):
        s.add_points(0, i, [[y, x]], [1])
    t0 = time.perf_counter()
    masks = [r.masks.copy() for r in s.propagate()]
    prop = time.perf_counter() - t0
    y, x = scaled(size)[0]
    k = s.num_frames // 2
    s.add_points(k, 1, [[y + 10, x + 10]], [0])
    t0 = time.perf_counter()
    for _ in s.propagate(start=k):
        pass
    reprop = time.perf_counter() - t0
    return {"prop": prop, "reprop": reprop, "masks": masks}


def speed(args) -> None:
    from napari_sam2.model.config import CONFIGS
    from napari_sam2.model.sam2 import SAM2Model
    from reference import build_reference, random_state_dict

    cfg = CONFIGS[args.config]
    sd = random_state_dict(cfg, seed=0, object_bias=6.0)
    ours = SAM2Model(cfg)
    ours.load_state_dict(sd)
    ours.eval()
    ref = None
    if not args.skip_ref:
        ref = build_reference(cfg, video=True)
        ref.load_state_dict(sd)
        ref.eval()
    n = args.frames
    with tempfile.TemporaryDirectory() as tmp:
        frames = make_movie(Path(tmp) / "jpg", n, args.size)
        rows = []
        for n_obj in (1, 3):
            o = run_ours(ours, frames, n_obj, args.size)
            b = run_ours(ours, frames, n_obj, args.size, precision="bf16")
            r = run_ref(ref, Path(tmp) / "jpg", n_obj, args.size) if ref is not None else None
            rows.append((n_obj, o, b, r))
    print("\n## Propagation speed (same weights, same decoded frames)\n")
    print(f"{n} frames {args.size}x{args.size}, {cfg.name} config ({cfg.image_size}-px input)\n")
    print("| objects | Meta fp32 frames/s | ours fp32 frames/s | ratio | ours vs Meta IoU | "
          "ours bf16 frames/s | ratio vs Meta fp32 | bf16 IoU vs fp32 |")
    print("|---|---|---|---|---|---|---|---|")
    for n_obj, o, b, r in rows:
        rf = n / r["prop"] if r else float("nan")
        of, bf = n / o["prop"], n / b["prop"]
        vs_meta = mean_iou(o["masks"], r["masks"]) if r else float("nan")
        print(f"| {n_obj} | {rf:.3f} | {of:.3f} | {of / rf:.2f}x | {vs_meta:.4f} | {bf:.3f} | "
              f"{bf / rf:.2f}x | {mean_iou(o['masks'], b['masks']):.3f} |")
    k = n // 2
    print(f"\n## Re-propagation after a correction click on frame {k} (frames {k}..end)\n")
    print("| objects | Meta s | ours s | speed-up |")
    print("|---|---|---|---|")
    for n_obj, o, _, r in rows:
        rs = r["reprop"] if r else float("nan")
        print(f"| {n_obj} | {rs:.1f} | {o['reprop']:.1f} | {rs / o['reprop']:.2f}x |")


RSS_CHILD = r"""
import resource, sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from napari_sam2 import VideoSession, load_model
n, keep = int(sys.argv[1]), sys.argv[2] == "keep"
class LazyMovie:
    shape, dtype, ndim = (n, 256, 256), np.dtype(np.uint16), 3
    def __getitem__(self, idx):
        t = idx[0] if isinstance(idx, tuple) else idx
        if isinstance(t, (int, np.integer)):
            rng = np.random.default_rng(int(t))
            yy, xx = np.mgrid[:256, :256]
            f = rng.normal(300, 30, (256, 256))
            for cy, cx in ((60, 60), (128, 170), (200, 90)):
                f[(yy - cy - (t % 20)) ** 2 + (xx - cx) ** 2 < 300] += 2000
            f = f.astype(np.uint16)
            return f[idx[1:]] if isinstance(idx, tuple) else f
        return np.stack([self[(i,) + (idx[1:] if isinstance(idx, tuple) else ())]
                         for i in range(n)[t]])
model = load_model(sys.argv[4])
s = VideoSession(model, LazyMovie(), axes="TYX", keep_labels=keep)
for i, (y, x) in enumerate(((60, 60), (128, 170), (200, 90)), start=1):
    s.add_points(0, i, [[y, x]], [1])
for r in s.propagate():
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def rss(args) -> None:
    print("\n## Peak RSS of a propagation (3 objects, 256x256 frames, fresh process each)\n")
    model = args.rss_model
    print(f"model: {model}\n")
    print("| frames | streamed (keep_labels=False) MB | with label volume MB |")
    print("|---|---|---|")
    res = {}
    for n in (100, 1000):
        row = []
        for keep in ("stream", "keep"):
            out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(n), keep, str(args.threads),
                                  model], capture_output=True, text=True, check=True)
            row.append(float(out.stdout.strip().splitlines()[-1]))
        res[n] = row
        print(f"| {n} | {row[0]:.0f} | {row[1]:.0f} |")
    growth = res[1000][0] / res[100][0] - 1
    print(f"\nstreamed: RSS at 1,000 frames is {growth * 100:+.1f}% vs 100 frames; the label "
          "volume "
          f"itself is (T, H, W) uint16 = {1000 * 256 * 256 * 2 / 2**20:.0f} MB at 1,000 frames.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-ref", action="store_true", help="only time our engine")
    ap.add_argument("--rss-only", action="store_true")
    ap.add_argument("--skip-rss", action="store_true", help="only the speed / IoU tables")
    ap.add_argument("--config", default="sam2.1_hiera_tiny",
                    help="model config of the speed part (random weights), e.g. test_tiny_256")
    ap.add_argument("--rss-model", default="test_tiny_256",
                    help="model for the RSS part (e.g. micro once bundled)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(header(args.threads))
    if not args.rss_only:
        speed(args)
    if not args.skip_rss:
        rss(args)


if __name__ == "__main__":
    main()
