"""Scripting API: segment a whole movie from clicks, boxes or a label image in one call.

:func:`segment_movie` is the one-call form of :class:`~napari_sam2.video.session.VideoSession`::

    import napari_sam2 as ns

    labels = ns.segment_movie(
        "movie.tif",
        [
            {"frame": 0, "y": 105, "x": 88, "obj_id": 1},
            {"frame": 0, "y": 40, "x": 200, "obj_id": 2, "positive": True},
        ],
    )
    ns.save_labels_tiff("labels.tif", labels)

Its options are grouped in small frozen dataclasses
(:mod:`napari_sam2.video.segment_options`); :func:`segment` takes them as one
:class:`~napari_sam2.video.segment_options.SegmentOptions` and always returns a
:class:`~napari_sam2.video.segment_options.Segmentation` (labels and lineage). The lower-level
steps (:func:`~napari_sam2.video.movie_run.build_session`,
:func:`~napari_sam2.video.movie_run.propagate_frames`) are what the command line and the demo
use. No napari or Qt is imported here.
"""

from __future__ import annotations

from typing import Any

from .video.segment_options import Segmentation, SegmentOptions

__all__ = ["segment", "segment_movie"]


def segment_movie(
    movie: Any,
    prompts: Any = None,
    *,
    options: SegmentOptions | None = None,
    return_lineage: bool = False,
    **keywords: Any,
):
    """Segment and track objects through a whole movie from clicks, boxes and/or label images.

    Args:
        movie: (T, Y, X) array (numpy, memmap, dask, zarr), a multi-channel movie with ``axes``,
            or the path of a TIFF file (read lazily, frame by frame).
        prompts: clicks, in any of these forms (coordinates are (y, x) image pixels, napari's
            order; frames count from 0):

            * a list of dicts ``{"frame": 0, "y": 105.0, "x": 88.0, "obj_id": 1,
              "positive": True}`` (``positive`` optional, default True; ``t`` may replace
              ``frame``);
            * a list of tuples or an (N, 4) / (N, 5) array ``(frame, y, x, obj_id[, positive])``;
            * :class:`~napari_sam2.video.prompts.PointPrompt` items (what
              :func:`~napari_sam2.io.prompt_csv.read_point_prompts` returns);
            * the path of a prompt CSV (napari Points CSV or ``frame,y,x,obj_id,positive``).

            Clicks with the same ``obj_id`` belong to one object (its id in the labels); several
            frames may carry prompts for the same object (corrections).
        options: a :class:`~napari_sam2.video.segment_options.SegmentOptions` (None: the
            defaults); ``keywords`` are set on top of it.
        return_lineage: also return the divisions found, ``{daughter_id: mother_id}`` (for
            :func:`napari_sam2.io.ctc.save_ctc`); :func:`segment` returns both always.
        **keywords: any option by name, each documented on the group that holds it:
            ``model``, ``device``, ``precision``
            (:class:`~napari_sam2.video.segment_options.ModelOptions`); ``axes``, ``channel``,
            ``contrast_limits``, ``allow_partial``
            (:class:`~napari_sam2.video.segment_options.MovieOptions`); ``boxes``,
            ``seed_labels``, ``seed_frame``, ``find_cells``, ``find_options``
            (:class:`~napari_sam2.video.segment_options.SeedOptions`); ``zoom``,
            ``cell_diameter``, ``roi``, ``tile``, ``tile_margin``
            (:class:`~napari_sam2.video.segment_options.RegionOptions`); ``settings``,
            ``direction``, ``divisions``, ``fit_masks``
            (:class:`~napari_sam2.video.segment_options.TrackOptions`); ``out``,
            ``labels_path``, ``progress``, ``cancel``
            (:class:`~napari_sam2.video.segment_options.OutputOptions`).

    Returns:
        (T, Y, X) labels, uint16 (uint32 for ids above 65535; ``out`` itself when given):
        0 = background, otherwise the object id. Frames not reached (cancelled run) are 0.
        With ``return_lineage``: (labels, lineage).

    Raises:
        TypeError: an unknown keyword (the message lists the options).
        ValueError: a bad option or a combination that cannot work (refused before the model
            is loaded), no prompts, a prompt outside the movie or the ROI (the message names
            it), bad seed labels, a damaged movie
            (:class:`~napari_sam2.video.frames.DamagedMovieError`, naming the first bad frame).
        FrameReadError: a frame could not be read or decoded (named; the frames before it
            are in ``out`` / ``labels_path`` when given).
    """
    result = segment(movie, prompts, SegmentOptions.from_keywords(options, **keywords))
    return (result.labels, result.lineage) if return_lineage else result.labels


