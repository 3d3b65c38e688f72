"""The ``napari-sam2`` command line: demo, segment, models, train, finetune.

Every command prints progress bars on stderr and a short summary on stdout. Errors end the
command with one line on stderr (``--debug`` shows the traceback) and a non-zero exit code:
1 for errors, 2 for bad command-line usage, 130 when interrupted (Ctrl-C). No napari or Qt is
imported; torch is imported only by the commands that need it, so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from ._cli_batch import add_batch_parser
from ._cli_common import (  # noqa: F401 - re-exported: napari_sam2.cli keeps its names
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    CLIError,
    _desc,
    _err,
    _fmt_bytes,
    _Formatter,
    _load_model_cli,
    _memory_settings,
    _movie_input,
    _one_line,
    _parse_channel,
)
from ._cli_segment import add_segment_parser, cmd_segment  # noqa: F401 - re-exported
from ._cli_train import add_train_parsers, cmd_finetune, cmd_train  # noqa: F401 - re-exported

# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    quiet = args.quiet
    model = _load_model_cli(args.model, args.device, quiet)
    t0 = time.perf_counter()
    res = run_demo(
        args.out,
        model=model,
        frames=args.frames,
        size=args.size,
        seed=args.seed,
        kind=args.kind,
        progress=None if quiet else "tqdm",
    )
    h, w = res.frame_shape
    out = res.out_dir
    print(f"synthetic {args.kind} movie: {res.num_frames} frames of {h} x {w} px, seed {args.seed}")
    print(f"seeded {res.num_objects} cells with one click each on frame 0")
    print(
        f"tracked with {res.model_name} on {res.device}: {res.seconds_per_frame:.3f} s per frame "
        f"({time.perf_counter() - t0:.1f} s in all)"
    )
    print(f"mean IoU vs ground truth: {res.mean_iou:.3f}")
    print(f"wrote {', '.join(str(p) for p in res.files.values())}")
    print(f"look at it:  napari {out / 'movie.tif'} {out / 'labels.tif'}")
    print(
        f"redo it:     {PROG} segment {out / 'movie.tif'} --prompts {out / 'prompts.csv'} "
        f"--model {args.model} --out {out / 'labels.tif'}"
    )
    return EXIT_OK


# --------------------------------------------------------------------------- models


BUNDLED_MODEL = "micro"


def _bundled_path() -> Path:
    """Where the bundled micro checkpoint is installed (weights/micro.pt in the package)."""
    return Path(__file__).with_name("weights") / f"{BUNDLED_MODEL}.pt"


def cmd_models(args: argparse.Namespace) -> int:
    from .weights.download import CACHE_ENV_VAR, cache_dir, list_models
    from .weights.registry import REGISTRY

    if args.download:
        name = args.download[:-3] if args.download.endswith(".pt") else args.download
        if name not in REGISTRY:
            raise CLIError(
                f"unknown model {args.download!r}; downloadable models: {', '.join(REGISTRY)}"
            )
        return _download(name, args.quiet)

    bundled = _bundled_path()  # not via weights.load: listing should not import torch
    micro = {
        "name": BUNDLED_MODEL,
        "description": "bundled micro model for microscopy (~2.5 M params, 256 px input)",
        "status": "bundled" if bundled.is_file() else "missing",
        "path": str(bundled),
        "size": bundled.stat().st_size if bundled.is_file() else None,
    }
    rows = [micro]
    for m in list_models():
        status = "cached" if m["cached"] else ("partial" if m["size_on_disk"] else "no")
        rows.append(
            {
                "name": m["name"],
                "description": m["description"],
                "status": status,
                "path": m["path"],
                "size": m["size_on_disk"] if m["cached"] else m["expected_size"],
                "url": m["url"],
            }
        )
    if args.json:
        print(json.dumps({"cache_dir": str(cache_dir()), "models": rows}, indent=2))
        return EXIT_OK
    env = " (from $" + CACHE_ENV_VAR + ")" if os.environ.get(CACHE_ENV_VAR, "").strip() else ""
    print(f"checkpoint cache: {cache_dir()}{env}")
    print(f"{'name':<24}{'size':>10}  {'status':<8}  description")
    for r in rows:
        print(f"{r['name']:<24}{_fmt_bytes(r['size']):>10}  {r['status']:<8}  {r['description']}")
    cached = [r["name"] for r in rows[1:] if r["status"] == "cached"]
    default = next((n for n in cached if n.startswith("sam2.1")), BUNDLED_MODEL)
    print(f"default model (segment without --model): {default}")
    print(f"download one:  {PROG} models --download sam2.1_hiera_tiny")
    return EXIT_OK


def _download(name: str, quiet: bool) -> int:
    from .weights.download import cached_path, ensure_weights, is_cached
    from .weights.load import read_checkpoint

    if is_cached(name):
        print(f"{name} is already cached: {cached_path(name)}")
        return EXIT_OK
    bar = None

    def progress(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(
                total=total,
                desc=name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                disable=quiet,
            )
        bar.update(done - bar.n)

    t0 = time.perf_counter()
    try:
        path = ensure_weights(name, progress=progress, verify=lambda p: read_checkpoint(p))
    finally:
        if bar is not None:
            bar.close()
    size = path.stat().st_size
    print(f"downloaded {name} ({_fmt_bytes(size)}) in {time.perf_counter() - t0:.0f} s: {path}")
    return EXIT_OK


# --------------------------------------------------------------------------- parser

_MAIN_EPILOG = """\
start here (runs offline in about a minute on a laptop CPU):
  napari-sam2 demo             make a synthetic time-lapse, click its cells, track them, and
                               save movie.tif, labels.tif, preview.png in ./napari-sam2-demo

