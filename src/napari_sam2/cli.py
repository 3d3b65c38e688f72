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
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from . import __version__

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


class _Interrupt:
    """First Ctrl-C sets ``event`` (the work stops after the current step and saves what is
    done); a second Ctrl-C raises KeyboardInterrupt at once."""

    def __init__(self, what: str = "frame") -> None:
        self.event = threading.Event()
        self.what = what
        self._old: Any = None

    def _handler(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        from tqdm import tqdm

        # tqdm.write keeps the message off the progress bar's line
        tqdm.write(
            f"{PROG}: stopping after the current {self.what} (press Ctrl-C again to stop at once)",
            file=sys.stderr,
        )

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


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


def _movie_input(path: str):
    """A TIFF path (read lazily by FrameSource) or a memory-mapped ``.npy`` array."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CLIError(f"movie not found: {path}")
    if p.is_dir():
        raise CLIError(f"{path} is a folder; give a TIFF file (or a .npy array)")
    if p.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:  # fail fast on a broken file, before the model is loaded
            with tifffile.TiffFile(p) as tif:
                if not tif.series:
                    raise CLIError(f"{p.name} holds no image series")
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


def _load_model_cli(name: str | None, device: str, quiet: bool):
    """load_model with CLI-friendly errors (missing bundled micro model)."""
    import torch

    from .weights import load as weights_load

    torch.manual_seed(0)  # random-weight test configs give the same model every run
    bundled = weights_load.bundled_checkpoint_path()
    default = weights_load._default_name() if name is None else name
    if default == weights_load.BUNDLED_MODEL and not bundled.is_file():
        which = "" if name else " (the default: no official model is downloaded)"
        raise CLIError(
            f"the bundled '{weights_load.BUNDLED_MODEL}' model{which} is not installed "
            f"({bundled} is missing); use --model sam2.1_hiera_tiny "
            "(downloads 156 MB) or --model PATH/TO/checkpoint.pt"
        )
    t0 = time.perf_counter()
    model = weights_load.load_model(name, device=device, progress=None if quiet else "tqdm")
    _info(
        f"model: {model.config.name} on {_device_label(model)} "
        f"({time.perf_counter() - t0:.1f} s to load)",
        quiet,
    )
    return model


# --------------------------------------------------------------------------- memory flags


def _memory_fields() -> tuple[list[tuple[str, Any]], str]:
    """(field name, default) pairs and the docstring of MemorySettings, read from its source
    with :mod:`ast` so that building the parser does not import torch."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("napari_sam2.video.memory_bank")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MemorySettings")
    out = [
        (n.target.id, ast.literal_eval(n.value))
        for n in cls.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.value is not None
    ]
    return out, ast.get_docstring(cls) or ""


def _memory_docs(doc: str) -> dict[str, str]:
    """Field name -> help text, parsed from the Attributes section of a docstring."""
    docs: dict[str, str] = {}
    current = None
    for line in doc.splitlines():
        m = re.match(r"^\s{4}(\w+): (.*)$", line)
        if m:
            current = m.group(1)
            docs[current] = m.group(2).strip()
        elif current and re.match(r"^\s{8}\S", line):
            docs[current] += " " + line.strip()
        elif not line.strip():
            current = None
    return docs


def _add_memory_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "memory bank (defaults = Meta's SAM 2 video predictor; see MemorySettings)"
    )
    specs, doc = _memory_fields()
    docs = _memory_docs(doc)
    for name, default in specs:
        flag = "--" + name.replace("_", "-")
        text = docs.get(name, "").replace("``", "").replace("%", "%%").rstrip(".")
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
    from .video.memory_bank import MemorySettings

    changes = {}
    for f in fields(MemorySettings):
        value = getattr(args, f"mem_{f.name}", None)
        if value is not None:
            changes[f.name] = None if value == "all" else value
    return MemorySettings().replace(**changes)


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from .pipeline import run_demo

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


# --------------------------------------------------------------------------- segment


class _RawMovie:
    """(T, H, W[, C]) view of a FrameSource's stored frames, for measurements."""

    def __init__(self, frames) -> None:
        self._frames = frames
        first = frames.raw(0)
        self.shape = (frames.num_frames, *first.shape)
        self.dtype = first.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, t):
        return self._frames.raw(int(t))


