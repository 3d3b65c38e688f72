"""``napari-sam2 segment``: track objects through a movie from prompt files, seed label
images or automatically found cells (package-private; see ``cli``)."""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

from .common import (
    EXIT_ERROR,
    EXIT_OK,
    CLIError,
    _device_label,
    _err,
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
from .divisions import division_summary


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
    from ..io.tiff import read_pixel_size

    try:
        return read_pixel_size(movie)
    except Exception:  # noqa: BLE001 - not a TIFF or odd tags: no pixel size
        return None


def _read_prompts(args: argparse.Namespace):
    """Prompt files and seed labels, read before the model is loaded (a typo fails in a fraction
    of a second): (clicks, boxes, (H, W) seed labels or None)."""
    from ..io.prompt_csv import read_box_prompts, read_point_prompts
    from ..io.seed_labels import seed_label_image

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


def _check_outputs(args: argparse.Namespace, out: Path) -> None:
    """Every output path writable, before any work starts (the message names the path)."""
    from ..io.outputs import OutputError, check_writable

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
    from ..io.outputs import error_reason

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
                            ("--divisions", args.divisions), ("--fit", args.fit)):
            if value is not None and value is not False:
                raise CLIError(f"--tile cannot be combined with {flag} (yet): use one of them")
    settings = _memory_settings(args)
    from .volume import segment_volume_cli, volume_axes

    axes3d = volume_axes(args, movie)
    model = _load_model_cli(args.model, args.device, quiet, compile=args.compile)
    if axes3d is not None:  # z-stack or 3-D + time
        return segment_volume_cli(args, movie, axes3d, points, boxes, channel, out, settings, model)
    if args.tile is not None:
        return _segment_tiled(args, movie, points, boxes, seed, channel, out, settings, model)
    import numpy as np

    from ..video._disk_volume import ids_present
    from ..video.frames import PartialMovieWarning, frame_source_for
    from ..video.movie_run import build_session, propagate_frames
    from .label_output import LabelOutput

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
                fit_masks=True if args.fit else False if args.no_fit else "auto",
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
                from ..io.ctc import save_ctc

                written.append(str(save_ctc(args.ctc, labels, lineage=lineage)) + os.sep)
            if args.csv:
                from ..io.measurements import RawFrames, measure, save_measurements_csv

                table = measure(labels, RawFrames(session.frames), scores=scores)
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
        print(division_summary(lineage, args.ctc))
    print(f"wrote {', '.join(written)}")
    print(f"labels: {labels.dtype}, {' x '.join(map(str, labels.shape))} (T, Y, X){px}")
    return EXIT_OK if saved else EXIT_ERROR


def _segment_tiled(args, movie, points, boxes, seed, channel, out: Path, settings, model) -> int:
    """``segment --tile S``: :func:`~napari_sam2.pipeline.segment_movie` with tiles; Ctrl-C
    keeps (and writes) what is finished."""
    from ..pipeline import segment_movie
    from ..video._disk_volume import ids_present
    from ..video.frames import PartialMovieWarning
    from .label_output import LabelOutput

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
        from ..io.ctc import save_ctc

        written.append(str(save_ctc(args.ctc, labels)) + os.sep)
    if args.csv:
        from ..io.measurements import RawFrames, measure, save_measurements_csv
        from ..video.frames import frame_source_for

        with frame_source_for(movie, model.config, axes=args.axes, channel=channel) as src:
            table = measure(labels, RawFrames(src))
        written.append(str(save_measurements_csv(args.csv, table)))
    n, h, w = labels.shape
    print(
        f"segmented {len(present)} object(s) on {n} frames of {h} x {w} px in {args.tile}-px "
        f"tiles in {elapsed:.1f} s ({model.config.name} on {_device_label(model)})"
    )
    print(f"wrote {', '.join(written)}")
    return EXIT_OK if saved else EXIT_ERROR
