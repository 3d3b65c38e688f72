"""Shared pieces of the ``napari-sam2`` command line: errors, messages, progress bars, Ctrl-C /
SIGTERM / SIGHUP handling, movie and model loading, and the memory-bank flags
(package-private; see ``cli``)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import fields
from pathlib import Path

from .signals import StopOnSignals

PROG = "napari-sam2"

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CLIError(Exception):
    """An error whose message is shown to the user as is (one line)."""


# --------------------------------------------------------------------------- helpers


def _err(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def _info(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _one_line(exc: BaseException) -> str:
    """An exception as one line of text (KeyError's quotes removed, lines joined)."""
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    else:
        text = str(exc)
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    # messages written for the Python API name keyword arguments; point to the flag instead
    text = text.replace("Pass axes=, e.g. axes=", "Pass --axes, e.g. --axes ")
    text = text.replace(" axes=", " --axes ")
    return text or type(exc).__name__


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    if n >= 10**9:
        return f"{n / 1e9:.2f} GB"
    if n >= 10**6:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.0f} kB"


def _frame_ranges(frames: set[int]) -> str:
    """{0, 1, 2, 5} -> '0-2, 5'."""
    runs: list[list[int]] = []
    for t in sorted(frames):
        if runs and t == runs[-1][1] + 1:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


class _Interrupt(StopOnSignals):
    """The command line's :class:`~napari_sam2.cli.signals.StopOnSignals`: the first Ctrl-C,
    SIGTERM or SIGHUP sets ``event`` (the work stops after the current ``what`` and saves what
    is done) and says so; a second one raises KeyboardInterrupt at once."""

    def __init__(self, what: str = "frame") -> None:
        super().__init__(on_first=self._tell)
        self.what = what

    def _tell(self, name: str) -> None:
        from tqdm import tqdm

        again = "press Ctrl-C again" if name == "SIGINT" else f"send {name} again"
        # tqdm.write keeps the message off the progress bar's line
        tqdm.write(
            f"{PROG}: {name}: stopping after the current {self.what} and saving the finished "
            f"ones ({again} to stop at once)",
            file=sys.stderr,
        )


def _tqdm(total: int | None, desc: str, unit: str, quiet: bool, initial: int = 0):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=quiet,
        dynamic_ncols=True,
    )


def _parse_channel(text: str | None) -> int | tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise CLIError(
            f"--channel {text!r}: give a channel index like 1, or up to 3 like 0,1,2"
        ) from None
    if not 1 <= len(values) <= 3 or min(values) < 0:
        raise CLIError(f"--channel {text!r}: give one to three channel indices >= 0")
    return values[0] if len(values) == 1 else values


def _parse_roi(text: str | None) -> tuple[int, int, int, int] | None:
    """``--roi Y0,X0,Y1,X1`` -> (y0, x0, y1, x1) pixels, end exclusive (checked against the
    frame size later, by the session)."""
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise CLIError(
            f"--roi {text!r}: give the region as Y0,X0,Y1,X1 whole pixels, e.g. 100,200,356,456"
        )
    y0, x0, y1, x1 = values
    if not (0 <= y0 < y1 and 0 <= x0 < x1):
        raise CLIError(f"--roi {text!r}: need 0 <= Y0 < Y1 and 0 <= X0 < X1")
    return values  # type: ignore[return-value]


