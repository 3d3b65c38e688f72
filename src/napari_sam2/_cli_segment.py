"""``napari-sam2 segment``: track objects through a movie from prompt files, seed label
images or automatically found cells (package-private; see ``cli``)."""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

from ._cli_common import (
    EXIT_ERROR,
    EXIT_OK,
    PROG,
    CLIError,
    _add_memory_flags,
    _add_model_flags,
    _desc,
    _device_label,
    _err,
    _Formatter,
    _frame_ranges,
    _info,
    _Interrupt,
    _load_model_cli,
    _memory_settings,
    _movie_input,
    _one_line,
    _parse_channel,
    _parse_roi,
    _tqdm,
)


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


def _warn_too_small(session, quiet: bool) -> None:
    """One line naming the objects too small at the model's input, with the fix
    (``VideoSession.too_small_hint``): boxes and mask prompts (seeded or found cells) are
    measured by their rectangle, clicks by the mask they gave."""
    small, hint = [], None
    for obj in session.obj_ids:
        prompts = session.prompts(obj)
        if not prompts:
            continue
        t = min(prompts)
        fp = prompts[t]
        box = fp.box if fp.box is not None else fp.mask_box
        if box is not None:
            h = session.too_small_hint(box=box)
        elif session.keep_labels:
            h = session.too_small_hint(mask=session.labels()[t] == obj)
        else:
            h = None
        if h is not None:
            small.append(obj)
            hint = hint or h
    if small:
        ids = ", ".join(map(str, small[:10])) + (" ..." if len(small) > 10 else "")
        _info(f"warning: object(s) {ids}: {hint.replace('this object spans', 'spans')}", quiet)


def _movie_pixel_size(movie):
    """The TIFF's pixel size (y, x) in um, or None (not a path, not a TIFF, odd tags)."""
    if not isinstance(movie, str):
        return None
    from .io.tiff import read_pixel_size

    try:
        return read_pixel_size(movie)
    except Exception:  # noqa: BLE001 - not a TIFF or odd tags: no pixel size
        return None


def _read_prompts(args: argparse.Namespace):
    """Prompt files and seed labels, read before the model is loaded (a typo fails in a fraction
    of a second): (clicks, boxes, (H, W) seed labels or None)."""
    from .pipeline import seed_label_image
    from .prompt_files import read_box_prompts, read_point_prompts

    if not (args.prompts or args.boxes or args.seed_labels or args.find_cells is not None):
        raise CLIError(
            "give prompts: --prompts CLICKS.csv, --boxes BOXES.csv, --seed-labels LABELS.tif "
            "and/or --find-cells FRAME"
        )
    if args.seed_frame is not None and not args.seed_labels:
        raise CLIError("--seed-frame needs --seed-labels LABELS.tif")
    unused = [f for f, v in _find_options(args).items() if v is not None]
    if unused and args.find_cells is None:
        flags = ", ".join("--" + _FIND_FLAGS[k] for k in unused)
        raise CLIError(f"{flags} need{'s' if len(unused) == 1 else ''} --find-cells FRAME")
    if args.divisions and args.direction == "backward":
        raise CLIError("--divisions tracks forward in time: use --direction forward or both")
    points = read_point_prompts(args.prompts) if args.prompts else []
    seed = None
    if args.seed_labels:
        seed = seed_label_image(args.seed_labels, args.seed_frame or 0)
    # Shapes-layer boxes without obj_id: ids continue after the clicks' and the labels' ids
    first_id = max([p.obj_id for p in points] + [int(seed.max()) if seed is not None else 0]) + 1
    boxes = read_box_prompts(args.boxes, first_id=first_id) if args.boxes else []
    return points, boxes, seed


# find_objects keyword -> flag
_FIND_FLAGS = {
    "points_per_side": "grid-points",
    "pred_iou_thresh": "min-iou",
    "stability_thresh": "min-stability",
    "min_area": "min-cell-area",
    "max_area": "max-cell-area",
}