def cmd_segment(args: argparse.Namespace) -> int:
    from .prompt_files import read_box_prompts, read_point_prompts

    quiet = args.quiet
    if args.prompts is None and args.boxes is None:
        raise CLIError("give prompts: --prompts CLICKS.csv and/or --boxes BOXES.csv")
    movie = _movie_input(args.movie)
    # prompt files first: a typo fails in a fraction of a second, before torch is imported
    points = read_point_prompts(args.prompts) if args.prompts else []
    boxes = read_box_prompts(args.boxes) if args.boxes else []
    channel = _parse_channel(args.channel)
    default_out = Path(args.movie).with_name(Path(args.movie).stem + "_labels.tif")
    out = Path(args.out) if args.out else default_out
    if out.exists() and out.resolve() == Path(args.movie).resolve():
        raise CLIError(f"--out {out} is the input movie; choose another output file")
    out.parent.mkdir(parents=True, exist_ok=True)

    settings = _memory_settings(args)
    model = _load_model_cli(args.model, args.device, quiet)
    import numpy as np

    from .io.tiff import read_pixel_size, save_labels_tiff
    from .pipeline import build_session, propagate_frames

    contrast = tuple(args.contrast) if args.contrast else None
    objects = sorted({p.obj_id for p in points} | {b.obj_id for b in boxes})
    done: set[int] = set()
    scores: dict[tuple[int, int], float] = {}
    with _Interrupt("frame") as stop:
        session = build_session(
            movie,
            points,
            model=model,
            settings=settings,
            axes=args.axes,
            channel=channel,
            boxes=boxes,
            contrast_limits=contrast,
            precision=args.precision,
            cancel=stop.event,
        )
        try:
            n_frames = session.num_frames
            h, w = session.frame_shape
            _info(
                f"movie: {n_frames} frames of {h} x {w} px ({session.frames.axes}); "
                f"{len(objects)} object(s), {len(points)} click(s), {len(boxes)} box(es)",
                quiet,
            )
            failure: BaseException | None = None
            t0 = time.perf_counter()
            if not stop.event.is_set():
                total, results = propagate_frames(session, args.direction, stop.event)
                bar = _tqdm(total, "propagating", "frame", quiet)
                try:
                    for r in results:
                        done.add(r.frame)
                        for k, obj in enumerate(r.obj_ids):
                            scores[(r.frame, obj)] = float(r.scores[k])
                        bar.update(1)
                except KeyboardInterrupt:
                    stop.event.set()
                except Exception as err:  # noqa: BLE001 - reported, partial result saved
                    failure = err
                finally:
                    bar.close()
            elapsed = time.perf_counter() - t0
            labels = session.labels()
            pixel_size = None
            if isinstance(movie, str):
                try:
                    pixel_size = read_pixel_size(movie)
                except Exception:  # noqa: BLE001 - not a TIFF or odd tags: no pixel size
                    pixel_size = None

            if stop.event.is_set() or failure is not None:
                prompted = set(session.prompted_frames())
                finished = done | prompted
                if np.any(labels):
                    save_labels_tiff(out, labels, pixel_size=pixel_size)
                    what = (
                        f"wrote the finished frames ({_frame_ranges(finished)}) to {out}; "
                        "the other frames are empty"
                    )
                else:
                    what = "nothing was written"
                if failure is not None:
                    if args.debug:
                        raise failure
                    _err(f"error: failed after {len(done)} frame(s): {_one_line(failure)}; {what}")
                    return EXIT_ERROR
                _err(f"interrupted after {len(done)} of {n_frames} frames: {what}")
                return EXIT_INTERRUPTED

            present = {int(i) for i in np.unique(labels) if i}
            if not present:
                raise CLIError(
                    f"the result is empty: no object was found on any of the {n_frames} frames "
                    "(check that the prompts are (y, x) on the right frames, and the model); "
                    "nothing was written"
                )
            for obj in objects:
                if obj not in present:
                    _err(f"warning: object {obj} is empty on every frame")
            save_labels_tiff(out, labels, pixel_size=pixel_size)
            written = [str(out)]
            if args.ctc:
                from .io.ctc import save_ctc

                written.append(str(save_ctc(args.ctc, labels)) + os.sep)
            if args.csv:
                from .io.measurements import measure, save_measurements_csv

                table = measure(labels, _RawMovie(session.frames), scores=scores)
                written.append(str(save_measurements_csv(args.csv, table)))
        finally:
            session.frames.close()

    per_frame = elapsed / max(len(done), 1)
    px = f", pixel size {pixel_size[0]:.4g} x {pixel_size[1]:.4g} um" if pixel_size else ""
    print(
        f"segmented {len(present)} object(s) on {n_frames} frames of {h} x {w} px in "
        f"{elapsed:.1f} s ({per_frame:.3f} s per frame, {model.config.name} on "
        f"{_device_label(model)})"
    )
    print(f"wrote {', '.join(written)}")
    print(f"labels: {labels.dtype}, {' x '.join(map(str, labels.shape))} (T, Y, X){px}")
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


