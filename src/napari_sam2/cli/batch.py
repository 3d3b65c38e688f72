"""``napari-sam2 batch``: segment every movie of a manifest on Dask distributed
(package-private; see ``cli``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .common import (
    EXIT_ERROR,
    EXIT_OK,
    PROG,
    CLIError,
    _add_memory_flags,
    _add_model_flags,
    _desc,
    _err,
    _Formatter,
    _memory_settings,
)
from .signals import StopOnSignals

_BATCH_EPILOG = f"""\
manifest (CSV with a header; paths relative to the manifest; only 'movie' is required):
  movie,prompts,seed_labels,seed_frame,find_cells,axes,channel
  plate1/A01.tif,plate1/A01_clicks.csv,,,,,
  plate1/A02.tif,,plate1/A02_frame0.tif,0,,,
  plate2/*.tif,,,,0,TCYX,1                  a glob: every match, the same options
  plate3/*.tif,plate3/{{stem}}_clicks.csv,,,,,  {{stem}} = each movie's name without extension
more columns: boxes, direction (forward|backward|both), divisions (yes|no), name (output folder)

outputs: DIR/<movie name>/labels.tif (+ ctc/ with --ctc, cells.csv with --csv), and
DIR/summary.csv (movie, status, frames, objects, seconds, error). A rerun skips the movies
already finished (--force redoes them); a movie that fails is listed and the others go on.

examples:
  {PROG} batch manifest.csv --out results                     all cores of this machine
  {PROG} batch manifest.csv --out results --workers 4 --model sam2.1_hiera_tiny
  {PROG} batch manifest.csv --out results --device cuda       one worker per GPU
  {PROG} batch manifest.csv --out /shared/results --scheduler tcp://head:8786
See docs/batch.md for GPU and SLURM (dask-jobqueue) clusters.
"""


def add_batch_parser(sub, common: argparse.ArgumentParser) -> None:
    """The ``batch`` subcommand."""
    p = sub.add_parser(
        "batch",
        parents=[common],
        formatter_class=_Formatter,
        epilog=_BATCH_EPILOG,
        help="segment every movie of a manifest on Dask (all cores, several GPUs, a cluster)",
        description=_desc(
            "Segment many movies, one Dask task per movie: on a local cluster of worker "
            "processes sized to this machine, or on a running cluster (--scheduler). Each "
            "worker loads the model once; each movie's outputs are written atomically."
        ),
    )
    p.add_argument("manifest", metavar="MANIFEST.csv", help="the movies and their prompts")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes of the local cluster (default: one per GPU, else one per core "
        "as memory allows)",
    )
    p.add_argument(
        "--threads-per-worker",
        type=int,
        metavar="K",
        help="movies each local worker runs at once (default: 1)",
    )
    p.add_argument(
        "--torch-threads",
        type=int,
        metavar="T",
        help="torch threads per movie (default: the cores shared among the movies running at "
        "once on a local cluster)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="join a running Dask cluster, e.g. tcp://host:8786 (default: start a local one)",
    )
    _add_model_flags(p, " (on each worker)")
    p.add_argument(
        "--ctc", action="store_true", help="also write a CTC result folder per movie (ctc/)"
    )
    p.add_argument(
        "--csv", action="store_true", help="also write per-object measurements per movie"
    )
    p.add_argument("--force", action="store_true", help="redo movies finished by an earlier run")
    _add_memory_flags(p)
    p.set_defaults(func=cmd_batch)


def _positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise CLIError(f"{flag} must be at least 1, got {value}")


def cmd_batch(args: argparse.Namespace) -> int:
    from ..batch import ManifestError, read_manifest

    for flag in ("workers", "threads_per_worker", "torch_threads"):
        _positive(getattr(args, flag), "--" + flag.replace("_", "-"))
    if args.scheduler and (args.workers or args.threads_per_worker):
        raise CLIError(
            "--workers and --threads-per-worker size the local cluster; a cluster joined with "
            "--scheduler brings its own workers"
        )
    try:
        jobs = read_manifest(args.manifest)
    except ManifestError as err:
        raise CLIError(str(err)) from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; give a folder")
    t0 = time.perf_counter()
    # SIGTERM (schedulers at a time limit) and SIGHUP act like Ctrl-C: running movies stop
    # and write nothing, finished ones are kept
    with StopOnSignals(on_first=_raise_interrupt) as signals:
        return _run(args, jobs, out, t0, signals)


def _raise_interrupt(name: str) -> None:
    raise KeyboardInterrupt(name)


def _run(args: argparse.Namespace, jobs, out: Path, t0: float, signals: StopOnSignals) -> int:
    from ..batch import BatchInterrupted, segment_many

    try:
        results = segment_many(
            jobs,
            out_dir=out,
            client=args.scheduler,
            n_workers=args.workers,
            threads_per_worker=args.threads_per_worker,
            model=args.model,
            device=args.device,
            settings=_memory_settings(args),
            precision=args.precision,
            ctc=args.ctc,
            csv=args.csv,
            force=args.force,
            torch_threads=args.torch_threads,
            progress=None if args.quiet else "tqdm",
        )
    except BatchInterrupted as stop:
        done = sum(r.status in ("done", "skipped") for r in stop.results)
        _err(
            f"interrupted: {done} of {len(stop.results)} movie(s) finished and kept in {out}; "
            f"the others wrote nothing (run the same command again to go on)"
        )
        return signals.exit_code
    elapsed = time.perf_counter() - t0
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    print(
        f"segmented {counts['done']} movie(s) in {elapsed:.1f} s; {counts['skipped']} skipped "
        f"(finished earlier), {counts['failed']} failed"
    )
    for r in results:
        if r.status == "failed":
            print(f"failed: {r.movie}: {r.error}")
    print(f"wrote {out / 'summary.csv'} and one folder per movie in {out}")
    return EXIT_ERROR if counts["failed"] else EXIT_OK