def _find_options(args: argparse.Namespace) -> dict:
    return {k: getattr(args, flag.replace("-", "_")) for k, flag in _FIND_FLAGS.items()}


def _prompt_summary(args, points, boxes, seed, found: list[int]) -> str:
    parts = [f"{len(points)} click(s)", f"{len(boxes)} box(es)"]
    if seed is not None:
        import numpy as np

        n = int(np.count_nonzero(np.unique(seed)))
        name = Path(args.seed_labels).name
        parts.append(f"{n} label(s) from {name} on frame {args.seed_frame or 0}")
    if args.find_cells is not None:
        parts.append(f"{len(found)} cell(s) found on frame {args.find_cells}")
    return ", ".join(parts)


def _division_summary(lineage: dict[int, int], ctc: str | None) -> str:
    """'divisions: 2 (lineage in DIR/res_track.txt): 1 -> 5, 6; 3 -> 7, 8'."""
    mothers: dict[int, list[int]] = {}
    for daughter, mother in sorted(lineage.items()):
        mothers.setdefault(mother, []).append(daughter)
    where = f" (lineage in {Path(ctc) / 'res_track.txt'})" if ctc else ""
    shown = "; ".join(f"{m} -> {', '.join(map(str, ds))}" for m, ds in sorted(mothers.items())[:5])
    more = "; ..." if len(mothers) > 5 else ""
    return f"divisions: {len(mothers)}{where}" + (f": {shown}{more}" if shown else "")


def _check_outputs(args: argparse.Namespace, out: Path) -> None:
    """Every output path writable, before any work starts (the message names the path)."""
    from ._outputs import OutputError, check_writable

    try:
        check_writable(out, "--out" if args.out else "the output")
        if args.ctc:
            check_writable(args.ctc, "--ctc", folder=True)
        if args.csv:
            check_writable(args.csv, "--csv")
    except OutputError as err:
        raise CLIError(str(err)) from None


def _finish_labels(output, labels, out: Path) -> tuple[Path, bool]:
    """Move the labels to ``out`` (or a fallback place, said on stderr): (path, ok)."""
    from ._outputs import error_reason

    try:
        written, err = output.finish(labels)
    except OSError as err:
        raise CLIError(
            f"could not write the labels to {out} nor to a fallback place "
            f"({error_reason(err)}); the finished frames are in {output.partial}"
        ) from None
    if err is not None:
        _err(
            f"error: could not write {out} ({error_reason(err)}); the labels were saved to "
            f"{written} instead"
        )
    return written, err is None


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