# --------------------------------------------------------------------------- train / finetune


def _train_config(args: argparse.Namespace, **base: Any):
    from .train.trainer import TrainConfig

    values = dict(base)
    for name in (
        "steps",
        "clip_len",
        "max_objects",
        "single_frame_fraction",
        "correction_rounds",
        "lr",
        "warmup_steps",
        "frame_size",
        "save_every",
        "seed",
    ):
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    if getattr(args, "kinds", None):
        values["kinds"] = tuple(args.kinds)
    if getattr(args, "bf16", False):
        values["bf16"] = True
    if getattr(args, "freeze_image_encoder", False):
        values["freeze_image_encoder"] = True
    tcfg = TrainConfig(**values)
    for name in ("steps", "clip_len", "max_objects", "save_every"):
        if getattr(tcfg, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1")
    return tcfg


def _resume_step(out: Path) -> int:
    last = out / "last.pt"
    if not last.is_file():
        return 0
    import torch

    try:
        state = torch.load(last, map_location="cpu", weights_only=False)
        return int(state["step"])
    except Exception as err:  # noqa: BLE001
        raise CLIError(
            f"cannot resume from {last} ({_one_line(err)}); delete it to start over"
        ) from None


def _run_training(
    model, tcfg, out: Path, device, clips, *, quiet: bool, label: str, threads: int | None
) -> int:
    import torch

    from .train.trainer import train

    if threads:
        torch.set_num_threads(threads)
    start = _resume_step(out)
    if start:
        _info(f"resuming from {out / 'last.pt'} at step {start}", quiet)
    if start >= tcfg.steps:
        print(
            f"{out / 'last.pt'} is already at step {start} >= --steps {tcfg.steps}: nothing to "
            "do (raise --steps to train longer)"
        )
        return EXIT_OK
    bar = _tqdm(tcfg.steps, label, "step", quiet, initial=start)
    last: dict = {}

    def log(rec: dict) -> None:
        last.update(rec)
        bar.update(rec["step"] - bar.n)
        post = {k: f"{rec[k]:.3g}" for k in ("loss", "iou", "track_iou") if k in rec}
        bar.set_postfix(post, refresh=False)

    t0 = time.perf_counter()
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
    try:
        train(model, tcfg, out, clips=clips, device=str(device), log=log)
    except KeyboardInterrupt:
        bar.close()
        saved = _resume_step(out)
        _err(
            f"interrupted at step {last.get('step', start)}; {out / 'last.pt'} holds step "
            f"{saved} (saved every {tcfg.save_every} steps): run the same command to resume"
        )
        return EXIT_INTERRUPTED
    finally:
        bar.close()
    took = time.perf_counter() - t0
    loss = f", last loss {last['loss']:.4g}" if "loss" in last else ""
    print(f"trained to step {tcfg.steps} in {took:.1f} s{loss}")
    print(f"weights: {out / 'model.pt'}   (use: --model {out / 'model.pt'})")
    print(f"resume or extend: run the same command with a larger --steps ({out / 'last.pt'})")
    print(f"metrics per step: {out / 'metrics.jsonl'}")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from .model.config import CONFIGS
    from .weights.load import resolve_device

    if args.config not in CONFIGS:
        raise CLIError(f"unknown --config {args.config!r}; known: {', '.join(sorted(CONFIGS))}")
    tcfg = _train_config(args)
    out = Path(args.out or f"runs/{args.config}")
    device = resolve_device(args.device)
    _info(
        f"training {args.config} from scratch on synthetic movies ({', '.join(tcfg.kinds)}) on "
        f"{device}: {tcfg.steps} steps, clips of {tcfg.clip_len} frames, <= {tcfg.max_objects} "
        f"objects -> {out}",
        args.quiet,
    )
    return _run_training(
        args.config,
        tcfg,
        out,
        device,
        None,
        quiet=args.quiet,
        label="training",
        threads=args.threads,
    )


class _MovieView:
    """(T, H, W) single-channel view of a FrameSource, sliceable along T (for fine-tuning)."""

    def __init__(self, frames, channel: int | None) -> None:
        self._frames = frames
        self._channel = channel
        first = self._frame(0)
        self.shape = (frames.num_frames, *first.shape)
        self.dtype = first.dtype

    def _frame(self, t: int):
        f = self._frames.raw(t)
        if f.ndim == 3:
            f = f[..., self._channel or 0]
        return f

    def __getitem__(self, index):
        import numpy as np

        ts = range(self.shape[0])[index]
        if isinstance(ts, int):
            return self._frame(ts)
        return np.stack([self._frame(t) for t in ts]) if len(ts) else np.zeros((0, *self.shape[1:]))


def cmd_finetune(args: argparse.Namespace) -> int:
    import numpy as np

    from .io.tiff import load_labels_tiff
    from .train.trainer import finetune_clips
    from .video.frames import FrameSource
    from .weights.load import resolve_device

    channel = _parse_channel(args.channel)
    if isinstance(channel, tuple):
        raise CLIError("finetune takes a single --channel")
    movie = _movie_input(args.movie)
    if not Path(args.labels).is_file():
        raise CLIError(f"labels not found: {args.labels}")
    frames = FrameSource(movie, axes=args.axes, channel=channel, prefetch=False)
    view = _MovieView(frames, channel)
    try:
        labels = load_labels_tiff(args.labels)
    except Exception as err:  # noqa: BLE001
        raise CLIError(f"cannot read labels {args.labels}: {_one_line(err)}") from None
    if labels.ndim == 2:
        labels = labels[None]
    if labels.ndim != 3 or labels.shape != view.shape:
        raise CLIError(
            f"labels {Path(args.labels).name} have shape {labels.shape} but the movie frames are "
            f"{view.shape} (T, H, W)"
        )
    if not any(np.bincount(labels[t].ravel())[1:].max(initial=0) >= 10 for t in range(len(labels))):
        raise CLIError(f"{args.labels} holds no object of at least 10 pixels to learn from")
    steps = args.steps
    warmup = args.warmup_steps if args.warmup_steps is not None else max(1, min(50, steps // 10))
    tcfg = _train_config(args, lr=1e-4, warmup_steps=warmup, save_every=50)
    out = Path(args.out)
    device = resolve_device(args.device)
    model = _load_model_cli(args.checkpoint, "cpu", args.quiet)
    clips = finetune_clips(view, labels, model.config, tcfg)
    frozen = ", image encoder frozen" if tcfg.freeze_image_encoder else ""
    _info(
        f"fine-tuning {model.config.name} on {Path(args.movie).name} ({view.shape[0]} frames) "
        f"on {device}: {tcfg.steps} steps, lr {tcfg.lr:g}{frozen} -> {out}",
        args.quiet,
    )
    return _run_training(
        model,
        tcfg,
        out,
        device,
        clips,
        quiet=args.quiet,
        label="fine-tuning",
        threads=args.threads,
    )


# --------------------------------------------------------------------------- parser

_MAIN_EPILOG = """\
start here (runs offline in about a minute on a laptop CPU):
  napari-sam2 demo             make a synthetic time-lapse, click its cells, track them, and
                               save movie.tif, labels.tif, preview.png in ./napari-sam2-demo

segment your own movie from clicks saved in napari (Points layer, File > Save Selected Layers):
  napari-sam2 segment movie.tif --prompts clicks.csv --out labels.tif

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

_SEGMENT_EPILOG = f"""\
prompt files (coordinates are image pixels in napari's (y, x) order, frames from 0):
  napari Points CSV (File > Save Selected Layer(s) of a Points layer with properties):
      index,axis-0,axis-1,axis-2,obj_id,positive      axis-0 = frame, axis-1 = y, axis-2 = x
  or plain CSV:
      frame,y,x,obj_id,positive                       positive: 1 = on the object, 0 = not
      0,105,88,1,1
  boxes (--boxes):
      frame,y0,x0,y1,x1,obj_id
  Clicks and boxes with the same obj_id are one object; its id is its label value.

examples:
  {PROG} segment movie.tif --prompts clicks.csv --out labels.tif
  {PROG} segment movie.tif --boxes boxes.csv --ctc movie_RES --csv cells.csv
  {PROG} segment movie.tif --prompts clicks.csv --model sam2.1_hiera_small --device cuda \\
      --precision bf16 --num-memory-frames 4 --non-overlap
  {PROG} segment stack.tif --axes TCYX --channel 1 --prompts clicks.csv

Ctrl-C stops after the current frame and writes the frames finished so far.
"""

_MODELS_EPILOG = f"""\
examples:
  {PROG} models
  {PROG} models --download sam2.1_hiera_tiny
  NAPARI_SAM2_CACHE=/data/models {PROG} models      # use another cache folder
Offline: copy the .pt files into the cache folder shown by '{PROG} models'.
"""

_TRAIN_EPILOG = f"""\
examples:
  {PROG} train --steps 200 --config test_tiny_256 --clip-len 3 --max-objects 4 --out runs/try
  {PROG} train --steps 6000 --clip-len 5 --single-frame-fraction 0.5 --save-every 50 \\
      --out runs/micro       # like scripts/train_micro.py (the bundled model): hours on a CPU
Run the same command again (with a larger --steps) to resume from OUT/last.pt.
"""

_FINETUNE_EPILOG = f"""\
examples:
  {PROG} finetune micro --movie movie.tif --labels labels.tif --out runs/ft --steps 300
  {PROG} finetune sam2.1_hiera_tiny --movie m.tif --labels l.tif --freeze-image-encoder \\
      --device cuda --out runs/ft_tiny
Then: {PROG} segment new.tif --prompts clicks.csv --model runs/ft/model.pt
The labels must have the movie's (T, H, W) and consistent ids over time (e.g. corrected
napari-sam2 output).
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=100)


def _add_training_flags(p: argparse.ArgumentParser, finetune: bool) -> argparse._ArgumentGroup:
    """Flags shared by train and finetune (defaults: TrainConfig's, or fine-tuning ones)."""
    g = p.add_argument_group("training")
    defaults = {  # shown in --help; the values themselves come from TrainConfig / cmd_finetune
        "steps": "300" if finetune else "4000",
        "lr": "1e-4" if finetune else "6e-4",
        "warmup": "steps/10, at most 50" if finetune else "200",
        "save": "50" if finetune else "100",
    }
    g.add_argument(
        "--steps",
        type=int,
        metavar="N",
        default=300 if finetune else None,
        help=f"optimiser steps in total (default: {defaults['steps']})",
    )
    g.add_argument(
        "--clip-len", type=int, metavar="K", help="frames per training clip (default: 6)"
    )
    g.add_argument("--max-objects", type=int, metavar="N", help="objects per clip (default: 8)")
    g.add_argument("--lr", type=float, help=f"peak learning rate (default: {defaults['lr']})")
    g.add_argument(
        "--warmup-steps",
        type=int,
        metavar="N",
        help=f"linear warm-up steps (default: {defaults['warmup']})",
    )
    g.add_argument(
        "--single-frame-fraction",
        type=float,
        metavar="F",
        help="share of single-frame steps (one click + corrective clicks) (default: 0.3)",
    )
    g.add_argument(
        "--correction-rounds",
        type=int,
        metavar="N",
        help="simulated corrective clicks per prompt (default: 2)",
    )
    g.add_argument(
        "--save-every",
        type=int,
        metavar="N",
        help=f"write OUT/last.pt and OUT/model.pt every N steps (default: {defaults['save']})",
    )
    g.add_argument("--seed", type=int, metavar="S", help="random seed (default: 0)")
    g.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda", "mps"],
        help="where to train (default: auto = CUDA, then MPS, then CPU)",
    )
    g.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    g.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch")
    return g


def _desc(text: str) -> str:
    """Wrap a description paragraph (the raw formatter keeps the epilogs' layout as written)."""
    import textwrap

    return textwrap.fill(text, width=95)


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

    # segment
    p = sub.add_parser(
        "segment",
        parents=[common],
        formatter_class=_Formatter,
        epilog=_SEGMENT_EPILOG,
        help="segment and track objects through a movie from clicks/boxes in CSV files",
        description=_desc(
            "Segment and track objects through MOVIE (a TIFF, or a .npy array) from "
            "clicks and/or boxes, and write a label TIFF (pixel size carried over from the input)."
        ),
    )
    p.add_argument("movie", metavar="MOVIE", help="movie file: TIFF (T, Y, X) or with --axes")
    p.add_argument("--prompts", metavar="CLICKS.csv", help="clicks: napari Points CSV or plain CSV")
    p.add_argument("--boxes", metavar="BOXES.csv", help="boxes: frame,y0,x0,y1,x1,obj_id")
    p.add_argument(
        "--out",
        metavar="LABELS.tif",
        help="output label TIFF (default: MOVIE_labels.tif next to the movie)",
    )
    p.add_argument(
        "--ctc", metavar="DIR", help="also write a Cell Tracking Challenge result folder"
    )
    p.add_argument(
        "--csv",
        metavar="CELLS.csv",
        help="also write per-object, per-frame measurements (area, centroid, intensities, score)",
    )
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
        help="default: auto = CUDA, then MPS, then CPU",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16"],
        help="bf16 is faster on recent GPUs (default: %(default)s)",
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
        help="axes of the movie, e.g. TYX, TCYX, TYXC (default: from the file)",
    )
    p.add_argument(
        "--channel", metavar="N[,N,N]", help="channel the model sees (or up to 3 shown as R,G,B)"
    )
    p.add_argument(
        "--contrast",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help="intensity window (default: 0.5-99.5 percentiles of the movie)",
    )
    _add_memory_flags(p)
    p.set_defaults(func=cmd_segment)

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

    # train
    p = sub.add_parser(
        "train",
        parents=[common],
        formatter_class=_Formatter,
        epilog=_TRAIN_EPILOG,
        help="train a model from scratch on synthetic time-lapses (resumable)",
        description=_desc(
            "Train a model from scratch on synthetic time-lapses (nuclei, phase-contrast "
            "cells, bacteria). Writes OUT/last.pt (resume state), OUT/model.pt (weights for "
            "--model) and OUT/metrics.jsonl."
        ),
    )
    p.add_argument(
        "--config",
        default="micro",
        metavar="NAME",
        help="architecture (default: %(default)s; e.g. test_tiny_256, sam2.1_hiera_tiny)",
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/CONFIG)")
    g = _add_training_flags(p, finetune=False)
    g.add_argument(
        "--kinds",
        nargs="+",
        choices=["nuclei", "phase", "bacteria"],
        metavar="KIND",
        help="synthetic movie kinds: nuclei, phase, bacteria (default: all three)",
    )
    g.add_argument(
        "--frame-size",
        type=int,
        metavar="PX",
        help="side of the synthetic frames (default: the model input size)",
    )
    p.set_defaults(func=cmd_train)

    # finetune
    p = sub.add_parser(
        "finetune",
        parents=[common],
        formatter_class=_Formatter,
        epilog=_FINETUNE_EPILOG,
        help="fine-tune a model on your own annotated movie (resumable)",
        description=_desc(
            "Fine-tune CHECKPOINT (a model name or .pt file) on a movie and its label "
            "TIFF. Writes OUT/model.pt, OUT/last.pt and OUT/metrics.jsonl."
        ),
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="model name or checkpoint file")
    p.add_argument("--movie", required=True, metavar="M.tif", help="movie (T, Y, X)")
    p.add_argument("--labels", required=True, metavar="L.tif", help="labels (T, Y, X)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--freeze-image-encoder",
        action="store_true",
        help="train only the memory and decoder parts (little data)",
    )
    p.add_argument("--axes", metavar="AXES", help="axes of the movie, e.g. TCYX")
    p.add_argument("--channel", metavar="N", help="channel to train on (multi-channel movies)")
    _add_training_flags(p, finetune=True)
    p.set_defaults(func=cmd_finetune)
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
