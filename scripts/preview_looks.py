"""Preview of the synthetic looks: a grid of frames, one column per family.

Run:  python scripts/preview_looks.py [--out docs/images/looks.png] [--per-family 3] [--seed 0]

Each family gets ``--per-family`` random movies (rows); every tile shows frame 0 at 256 x 256
px (contrast-stretched to its 0.5-99.8 percentiles), and the last row repeats the first movie
with the outlines of its labels in red, so one can check that labels follow the image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from napari_sam2.train.looks import FAMILIES, make_look


def _stretch(frame: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(frame, [0.5, 99.8])
    return (np.clip((frame - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def _outlined(gray: np.ndarray, labels: np.ndarray) -> np.ndarray:
    rgb = np.repeat(gray[..., None], 3, axis=2)
    pad = np.pad(labels, 1, mode="edge")
    edge = (labels > 0) & (
        (pad[:-2, 1:-1] != labels) | (pad[2:, 1:-1] != labels)
        | (pad[1:-1, :-2] != labels) | (pad[1:-1, 2:] != labels)
    )
    rgb[edge] = (255, 40, 40)
    return rgb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="docs/images/looks.png")
    ap.add_argument("--per-family", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    size, gap, head = 256, 4, 18
    rows = args.per_family + 1
    canvas = Image.new("RGB", (len(FAMILIES) * (size + gap) - gap, head + rows * (size + gap)),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for col, family in enumerate(FAMILIES):
        x = col * (size + gap)
        draw.text((x + 4, 3), family, fill=(0, 0, 0))
        for row in range(args.per_family):
            mv = make_look(family, np.random.default_rng([args.seed, col, row]), (size, size), 1)
            gray = _stretch(mv.movie[0].astype(np.float32))
            canvas.paste(Image.fromarray(gray), (x, head + row * (size + gap)))
            if row == 0:
                rgb = _outlined(gray, mv.labels[0])
                canvas.paste(Image.fromarray(rgb), (x, head + args.per_family * (size + gap)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    # grey levels plus the red outlines fit a 256-colour palette: a third of the RGB file
    canvas.quantize(256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