def segment(
    movie: Any, prompts: Any = None, options: SegmentOptions | None = None
) -> Segmentation:
    """:func:`segment_movie` with its options as one object and one return type.

    Args:
        movie: as in :func:`segment_movie`.
        prompts: clicks, as in :func:`segment_movie`.
        options: the options (None: the defaults).

    Returns:
        A :class:`~napari_sam2.video.segment_options.Segmentation`: the labels and the
        lineage (empty without division tracking).

    Raises:
        ValueError, FrameReadError: as :func:`segment_movie`.
    """
    from .video.volume_pipeline import detect_volume_axes

    o = options if options is not None else SegmentOptions()
    axes3d = detect_volume_axes(movie, o.movie.axes)
    if axes3d is not None:  # z-stack or 3-D + time (also when only the TIFF says so)
        o.check_3d(axes3d)
        return _segment_volume(movie, prompts, axes3d, o)
    if o.region.tile is not None:
        from .video.tiling import segment_tiled

        labels = segment_tiled(
            movie, prompts, o.seeds.boxes, o.seeds.seed_labels, o.seeds.seed_frame,
            o.region.tile, o.region.tile_margin, model=o.model.model, settings=o.track.settings,
            direction=o.track.direction, axes=o.movie.axes, channel=o.movie.channel,
            progress=o.output.progress, device=o.model.device, precision=o.model.precision,
            contrast_limits=o.movie.contrast_limits, out=o.output.out, cancel=o.output.cancel,
            labels_path=o.output.labels_path, allow_partial=o.movie.allow_partial,
            zoom=o.region.zoom, cell_diameter=o.region.cell_diameter,
        )
        return Segmentation(labels)
    return _segment_2d(movie, prompts, o)


def _segment_volume(movie: Any, prompts: Any, axes: str, o: SegmentOptions) -> Segmentation:
    from .video.movie_run import progress_callback
    from .video.volume_pipeline import segment_volume
    from .weights.load import resolve_model

    return segment_volume(
        movie, prompts, model=resolve_model(o.model.model, o.model.device), axes=axes,
        boxes=o.seeds.boxes, settings=o.track.settings, direction=o.track.direction,
        channel=o.movie.channel, contrast_limits=o.movie.contrast_limits,
        precision=o.model.precision, out=o.output.out, cancel=o.output.cancel,
        progress=lambda total: progress_callback(o.output.progress, total, "propagating"),
        zoom=o.region.zoom, cell_diameter=o.region.cell_diameter,
        divisions=None if o.track.divisions is None else o.track.tracks_divisions,
        fit=o.track.fits(True),
    )


def _segment_2d(movie: Any, prompts: Any, o: SegmentOptions) -> Segmentation:
    from .video.movie_run import build_session, progress_callback, propagate_frames

    session = build_session(
        movie,
        prompts,
        model=o.model.model,
        settings=o.track.settings,
        axes=o.movie.axes,
        channel=o.movie.channel,
        boxes=o.seeds.boxes,
        contrast_limits=o.movie.contrast_limits,
        device=o.model.device,
        precision=o.model.precision,
        out=o.output.out,
        cancel=o.output.cancel,
        seed_labels=o.seeds.seed_labels,
        seed_frame=o.seeds.seed_frame,
        find_cells=o.seeds.find_cells,
        find_options=o.seeds.find_options,
        roi=o.region.roi,
        labels_path=o.output.labels_path,
        allow_partial=o.movie.allow_partial,
        zoom=o.region.zoom,
        cell_diameter=o.region.cell_diameter,
        fit_masks=o.track.fits(False),
    )
    try:
        if not o.output.cancelled:
            total, frames = propagate_frames(
                session, o.track.direction, o.output.cancel, o.track.divisions
            )
            update, close = progress_callback(o.output.progress, total, "propagating")
            try:
                for done, _ in enumerate(frames, start=1):
                    update(done)
            finally:
                close()
        return Segmentation(session.labels(), dict(session.lineage))
    finally:
        session.frames.close()