def cmd_segment(args: argparse.Namespace) -> int:
    quiet = args.quiet
    movie = _movie_input(args.movie, allow_partial=args.allow_partial)
    points, boxes, seed = _read_prompts(args)
    channel = _parse_channel(args.channel)
    roi = _parse_roi(args.roi)
    default_out = Path(args.movie).with_name(Path(args.movie).stem + "_labels.tif")
    out = Path(args.out) if args.out else default_out
    if out.exists() and out.resolve() == Path(args.movie).resolve():
        raise CLIError(f"--out {out} is the input movie; choose another output file")
    _check_outputs(args, out)

    if args.tile is not None:
        for flag, value in (("--roi", args.roi), ("--find-cells", args.find_cells),
                            ("--divisions", args.divisions)):
            if value is not None and value is not False:
                raise CLIError(f"--tile cannot be combined with {flag} (yet): use one of them")
    settings = _memory_settings(args)
    from ._cli_volume import segment_volume_cli, volume_axes

    axes3d = volume_axes(args, movie)
    model = _load_model_cli(args.model, args.device, quiet, compile=args.compile)
    if axes3d is not None:  # z-stack or 3-D + time
        return segment_volume_cli(args, movie, axes3d, points, boxes, channel, out, settings, model)
    if args.tile is not None:
        return _segment_tiled(args, movie, points, boxes, seed, channel, out, settings, model)
    import numpy as np

    from ._label_output import LabelOutput
    from .pipeline import build_session, propagate_frames
    from .video._disk_volume import ids_present
    from .video.frames import PartialMovieWarning, frame_source_for

    contrast = tuple(args.contrast) if args.contrast else None
    find_options = {k: v for k, v in _find_options(args).items() if v is not None}
    done: set[int] = set()
    scores: dict[tuple[int, int], float] = {}
    pixel_size = _movie_pixel_size(movie)
    output = LabelOutput(out, pixel_size, movie=args.movie)
    known_ids = [p.obj_id for p in points] + [b.obj_id for b in boxes]
    with _Interrupt("frame") as stop, warnings.catch_warnings():
        warnings.simplefilter("ignore", PartialMovieWarning)  # said by _movie_input
        frames = frame_source_for(
            movie,
            model.config,
            axes=args.axes,
            channel=channel,
            contrast_limits=contrast,
            allow_partial=args.allow_partial,
        )
        try:
            # the labels stream into a label TIFF beside --out: memory does not grow with
            # the movie's length, and finished frames are on disk whatever happens
            volume = output.create(
                (frames.num_frames, frames.height, frames.width),
                max([*known_ids, int(seed.max()) if seed is not None else 0, 1]),
            )
            session = build_session(
                frames,
                points,
                model=model,
                settings=settings,
                boxes=boxes,
                precision=args.precision,
                out=volume,
                cancel=stop.event,
                seed_labels=seed,
                seed_frame=args.seed_frame or 0,
                find_cells=args.find_cells,
                find_options=find_options,
                roi=roi,
                zoom=args.zoom,
                cell_diameter=args.cell_diameter,
            )
        except BaseException:
            frames.close()
            output.discard()
            raise
        try:
            objects = session.obj_ids
            known = {p.obj_id for p in points} | {b.obj_id for b in boxes}
            if seed is not None:
                known |= set(np.unique(seed).tolist())
            found = [i for i in objects if i not in known]
            n_frames = session.num_frames
            h, w = session.frame_shape
            where = ""
            if session.roi is not None:
                y0, x0, y1, x1 = session.roi
                where = f", region of interest y {y0}:{y1}, x {x0}:{x1}"
            _info(
                f"movie: {n_frames} frames of {h} x {w} px ({session.frames.axes}){where}; "
                f"{len(objects)} object(s), {_prompt_summary(args, points, boxes, seed, found)}",
                quiet,
            )
            _warn_too_small(session, quiet)
            failure: BaseException | None = None
            t0 = time.perf_counter()
            if not stop.event.is_set():
                total, results = propagate_frames(
                    session, args.direction, stop.event, divisions=True if args.divisions else None
                )
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
            lineage = dict(session.lineage)

            if stop.event.is_set() or failure is not None:
                finished = done | set(session.prompted_frames())
                if ids_present(labels):
                    written, _ = _finish_labels(output, labels, out)
                    what = (
                        f"wrote the finished frames ({_frame_ranges(finished)}) to {written}; "
                        "the other frames are empty"
                    )
                else:
                    output.discard()
                    what = "nothing was written"
                if failure is not None:
                    if args.debug:
                        raise failure
                    _err(f"error: failed after {len(done)} frame(s): {_one_line(failure)}; {what}")
                    return EXIT_ERROR
                _err(f"interrupted after {len(done)} of {n_frames} frames: {what}")
                return stop.exit_code

            present = ids_present(labels)
            if not present:
                output.discard()
                raise CLIError(
                    f"the result is empty: no object was found on any of the {n_frames} frames "
                    "(check that the prompts are (y, x) on the right frames, and the model); "
                    "nothing was written"
                )
            for obj in objects:
                if obj not in present:
                    _err(f"warning: object {obj} is empty on every frame")
            labels_at, saved = _finish_labels(output, labels, out)
            written = [str(labels_at)]
            if args.ctc:
                from .io.ctc import save_ctc

                written.append(str(save_ctc(args.ctc, labels, lineage=lineage)) + os.sep)
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
    if args.divisions:
        print(_division_summary(lineage, args.ctc))
    print(f"wrote {', '.join(written)}")
    print(f"labels: {labels.dtype}, {' x '.join(map(str, labels.shape))} (T, Y, X){px}")
    return EXIT_OK if saved else EXIT_ERROR