segment your own movie from clicks saved in napari (Points layer, File > Save Selected Layers):
  napari-sam2 segment movie.tif --prompts clicks.csv --out labels.tif
or from a label image of one frame, with cell divisions:
  napari-sam2 segment movie.tif --seed-labels frame0.tif --divisions --ctc movie_RES

more:
  napari-sam2 models           which models exist, which are downloaded, and where
  napari-sam2 COMMAND --help   the options and examples of one command
"""

_DEMO_EPILOG = f"""\
examples:
  {PROG} demo
  {PROG} demo --out /tmp/demo --frames 40 --seed 3
  {PROG} demo --model sam2.1_hiera_tiny        # an official model (downloaded once, 156 MB)

The clicks are at the most interior pixel of every cell of frame 0 (known exactly for a
synthetic movie); the IoU compares the tracked labels with the true ones on every frame.
"""

_MODELS_EPILOG = f"""\
examples:
  {PROG} models
  {PROG} models --download sam2.1_hiera_tiny
  NAPARI_SAM2_CACHE=/data/models {PROG} models      # use another cache folder
Offline: copy the .pt files into the cache folder shown by '{PROG} models'.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``napari-sam2`` (all subcommands)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback on errors",
    )
    common.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress bars or info lines (the summary is still printed)",
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_desc(
            "SAM 2 for microscopy time-lapses: click cells on a frame, track them "
            "through the movie, export labels."
        ),
        epilog=_MAIN_EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--debug", action="store_true", default=False, help="show the full traceback on errors"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=False, help="no progress bars or info lines"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # demo
    p = sub.add_parser(
        "demo",
        parents=[common],
        formatter_class=_Formatter,
        epilog=_DEMO_EPILOG,
        help="track the cells of a synthetic time-lapse (offline, the first thing to run)",
        description=_desc(
            "Make a synthetic time-lapse, click each cell once on frame 0, track the "
            "cells through the movie and save movie.tif, labels.tif, prompts.csv, "
            "ground_truth.tif and preview.png."
        ),
    )
    p.add_argument(
        "--out",
        default="napari-sam2-demo",
        metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    p.add_argument(
        "--model",
        default="micro",
        metavar="NAME|PATH",
        help="model name or checkpoint file (default: %(default)s, bundled)",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=20,
        metavar="N",
        help="frames in the movie (default: %(default)s)",
    )
    p.add_argument(
        "--size",
        type=int,
        default=256,
        metavar="PX",
        help="frame side in pixels (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the synthetic movie (default: %(default)s)",
    )
    p.add_argument(
        "--kind",
        default="nuclei",
        choices=["nuclei", "phase", "bacteria"],
        help="what the movie shows (default: %(default)s)",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda", "mps"],
        help="where the model runs (default: auto = CUDA, then MPS, then CPU)",
    )
    p.set_defaults(func=cmd_demo)

    add_segment_parser(sub, common)
    add_batch_parser(sub, common)

    # models
    p = sub.add_parser(
        "models",
        parents=[common],
        formatter_class=_Formatter,
        epilog=_MODELS_EPILOG,
        help="list the models, what is downloaded and where; download one",
        description=_desc(
            "List the bundled and the official SAM 2 / 2.1 models, their sizes and "
            "whether they are in the checkpoint cache; --download fetches one (checksum verified)."
        ),
    )
    p.add_argument("--download", metavar="NAME", help="download an official checkpoint")
    p.add_argument("--json", action="store_true", help="machine-readable listing")
    p.set_defaults(func=cmd_models)

    add_train_parsers(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``napari-sam2`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        if debug:
            raise
        _err("interrupted")
        return EXIT_INTERRUPTED
    except CLIError as err:
        _err(f"error: {_one_line(err)}")
        return EXIT_ERROR
    except Exception as err:  # noqa: BLE001 - every failure becomes one line
        if debug:
            raise
        known = (ValueError, OSError, KeyError, RuntimeError, TypeError)
        hint = "" if isinstance(err, known) else f" ({type(err).__name__}; --debug shows more)"
        _err(f"error: {_one_line(err)}{hint}")
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
