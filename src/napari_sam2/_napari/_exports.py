"""Exports of :class:`~napari_sam2._napari.controller.TrackingController`: label TIFF, Cell
Tracking Challenge folder, measurements CSV and a napari Tracks layer. Each runs as a job, so it
never reads the label volume while the model writes it. The CTC folder and the Tracks layer
include the divisions found while following divisions (``session.lineage``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .jobs import Job

__all__ = ["ExportsMixin"]


class ExportsMixin:
    """Export methods of the tracking controller."""

    # ================================================================== export
    def export_labels(self, path: str | os.PathLike, *, wait: bool = True):
        """Write the label movie (T, Y, X) as an ImageJ-compatible label TIFF."""
        from napari_sam2.io.tiff import save_labels_tiff

        self._need_image()
        px = self._pixel_size()
        job = self._submit(
            Job(
                f"exporting labels to {Path(path).name}",
                lambda: save_labels_tiff(path, self.volume, pixel_size=px),
                kind="export",
                total=0,
            )
        )
        return self._maybe_wait(job, wait)

    def export_ctc(self, folder: str | os.PathLike, *, wait: bool = True):
        """Write a Cell Tracking Challenge result folder (mask###.tif + res_track.txt), with
        the divisions found while following divisions as parent links."""
        from napari_sam2.io.ctc import save_ctc

        self._need_image()
        job = self._submit(
            Job(
                f"exporting CTC results to {Path(folder).name}",
                lambda: save_ctc(folder, self.volume, lineage=self._lineage()),
                kind="export",
                total=0,
            )
        )
        return self._maybe_wait(job, wait)

    def export_measurements(self, path: str | os.PathLike, *, wait: bool = True):
        """Write per-frame, per-object measurements (area, centroid, intensities, score) as
        CSV."""
        from napari_sam2.io.measurements import measure, save_measurements_csv

        info = self._need_image()
        axis = 1 if info.axes == "TCYX" else None
        scores = dict(self.scores)

        def work():
            table = measure(self.volume, info.data, scores=scores, channel_axis=axis)
            return save_measurements_csv(path, table)

        job = self._submit(
            Job(f"measuring objects into {Path(path).name}", work, kind="export", total=0)
        )
        return self._maybe_wait(job, wait)

    def add_tracks_layer(self, *, wait: bool = True):
        """Add a napari Tracks layer of the objects' centroids over time (divisions, when
        followed, link daughters to their mother in the layer's graph)."""
        from napari_sam2.io.tracks import tracks_from_labels

        info = self._need_image()

        def done(result):
            data, graph = result
            if info.layer_axes == "TCYX" and len(data):
                data = np.insert(data, 2, self._current_channel_coord(), axis=1)
            if len(data) == 0:
                from napari.utils.notifications import show_info

                show_info("SAM 2: no labels yet, so no tracks")
                return
            name = f"{info.layer.name} [SAM2 tracks]"
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            self.viewer.add_tracks(
                data, graph=graph, name=name, scale=info.layer.scale, translate=info.layer.translate
            )

        job = self._submit(
            Job(
                "building tracks",
                lambda: tracks_from_labels(self.volume, lineage=self._lineage()),
                kind="export",
                total=0,
                on_result=done,
            )
        )
        if wait:
            self.wait()
            return (
                self.viewer.layers[f"{info.layer.name} [SAM2 tracks]"]
                if (f"{info.layer.name} [SAM2 tracks]" in self.viewer.layers)
                else None
            )
        return job

    def _lineage(self) -> dict[int, int]:
        """{daughter: mother} of the session (worker side), without the entries the labels no
        longer support: an object without labels, or a mother not labelled before her
        daughter's first frame (objects removed or repainted since)."""
        s = self.session
        lineage = {} if s is None else dict(s.lineage)
        if not lineage:
            return {}
        vol = self.volume
        wanted = np.asarray(sorted({*lineage, *lineage.values()}), dtype=np.int64)
        first: dict[int, int] = {}
        for t in range(vol.shape[0]):
            frame = vol[t]
            present = np.unique(frame[np.isin(frame, wanted)])
            for i in present.tolist():
                first.setdefault(int(i), t)
        return {
            d: m for d, m in lineage.items() if d in first and m in first and first[m] < first[d]
        }

    def _pixel_size(self) -> tuple[float, float] | None:
        """(y, x) pixel size in micrometres when the image layer's scale has length units."""
        info = self.info
        yi, xi = info.spatial_axes
        scale = info.layer.scale
        try:
            units = info.layer.units
            um = [float((1 * units[a]).to("micrometer").magnitude) for a in (yi, xi)]
        except Exception:  # noqa: BLE001 - pixel units or no pint: no physical size
            return None
        return (float(scale[yi]) * um[0], float(scale[xi]) * um[1])