def _segment_tiled(args, movie, points, boxes, seed, channel, out: Path, settings, model) -> int:
    """``segment --tile S``: :func:`~napari_sam2.pipeline.segment_movie` with tiles; Ctrl-C
    keeps (and writes) what is finished."""
    from ._label_output import LabelOutput
    from .pipeline import segment_movie
    from .video._disk_volume import ids_present
    from .video.frames import PartialMovieWarning

    quiet = args.quiet
    bar = None
    pixel_size = _movie_pixel_size(movie)
    output = LabelOutput(out, pixel_size, movie=args.movie)

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = _tqdm(total, f"propagating ({args.tile}-px tiles)", "frame", quiet)
        bar.update(done - bar.n)

    t0 = time.perf_counter()
    with _Interrupt("frame") as stop, warnings.catch_warnings():
        warnings.simplefilter("ignore", PartialMovieWarning)  # said by _movie_input
        try:
            labels = segment_movie(
                movie, points, model=model, settings=settings, direction=args.direction,
                axes=args.axes, channel=channel, boxes=boxes, progress=progress,
                precision=args.precision,
                contrast_limits=tuple(args.contrast) if args.contrast else None,
                cancel=stop.event, seed_labels=seed, seed_frame=args.seed_frame or 0,
                tile=args.tile, tile_margin=args.tile_margin, labels_path=output.partial,
                allow_partial=args.allow_partial, zoom=args.zoom,
                cell_diameter=args.cell_diameter,
            )
        except ValueError as err:
            output.discard()
            raise CLIError(str(err)) from err
        finally:
            if bar is not None:
                bar.close()
    elapsed = time.perf_counter() - t0
    output.volume = labels
    present = ids_present(labels)
    if stop.event.is_set():
        if present:
            written_at, _ = _finish_labels(output, labels, out)
            what = f"wrote the finished tiles and frames to {written_at}"
        else:
            output.discard()
            what = "nothing was written"
        _err(f"interrupted: {what}")
        return stop.exit_code
    if not present:
        output.discard()
        raise CLIError("the result is empty: no object was found on any frame; nothing was written")
    labels_at, saved = _finish_labels(output, labels, out)
    written = [str(labels_at)]
    if args.ctc:
        from .io.ctc import save_ctc

        written.append(str(save_ctc(args.ctc, labels)) + os.sep)
    if args.csv:
        from .io.measurements import measure, save_measurements_csv
        from .video.frames import frame_source_for

        with frame_source_for(movie, model.config, axes=args.axes, channel=channel) as src:
            table = measure(labels, _RawMovie(src))
        written.append(str(save_measurements_csv(args.csv, table)))
    n, h, w = labels.shape
    print(
        f"segmented {len(present)} object(s) on {n} frames of {h} x {w} px in {args.tile}-px "
        f"tiles in {elapsed:.1f} s ({model.config.name} on {_device_label(model)})"
    )
    print(f"wrote {', '.join(written)}")
    return EXIT_OK if saved else EXIT_ERROR


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
    p.add_argument(
        "--divisions",
        action="store_true",
        help="track cell divisions: daughters get new ids, the lineage goes to --ctc "
        "res_track.txt (forward in time from the first prompted frame)",
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
        help="intensity window (default: 0.5-99.5 percentiles of the movie)",
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
