"""``napari-sam2 segment`` on 3-D data: a z-stack (``--axes ZYX``) or 3-D + time
(``--axes TZYX``), or a TIFF whose metadata say so (called by :mod:`napari_sam2.cli.segment`)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CLIError,
    _device_label,
    _err,
    _info,
    _Interrupt,
    _tqdm,
)
from .divisions import division_summary


def volume_axes(args: argparse.Namespace, movie: Any) -> str | None:
    """The 3-D axes of the movie (``--axes`` with a Z, or a TIFF's own axes), or None."""
    from ..video.volume_pipeline import detect_volume_axes

    return detect_volume_axes(movie, args.axes)


def _voxel_size(args: argparse.Namespace, movie: Any) -> tuple[float, float, float] | None:
    if args.voxel_size:
        return tuple(float(v) for v in args.voxel_size)
    if isinstance(movie, (str, os.PathLike)) and str(movie).lower().endswith((".tif", ".tiff")):
        from ..io.volumes import read_voxel_size

        try:
            return read_voxel_size(movie)
        except Exception:  # noqa: BLE001 - odd tags: uncalibrated
            return None
    return None


def segment_volume_cli(
    args: argparse.Namespace,
    movie: Any,
    axes: str,
    points,
    boxes,
    channel,
    out: Path,
    settings,
    model,
) -> int:
    """Run ``segment`` on 3-D data and write the hyperstack label TIFF, CTC folder and CSV
    (with ``--divisions`` on 3-D + time, the lineage goes to the CTC folder's res_track.txt)."""
    import numpy as np

    from ..io.volumes import measure_volumes, save_labels_hyperstack
    from ..pipeline import segment_movie

    refused = [
        ("--seed-labels", args.seed_labels),
        ("--find-cells", args.find_cells),
        ("--roi", args.roi),
        ("--tile", args.tile),
    ]
    if "T" not in axes:  # divisions of 3-D cells need time
        refused.insert(2, ("--divisions", args.divisions))
    for flag, value in refused:
        if value is not None and value is not False:
            raise CLIError(f"{flag} is not available for 3-D data (axes {axes}): give clicks/boxes")
    voxel = _voxel_size(args, movie)
    contrast = tuple(args.contrast) if args.contrast else None
    unit = "timepoint" if "T" in axes else "slice"
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = _tqdm(total, "propagating", unit, args.quiet)
        bar.update(done - bar.n)

    n_obj = len({p.obj_id for p in [*points, *boxes]})
    _info(f"3-D movie, axes {axes}; {n_obj} object(s)", args.quiet)
    t0 = time.perf_counter()
    with _Interrupt(unit) as stop:
        try:
            labels, lineage = segment_movie(
                movie,
                points,
                return_lineage=True,
                boxes=boxes,
                model=model,
                settings=settings,
                axes=axes,
                direction=args.direction,
                channel=channel,
                contrast_limits=contrast,
                precision=args.precision,
                cancel=stop.event,
                progress=progress,
                zoom=args.zoom,
                cell_diameter=args.cell_diameter,
                divisions=args.divisions,  # None: on for 3-D + time
                fit_masks=not args.no_fit,
            )
        except ValueError as err:
            raise CLIError(str(err)) from err
        finally:
            if bar is not None:
                bar.close()
    elapsed = time.perf_counter() - t0
    if not np.any(labels):
        raise CLIError("the result is empty: check that the prompts are (z, y, x) on the cells")
    save_labels_hyperstack(out, labels, voxel_size=voxel)
    written = [str(out)]
    if args.ctc:
        from ..io.ctc import save_ctc

        movie_labels = labels if labels.ndim == 4 else labels[None]
        written.append(str(save_ctc(args.ctc, movie_labels, lineage=lineage)) + os.sep)
    if args.csv:
        from ..io.measurements import save_measurements_csv

        written.append(
            str(save_measurements_csv(args.csv, measure_volumes(labels, voxel_size=voxel)))
        )
    vs = f", voxel size {voxel[0]:.4g} x {voxel[1]:.4g} x {voxel[2]:.4g} um" if voxel else ""
    shape = " x ".join(map(str, labels.shape))
    if stop.event.is_set():
        _err(f"interrupted: wrote the finished {unit}s to {', '.join(written)}")
        return EXIT_INTERRUPTED
    print(
        f"segmented {len(np.unique(labels)) - 1} object(s) in {elapsed:.1f} s "
        f"({model.config.name} on {_device_label(model)})"
    )
    if "T" in axes and args.divisions is not False:
        print(division_summary(lineage, args.ctc))
    print(f"wrote {', '.join(written)}")
    print(f"labels: {labels.dtype}, {shape} ({'T, ' if labels.ndim == 4 else ''}Z, Y, X){vs}")
    return EXIT_OK
