"""The ``napari-sam2`` command line: demo, segment, batch, models, train, finetune.

One module per command (:mod:`~napari_sam2.cli.demo`, :mod:`~napari_sam2.cli.segment` with
:mod:`~napari_sam2.cli.segment_parser`, :mod:`~napari_sam2.cli.batch`,
:mod:`~napari_sam2.cli.models`, :mod:`~napari_sam2.cli.train`); :mod:`~napari_sam2.cli.common`
holds what they share. This module builds the parser and runs a command (:func:`main`, the
``napari-sam2`` console script; ``python -m napari_sam2.cli`` runs the same).

Every command prints progress bars on stderr and a short summary on stdout. Errors end the
command with one line on stderr (``--debug`` shows the traceback) and a non-zero exit code:
1 for errors, 2 for bad command-line usage, 130 when interrupted (Ctrl-C). No napari or Qt is
imported; torch is imported only by the commands that need it, so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from .batch import add_batch_parser
from .common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    CLIError,
    _desc,
    _err,
    _Formatter,
    _one_line,
)
from .demo import add_demo_parser
from .models import add_models_parser
from .segment_parser import add_segment_parser
from .train import add_train_parsers

__all__ = ["build_parser", "main"]

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

    add_demo_parser(sub, common)
    add_segment_parser(sub, common)
    add_batch_parser(sub, common)

    add_models_parser(sub, common)
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
