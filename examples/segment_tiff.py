"""Segment and track cells in a TIFF time-lapse from a script, then export and measure them.

Run it as is: without a movie it first writes a small synthetic time-lapse next to the output
(and clicks one point inside every cell of frame 0), so it works offline on a fresh install::

    python examples/segment_tiff.py                              # synthetic movie, micro model
    python examples/segment_tiff.py movie.tif --prompts clicks.csv --out labels.tif
    python examples/segment_tiff.py --model sam2.1_hiera_tiny    # an official model

Prompt CSV columns: ``frame,y,x,obj_id,positive`` (or napari's Points-layer CSV).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile

import napari_sam2 as ns
from napari_sam2.cli.demo import interior_points
from napari_sam2.io.measurements import save_measurements_csv
from napari_sam2.train.synthetic import make_movie


def synthetic_input(folder: Path, frames: int) -> tuple[Path, list[dict]]:
    """Write a synthetic (T, 128, 128) movie into ``folder`` and return it with one click per
    cell of frame 0 (at the cell's most interior pixel)."""
    synth = make_movie(kind="nuclei", n_frames=frames, shape=(128, 128), n_cells=8, seed=1)
    path = folder / "synthetic_movie.tif"
    tifffile.imwrite(path, synth.movie, imagej=True, metadata={"axes": "TYX"})
    clicks = [
        {"frame": 0, "y": y, "x": x, "obj_id": cell_id, "positive": True}
        for cell_id, (y, x) in interior_points(synth.labels[0]).items()
    ]
    return path, clicks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("movie", nargs="?", help="TIFF movie (default: make a synthetic one)")
    ap.add_argument("--prompts", help="clicks CSV (needed with a movie of your own)")
    ap.add_argument("--model", default="micro", help="model name or checkpoint (default: micro)")
    ap.add_argument("--out", default="labels.tif", help="output label TIFF")
    ap.add_argument("--frames", type=int, default=10, help="frames of the synthetic movie")
    args = ap.parse_args()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.movie is None:
        movie, prompts = synthetic_input(out.parent, args.frames)
        print(f"synthetic movie: {movie} ({len(prompts)} cells clicked on frame 0)")
    else:
        if args.prompts is None:
            ap.error("give --prompts CLICKS.csv with your own movie")
        movie, prompts = Path(args.movie), args.prompts  # a CSV path is accepted as is

    # One call: load the model, add the clicks, propagate forward and backward.
    model = ns.load_model(args.model)
    labels = ns.segment_movie(movie, prompts, model=model, direction="both", progress="tqdm")
    print(f"labels: {labels.shape} {labels.dtype}, objects {np.unique(labels)[1:].tolist()}")

    # Export: a label TIFF for Fiji/napari, a Cell Tracking Challenge folder, a measurement CSV.
    ns.save_labels_tiff(out, labels)
    ns.save_ctc(out.with_name(out.stem + "_RES"), labels)
    with tifffile.TiffFile(movie) as tif:
        intensities = tif.asarray()
    table = ns.measure(labels, intensities)
    csv_path = save_measurements_csv(out.with_suffix(".csv"), table)
    print(f"wrote {out}, {out.stem}_RES/, {csv_path}")
    for key in ("frame", "obj_id", "area", "mean_intensity"):
        print(f"{key:>15}: {table[key][:5]}")


if __name__ == "__main__":
    main()
