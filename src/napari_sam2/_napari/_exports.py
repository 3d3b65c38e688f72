"""The exports part of the tracking controller (``controller.exports``): label TIFF, Cell
Tracking Challenge folder, measurements CSV and a napari Tracks layer. Each runs as a job, so it
never reads the label volume while the model writes it. The CTC folder and the Tracks layer
include the divisions found while following divisions (``session.lineage``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._state import TrackingState
from .jobs import Job

__all__ = ["ExportsControl", "supported_lineage"]


class ExportsControl:
    """Writes the label volume to files, or shows its tracks, each in a job.

    Args:
        state: the controller's shared :class:`~napari_sam2._napari._state.TrackingState`.
    """

    def __init__(self, state: TrackingState) -> None:
        self._state = state

    def labels(self, path: str | os.PathLike, *, wait: bool = True) -> Any:
        """Write the label movie (T, Y, X) as an ImageJ-compatible label TIFF (pixel size in
        micrometres when the image layer's scale has length units).

        Returns:
            With ``wait=True`` the job's result once written, else the job.
        """
        from napari_sam2.io.tiff import save_labels_tiff

        st = self._state
        st.need_image()
        px = self._pixel_size()
        job = st.submit(
            Job(
                f"exporting labels to {Path(path).name}",
                lambda: save_labels_tiff(path, st.volume, pixel_size=px),
                kind="export",
                total=0,
            )
        )
        return st.finish(job, wait)

    def ctc(self, folder: str | os.PathLike, *, wait: bool = True) -> Any:
        """Write a Cell Tracking Challenge result folder (mask###.tif + res_track.txt), with
        the divisions found while following divisions as parent links."""
        from napari_sam2.io.ctc import save_ctc

        st = self._state
        st.need_image()
        job = st.submit(
            Job(
                f"exporting CTC results to {Path(folder).name}",
                lambda: save_ctc(folder, st.volume, lineage=self._lineage()),
                kind="export",
                total=0,
            )
        )
        return st.finish(job, wait)

    def measurements(self, path: str | os.PathLike, *, wait: bool = True) -> Any:
        """Write per-frame, per-object measurements (area, centroid, intensities, score) as
        CSV."""
        from napari_sam2.io.measurements import measure, save_measurements_csv

        st = self._state
        info = st.need_image()
        axis = 1 if info.axes == "TCYX" else None
        scores = dict(st.scores)

        def work():
            table = measure(st.volume, info.data, scores=scores, channel_axis=axis)
            return save_measurements_csv(path, table)

        job = st.submit(
            Job(f"measuring objects into {Path(path).name}", work, kind="export", total=0)
        )
        return st.finish(job, wait)

    def tracks_layer(self, *, wait: bool = True) -> Any:
        """Add a napari Tracks layer of the objects' centroids over time (divisions, when
        followed, link daughters to their mother in the layer's graph).

        Returns:
            With ``wait=True`` the Tracks layer (None when there are no labels yet), else the
            job.
        """
        from napari_sam2.io.tracks import tracks_from_labels

        st = self._state
        info = st.need_image()
        name = f"{info.layer.name} [SAM2 tracks]"
        layers = st.viewer.layers

        def done(result):
            data, graph = result
            if info.layer_axes == "TCYX" and len(data):
                data = np.insert(data, 2, st.current_channel_coord(), axis=1)
            if len(data) == 0:
                from napari.utils.notifications import show_info

                show_info("SAM 2: no labels yet, so no tracks")
                return
            if name in layers:
                layers.remove(name)
            st.viewer.add_tracks(
                data, graph=graph, name=name, scale=info.layer.scale, translate=info.layer.translate
            )

        job = st.submit(
            Job(
                "building tracks",
                lambda: tracks_from_labels(st.volume, lineage=self._lineage()),
                kind="export",
                total=0,
                on_result=done,
            )
        )
        if wait:
            st.jobs.wait()
            return layers[name] if name in layers else None
        return job

    def _lineage(self) -> dict[int, int]:
        """{daughter: mother} of the session (worker side) that the labels still support
        (:func:`supported_lineage`)."""
        s = self._state.session
        return supported_lineage({} if s is None else s.lineage, self._state.volume)

    def _pixel_size(self) -> tuple[float, float] | None:
        """(y, x) pixel size in micrometres when the image layer's scale has length units."""
        info = self._state.info
        yi, xi = info.spatial_axes
        scale = info.layer.scale
        try:
            units = info.layer.units
            um = [float((1 * units[a]).to("micrometer").magnitude) for a in (yi, xi)]
        except Exception:  # noqa: BLE001 - pixel units or no pint: no physical size
            return None
        return (float(scale[yi]) * um[0], float(scale[xi]) * um[1])


def supported_lineage(lineage: dict[int, int], volume: np.ndarray) -> dict[int, int]:
    """The entries of ``lineage`` {daughter: mother} that the labels still support: both
    labelled, the mother on a frame before her daughter's first (objects removed or repainted
    since a division drop out). Used by the tracking and the 3-D widgets' exports.

    Args:
        lineage: {daughter id: mother id}, e.g. a session's ``lineage``.
        volume: (T, Y, X) or (T, Z, Y, X) integer labels, read one timepoint at a time.
    """
    lineage = dict(lineage)
    if not lineage:
        return {}
    wanted = np.asarray(sorted({*lineage, *lineage.values()}), dtype=np.int64)
    first: dict[int, int] = {}
    for t in range(volume.shape[0]):
        frame = volume[t]
        present = np.unique(frame[np.isin(frame, wanted)])
        for i in present.tolist():
            first.setdefault(int(i), t)
    return {d: m for d, m in lineage.items() if d in first and m in first and first[m] < first[d]}
