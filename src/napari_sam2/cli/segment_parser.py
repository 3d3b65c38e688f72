"""The flags and the help text of ``napari-sam2 segment`` (the command runs in
:mod:`napari_sam2.cli.segment`)."""

from __future__ import annotations

import argparse

from .common import PROG, _add_memory_flags, _add_model_flags, _desc, _Formatter
from .segment import cmd_segment

__all__ = ["add_segment_parser"]


def _positive_px(text: str) -> float:
    """``--cell-diameter PX``: a positive number of pixels."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a cell diameter: give a positive number of pixels, e.g. 24"
        )
    return value


_SEGMENT_EPILOG = f"""\
prompt files (coordinates are image pixels in napari's (y, x) order, frames from 0):
  napari Points CSV (File > Save Selected Layer(s) of a Points layer with properties):
      index,axis-0,axis-1,axis-2,obj_id,positive      axis-0 = frame, axis-1 = y, axis-2 = x
  or plain CSV:
      frame,y,x,obj_id,positive                       positive: 1 = on the object, 0 = not
      0,105,88,1,1
  boxes (--boxes): plain CSV, or a napari Shapes CSV of rectangles (File > Save Selected
  Layer(s) of a Shapes layer; 4 rows per rectangle, axis-0 = frame):
      frame,y0,x0,y1,x1,obj_id
      index,shape-type,vertex-index,axis-0,axis-1,axis-2
  Clicks, boxes and seed labels with the same id are one object; its id is its label value.
  Rectangles of a Shapes CSV without an obj_id column become new objects, numbered after the
  largest id of the clicks and the seed labels; cells found by --find-cells come after all.

examples:
  {PROG} segment movie.tif --prompts clicks.csv --out labels.tif
  {PROG} segment movie.tif --boxes boxes.csv --ctc movie_RES --csv cells.csv
  {PROG} segment movie.tif --seed-labels frame0_labels.tif --divisions --ctc movie_RES
  {PROG} segment movie.tif --find-cells 0 --grid-points 32 --out labels.tif
  {PROG} segment movie.tif --prompts clicks.csv --model sam2.1_hiera_small --device cuda \\
      --precision bf16 --num-memory-frames 4 --non-overlap
  {PROG} segment stack.tif --axes TCYX --channel 1 --prompts clicks.csv
  {PROG} segment big.tif --roi 100,200,356,456 --find-cells 0 --out labels.tif

Ctrl-C, SIGTERM (a scheduler's time limit) and SIGHUP stop after the current frame and write
the frames finished so far; the labels stream into OUT's folder as NAME.partial.tif while
they are computed, so even a killed run leaves its finished frames there. Every output path
is checked before the model is loaded; if writing --out still fails at the end, the labels
are saved beside the movie (or in the temporary folder) and the message says where.
A TIFF cut off before the frame count its metadata promise is an error naming the first bad
frame; --allow-partial segments the complete frames instead.
"""


def add_segment_parser(sub, common: argparse.ArgumentParser) -> None:
    """Add the ``segment`` subcommand to ``sub`` (argparse subparsers)."""
    p = sub.add_parser(
        "segment",
        parents=[common],
        formatter_class=_Formatter,
        epilog=_SEGMENT_EPILOG,
        help="segment and track objects through a movie from clicks, boxes or label images",
        description=_desc(
            "Segment and track objects through MOVIE (a TIFF, or a .npy array) from clicks, "
            "boxes, a label image of one frame and/or cells found automatically, and write a "
            "label TIFF (pixel size carried over from the input)."
        ),
    )
    p.add_argument("movie", metavar="MOVIE", help="movie file: TIFF (T, Y, X) or with --axes")
    p.add_argument("--prompts", metavar="CLICKS.csv", help="clicks: napari Points CSV or plain CSV")
    p.add_argument(
        "--boxes",
        metavar="BOXES.csv",
        help="boxes: frame,y0,x0,y1,x1,obj_id or a napari Shapes CSV of rectangles",
    )
    p.add_argument(
        "--seed-labels",
        metavar="LABELS.tif",
        help="label image of one frame (Y, X), or a label volume (T, Y, X): every label of "
        "the seed frame becomes an object (its value is the id) with its mask as the prompt",
    )
    p.add_argument(
        "--seed-frame",
        type=int,
        metavar="N",
        help="the frame the seed labels belong to (default: 0)",
    )
    div = p.add_mutually_exclusive_group()
    div.add_argument(
        "--divisions",
        action="store_const",
        const=True,
        default=None,
        help="track cell divisions: daughters get new ids, the lineage goes to --ctc "
        "res_track.txt (forward in time from the first prompted frame; 3-D + time: a cell "
        "whose 3-D mask holds two cells; on by default for 3-D + time)",
    )
    div.add_argument(
        "--no-divisions",
        dest="divisions",
        action="store_const",
        const=False,
        help="one id per cell through time (3-D + time, where divisions are on by default)",
    )
    fit = p.add_mutually_exclusive_group()
    fit.add_argument(
        "--fit",
        action="store_true",
        help="cut every object's masks to its brightness on its prompt frame, as they are "
        "written (default for 2-D movies: only small cells seen through magnifying zoom "
        "windows, whose masks come out too wide; 3-D data: every object, along z)",
    )
    fit.add_argument(
        "--no-fit",
        action="store_true",
        help="keep the model's masks as drawn (2-D movies and 3-D data; not needed with --tile, "
        "whose tiles keep the model's masks)",
    )
    p.add_argument(
        "--out",
        metavar="LABELS.tif",
        help="output label TIFF (default: MOVIE_labels.tif next to the movie)",
    )
    p.add_argument(
        "--ctc", metavar="DIR", help="also write a Cell Tracking Challenge result folder"
    )
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="a movie file cut off after frame K-1 (a truncated copy) is segmented as frames "
        "0..K-1, with a warning (default: an error naming the first missing frame)",
    )
    p.add_argument(
        "--csv",
        metavar="CELLS.csv",
        help="also write per-object, per-frame measurements (area, centroid, intensities, score)",
    )
    _add_model_flags(p)
    p.add_argument(
        "--compile",
        action="store_true",
        help="compile the model with torch.compile: the first frames take longer (10-80 s on "
        "a CPU); meant for long movies on a GPU (no reliable gain on a 2-core CPU)",
    )
    p.add_argument(
        "--direction",
        default="both",
        choices=["forward", "backward", "both"],
        help="forward from the first prompted frame, backward from the last, or "
        "both (default: %(default)s)",
    )
    p.add_argument(
        "--axes",
        metavar="AXES",
        help="axes of the movie, e.g. TYX, TCYX, TYXC; 3-D: ZYX, CZYX (a z-stack, segmented "
        "along z) or TZYX, TCZYX (3-D cells through time; clicks need a z column) "
        "(default: from the file)",
    )
    p.add_argument(
        "--voxel-size",
        nargs=3,
        type=float,
        metavar=("Z", "Y", "X"),
        help="voxel size in um for 3-D data (default: from the TIFF metadata); kept in the "
        "label hyperstack and the --csv volumes",
    )
    p.add_argument(
        "--channel", metavar="N[,N,N]", help="channel the model sees (or up to 3 shown as R,G,B)"
    )
    p.add_argument(
        "--contrast",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help="intensity window (default: 0.5-99.5 percentiles of the movie, widened to sparse "
        "cells)",
    )
    p.add_argument(
        "--tile",
        type=int,
        metavar="S",
        help="split frames into S x S px tiles, each zoomed in as its own region of interest "
        "(for small cells on large frames); each object belongs to the tile of its first click",
    )
    p.add_argument(
        "--tile-margin",
        type=int,
        default=32,
        metavar="PX",
        help="context around each tile in px, more than a cell moves in the movie (default 32)",
    )
    p.add_argument(
        "--zoom",
        choices=("auto", "off"),
        default="auto",
        help="auto (default): cells too small for the model on the whole frame are segmented "
        "in zoomed windows that follow them; off: the model always sees the whole frame",
    )
    p.add_argument(
        "--cell-diameter",
        type=_positive_px,
        metavar="PX",
        help="typical cell diameter in pixels, for sizing the zoom windows of clicked cells "
        "(default: estimated around each cell's first click; boxes and seed labels give sizes)",
    )
    p.add_argument(
        "--roi",
        metavar="Y0,X0,Y1,X1",
        help="region of interest in pixels (end exclusive): only it is resized to the model's "
        "input, so small cells on large frames stay big enough; prompts must lie inside it, "
        "labels outside it are 0",
    )
    g = p.add_argument_group(
        "finding cells automatically (a grid of clicks on one frame, like SAM's automatic mode)"
    )
    g.add_argument(
        "--find-cells",
        type=int,
        metavar="FRAME",
        help="find the cells on FRAME and track each one (besides any other prompts)",
    )
    g.add_argument(
        "--grid-points",
        type=int,
        metavar="N",
        help="clicks per side of the grid: N x N clicks (default: 16)",
    )
    g.add_argument(
        "--min-iou",
        type=float,
        metavar="F",
        help="keep masks whose predicted IoU is at least F (default: 0.7)",
    )
    g.add_argument(
        "--min-stability",
        type=float,
        metavar="F",
        help="keep masks whose stability score is at least F (default: 0.85)",
    )
    g.add_argument(
        "--min-cell-area", type=int, metavar="PX", help="smallest cell in pixels (default: 16)"
    )
    g.add_argument(
        "--max-cell-area",
        type=int,
        metavar="PX",
        help="largest cell in pixels (default: a quarter of the frame)",
    )
    _add_memory_flags(p)
    p.set_defaults(func=cmd_segment)