def _movie_input(path: str, allow_partial: bool = False):
    """A TIFF path (read lazily by FrameSource) or a memory-mapped ``.npy`` array.

    A TIFF holding fewer complete frames than its metadata promise is an error naming the
    first bad frame, or with ``allow_partial`` a warning (its frames 0..k-1 are used).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise CLIError(f"movie not found: {path}")
    if p.is_dir():
        raise CLIError(f"{path} is a folder; give a TIFF file (or a .npy array)")
    if p.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        from ..video._tiff_pages import find_tiff_damage

        # tifffile logs every inconsistency of a cut-off file; it is reported here, once
        logging.getLogger("tifffile").setLevel(logging.CRITICAL)
        try:  # fail fast on a broken file, before the model is loaded
            with tifffile.TiffFile(p) as tif:
                if not tif.series:
                    raise CLIError(f"{p.name} holds no image series")
                damage, _ = find_tiff_damage(tif, p)
            if damage is not None:
                if not allow_partial or damage.good_frames == 0:
                    raise CLIError(damage.message(how="--allow-partial"))
                _err(f"warning: {damage.warning()}")
        except CLIError:
            raise
        except Exception as err:  # noqa: BLE001 - tifffile raises many types
            raise CLIError(f"cannot read {p.name} as a TIFF file ({_one_line(err)})") from None
    if p.suffix.lower() == ".npy":
        import numpy as np

        try:
            return np.load(p, mmap_mode="r")
        except (ValueError, OSError) as err:
            raise CLIError(f"cannot read {p.name} as a .npy array ({_one_line(err)})") from None
    return str(p)


def _device_label(model) -> str:
    return str(model.device)


def _load_model_cli(name: str | None, device: str, quiet: bool, compile: bool = False):
    """load_model with CLI-friendly errors (missing bundled micro model, no compiler)."""
    import torch

    from ..weights import load as weights_load
    from ..weights.registry import BUNDLED_MODEL, bundled_checkpoint_path

    torch.manual_seed(0)  # random-weight test configs give the same model every run
    bundled = bundled_checkpoint_path()
    default = weights_load._default_name() if name is None else name
    if default == BUNDLED_MODEL and not bundled.is_file():
        which = "" if name else " (the default: no official model is downloaded)"
        raise CLIError(
            f"the bundled '{BUNDLED_MODEL}' model{which} is not installed "
            f"({bundled} is missing); use --model sam2.1_hiera_tiny "
            "(downloads 156 MB) or --model PATH/TO/checkpoint.pt"
        )
    t0 = time.perf_counter()
    model = weights_load.load_model(name, device=device, progress=None if quiet else "tqdm")
    if compile:
        try:
            model.compile_for_inference()
        except RuntimeError as exc:
            raise CLIError(str(exc)) from None
    _info(
        f"model: {model.config.name} on {_device_label(model)} "
        f"({time.perf_counter() - t0:.1f} s to load"
        + ("; compiled: the first frames take longer" if compile else "")
        + ")",
        quiet,
    )
    return model


# --------------------------------------------------------------------------- memory flags


def _add_memory_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "memory bank (defaults = Meta's SAM 2 video predictor; see MemorySettings)"
    )
    from ..video.memory_settings import setting_fields  # torch-free

    for f in setting_fields():
        name, default = f.name, f.default
        flag = "--" + name.replace("_", "-")
        text = f.metadata["doc"].replace("``", "").replace("%", "%%").rstrip(".")
        if isinstance(default, bool):
            group.add_argument(
                flag,
                dest=f"mem_{name}",
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{text} (default: {'on' if default else 'off'})",
            )
        elif default is None:
            group.add_argument(
                flag,
                dest=f"mem_{name}",
                metavar="N|all",
                type=_int_or_all,
                default=None,
                help=f"{text} (default: all)",
            )
        else:
            group.add_argument(
                flag,
                dest=f"mem_{name}",
                metavar="N",
                type=type(default),
                default=None,
                help=f"{text} (default: {default})",
            )


def _int_or_all(text: str) -> int | str:
    if text.strip().lower() == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number or 'all', got {text!r}"
        ) from None


def _memory_settings(args: argparse.Namespace):
    from ..video.memory_settings import MemorySettings

    changes = {}
    for f in fields(MemorySettings):
        value = getattr(args, f"mem_{f.name}", None)
        if value is not None:
            changes[f.name] = None if value == "all" else value
    return MemorySettings().replace(**changes)


# --------------------------------------------------------------------------- help formatting


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=100)


def _desc(text: str) -> str:
    """Wrap a description paragraph (the raw formatter keeps the epilogs' layout as written)."""
    import textwrap

    return textwrap.fill(text, width=95)


def _add_model_flags(p: argparse.ArgumentParser, where: str = "") -> None:
    """--model, --device and --precision, shared by the commands that run a model; ``where``
    ends the --device help (e.g. " (on each worker)")."""
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help="model name or checkpoint (default: the first downloaded SAM 2.1 model, else micro)",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda", "mps"],
        help=f"default: auto = CUDA, then MPS, then CPU{where}",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16"],
        help="bf16 is faster on recent GPUs (default: %(default)s)",
    )
