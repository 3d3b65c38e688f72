"""3-D and 3-D + time in napari: the logic behind the "SAM 2 3-D" dock widget, usable without it.

:class:`VolumeController` takes a 3-D (Z, Y, X) or 4-D (T, Z, Y, X) Image layer, works out which
axis is z and which is time (from the layer's axis labels; otherwise :func:`guess_axes`
proposes an order and the widget asks), adds a Labels layer of the image's shape and a Points
layer for clicks, and runs the engine:

* z-stack: a click segments the cell on the current slice; "through z" propagates it up and
  down (:func:`~napari_sam2.video.volumes.propagate_along_z`);
* 3-D + time: a click segments the cell on the current slice of the current timepoint;
  "through z" fills it along z there, "through time" follows it on its slice through time,
  "both" follows the 3-D cell through time
  (:class:`~napari_sam2.video.volume_time.VolumeTimeSession`), following divisions when
  :attr:`VolumeController.follow_divisions` is on (the default for 3-D + time,
  :func:`~napari_sam2.video.volume_divisions.divisions_by_default`): a cell that divides ends,
  its two halves go on as daughters with new ids (listed in :attr:`VolumeController.object_ids`,
  linked in :meth:`VolumeController.lineage`, written by :meth:`VolumeController.export_ctc`
  and shown by :meth:`VolumeController.tracks_layer`).

Model work runs in a napari ``thread_worker`` (``wait=False``) or in the caller's thread
(``wait=True``, scripts and tests). The Labels layer's data IS the engine's label volume.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MODES", "VolumeController", "guess_axes"]

MODES = ("through z", "through time", "both")
_TIME = {"t", "time", "frame", "frames"}
_Z = {"z", "depth", "slice", "slices", "plane"}


def _labels_of(layer) -> tuple[str, ...] | None:
    labels = getattr(layer, "axis_labels", None)
    if not labels:
        return None
    low = tuple(str(a).strip().lower() for a in labels)
    return None if all(a.lstrip("-").isdigit() or a.startswith("axis") for a in low) else low


def guess_axes(layer) -> tuple[str, bool]:
    """The axes of a 3-D / 4-D Image layer and whether the layer itself says so.

    Returns:
        (axes, certain): e.g. ``("TZYX", True)`` from axis labels ``("t", "z", "y", "x")``;
        ``("ZYX", False)`` / ``("TZYX", False)`` guessed from the number of dimensions when the
        labels are napari's defaults (the widget then asks).

    Raises:
        ValueError: not 3-D or 4-D, or labels naming neither z nor time.
    """
    nd = layer.ndim
    if nd not in (3, 4) or getattr(layer, "rgb", False):
        raise ValueError(
            f"'{layer.name}' is {nd}-D: the 3-D widget takes (Z, Y, X) or (T, Z, Y, X) grey "
            "layers (use the SAM 2 tracking widget for (T, Y, X) movies)"
        )
    labels = _labels_of(layer)
    if labels is not None:
        axes = "".join("T" if a in _TIME else "Z" if a in _Z else "?" for a in labels[:-2])
        if "Z" in axes and "?" not in axes and len(set(axes)) == len(axes):
            return axes + "YX", True
    return ("ZYX" if nd == 3 else "TZYX"), False


class VolumeController:
    """Click-to-segment z-stacks and 3-D cells through time in a napari viewer.

    Args:
        viewer: the napari viewer.
        model: a loaded SAM2Model (settable later with :attr:`model`).

    Attributes:
        follow_divisions: "both" follows divisions (3-D + time only; set with
            :meth:`set_follow_divisions`, reset to the axes' default by :meth:`set_image_layer`).
        obj_id: the object clicks go to.
    """

    def __init__(self, viewer, model=None) -> None:
        self.viewer = viewer
        self.model = model
        self.image = None
        self.axes: str | None = None
        self.labels_layer = None
        self.points_layer = None
        self.session = None  # VideoSession (z-stack) or VolumeTimeSession
        self.starts: dict[int, int] = {}  # z-stack: object -> prompted slice
        self.obj_id = 1
        self.follow_divisions = False
        self.status = ""
        self._worker = None
        self._before: set[int] = set()  # the objects before a propagation

    # ------------------------------------------------------------------ layers
    def set_image_layer(
        self, layer, axes: str | None = None, *, divisions: bool | None = None
    ) -> str:
        """Use ``layer``: ``axes`` (e.g. ``"ZYX"``, ``"TZYX"``, ``"ZTYX"``) or the layer's own.

        Args:
            layer: a (Z, Y, X) or 4-D (T and Z) Image layer.
            axes: one letter per dimension; None: from the layer's axis labels.
            divisions: follow divisions (:attr:`follow_divisions`); None: the default of the
                axes (on for 3-D + time, off for z-stacks).

        Returns:
            The axes used.

        Raises:
            ValueError: the layer does not say which axis is z / time and ``axes`` is None (the
                message asks for them), the axes do not fit the layer, or ``divisions=True`` on
                a z-stack.
        """
        guess, certain = guess_axes(layer)
        if axes is None and not certain:
            which = "z and which is time" if layer.ndim == 4 else "z"
            raise ValueError(
                f"'{layer.name}' does not say which axis is {which}: choose them (a guess: {guess})"
            )
        axes = (axes or guess).upper()
        if len(axes) != layer.ndim or not axes.endswith("YX") or "Z" not in axes:
            raise ValueError(f"axes {axes!r} do not fit the {layer.ndim}-D layer '{layer.name}'")
        from ..video.volume_divisions import divisions_by_default

        follow = divisions_by_default(axes) if divisions is None else bool(divisions)
        _check_divisions(follow, axes)
        if self.model is None:
            raise ValueError("load a model first")
        from napari.layers import Labels, Points

        from ..video.session import VideoSession
        from ..video.volume_time import VolumeTimeSession
        from ..video.volumes import z_settings

        self.close_session()
        self.image, self.axes = layer, axes
        data = np.asarray(layer.data)
        shape = tuple(int(n) for n in data.shape)
        labels = np.zeros(shape, np.uint16)
        common = dict(scale=layer.scale, translate=layer.translate)
        self.labels_layer = self.viewer.add_layer(
            Labels(labels, name=f"{layer.name} 3-D labels", **common)
        )
        self.points_layer = self.viewer.add_layer(
            Points(
                np.zeros((0, layer.ndim)),
                ndim=layer.ndim,
                name=f"{layer.name} 3-D clicks",
                size=max(3, shape[-1] // 40),
                face_color="lime",
                **common,
            )
        )
        self.points_layer.mode = "add"
        self.points_layer.events.data.connect(self._on_points)
        if "T" in axes:
            self.session = VolumeTimeSession(
                self.model, data, axes=axes, out=self._view(labels), divisions=follow
            )
        else:
            self.session = VideoSession(
                self.model,
                data,
                axes=axes,
                settings=z_settings(None, shape[axes.index("Z")]),
                fit_masks=False,
            )
            self.session.set_label_volume(self._view(labels))
        self.follow_divisions = follow
        self.viewer.layers.selection.active = self.points_layer
        self.status = f"{layer.name}: axes {axes}; click a cell on the current slice"
        return axes

    def set_follow_divisions(self, on: bool) -> None:
        """Follow divisions in the next "both" propagations (3-D + time only).

        Raises:
            ValueError: a propagation runs, or ``on`` for a z-stack or before a layer is used.
        """
        if self.busy:
            raise ValueError("a propagation is running: wait for it to finish")
        _check_divisions(bool(on), self.axes)
        self.follow_divisions = bool(on)
        if self.session is not None and "T" in self.axes:
            self.session.divisions = self.follow_divisions

    def _view(self, labels: np.ndarray) -> np.ndarray:
        """The label array in engine order ((Z, Y, X) or (T, Z, Y, X)) sharing ``labels``."""
        order = [self.axes.index(a) for a in ("T", "Z", "Y", "X") if a in self.axes]
        return labels.transpose(order)

    def _where(self, coords) -> tuple[int | None, int, float, float]:
        """Layer data coordinates -> (t or None, z, y, x)."""
        c = np.asarray(coords, float)
        get = {a: c[i] for i, a in enumerate(self.axes)}
        t = int(round(get["T"])) if "T" in get else None
        return t, int(round(get["Z"])), float(get["Y"]), float(get["X"])

    # ------------------------------------------------------------------ prompts
    def _on_points(self, event) -> None:
        if not str(getattr(event, "action", "added")).endswith("added"):
            return
        for i in getattr(event, "data_indices", ()) or ():
            self.add_point(self.points_layer.data[int(i)], record=False)

    def add_point(self, coords, positive: bool = True, *, record: bool = True) -> np.ndarray:
        """A click at layer data coordinates ``coords`` (ndim,) for the current object; segments
        it on that slice (and, for 3-D + time, keeps it for "through time").

        Returns:
            (Y, X) bool mask of the object on the clicked slice.
        """
        if self.session is None:
            raise ValueError("choose a 3-D image layer first")
        if record:
            with self.points_layer.events.data.blocker():
                self.points_layer.add(np.asarray(coords, float)[None])
        t, z, y, x = self._where(coords)
        obj, label = self.obj_id, [1 if positive else 0]
        if t is None:
            mask = self.session.add_points(z, obj, [(y, x)], label)
            self.starts[obj] = z
        else:
            mask = self.session.add_points(t, z, obj, [(y, x)], label, fill_z=False)[z]
        self.labels_layer.refresh()
        self.status = f"object {obj}: {int(mask.sum())} px on slice {z}"
        return mask

    def new_object(self) -> int:
        """Start the next object: one above every id in use (labels, objects, lineage)."""
        lineage = self.lineage(checked=False)
        used = [self.obj_id, *self.object_ids, *lineage, *lineage.values()]
        used.append(int(self.labels_layer.data.max()))
        self.obj_id = max(used) + 1
        return self.obj_id

    def select(self, obj_id: int) -> None:
        """Send the next clicks to object ``obj_id`` (e.g. a daughter, to correct her).

        Raises:
            ValueError: ``obj_id`` is below 1.
        """
        if int(obj_id) < 1:
            raise ValueError(f"object ids start at 1 (0 is background), got {obj_id}")
        self.obj_id = int(obj_id)

    @property
    def object_ids(self) -> list[int]:
        """The objects of the session, ascending: those clicked and the daughters found while
        following divisions (a mother stays listed: her labels before the division remain)."""
        return [] if self.session is None else [int(i) for i in self.session.obj_ids]

    def lineage(self, *, checked: bool = True) -> dict[int, int]:
        """{daughter: mother} of the divisions found.

        Args:
            checked: keep only the entries the labels still support
                (:func:`~napari_sam2._napari._exports.supported_lineage`, reads every
                timepoint); False: the session's record as it is.
        """
        from ._exports import supported_lineage

        found = dict(getattr(self.session, "lineage", None) or {})
        if not checked or not found or self.labels_layer is None:
            return found
        return supported_lineage(found, self._view(self.labels_layer.data))

    # ------------------------------------------------------------------ propagation
    def run(self, mode: str = "both", *, wait: bool = False):
        """Propagate: ``"through z"``, ``"through time"`` or ``"both"`` (see the module doc).

        Returns:
            The napari worker (``wait=False``) or None once done (``wait=True``).
        """
        if self.busy:
            raise ValueError("a propagation is running: wait for it to finish")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if self.session is None:
            raise ValueError("choose a 3-D image layer and click a cell first")
        if "T" not in self.axes and mode != "through z":
            raise ValueError("a z-stack has no time axis: use 'through z'")
        self._before = set(self.object_ids)
        steps = self._steps(mode)
        if wait:
            for _ in steps:
                pass
            self._done(mode)
            return None
        from napari.qt.threading import create_worker

        self._worker = create_worker(lambda: (yield from steps))
        self._worker.yielded.connect(lambda _: self.labels_layer.refresh())
        self._worker.finished.connect(lambda: self._done(mode))
        self._worker.start()
        return self._worker

    def _steps(self, mode: str):
        from ..video.volumes import propagate_along_z

        if "T" not in self.axes:
            yield from propagate_along_z(self.session, dict(self.starts))
        elif mode == "through z":
            t = self._current_t()
            yield self.session.fill_z(t)
        else:
            yield from self.session.propagate("both", fill_z=mode == "both")

    def _current_t(self) -> int:
        dims = self.viewer.dims
        offset = dims.ndim - self.image.ndim
        return int(round(dims.current_step[offset + self.axes.index("T")]))

    @property
    def busy(self) -> bool:
        """A propagation runs in a worker thread."""
        return self._worker is not None

    def _done(self, mode: str) -> None:
        self._worker = None
        self.labels_layer.refresh()
        born = sorted(set(self.object_ids) - self._before)
        if self.obj_id in born:  # a daughter took the id the next clicks were to go to
            self.new_object()
        n = len(np.unique(self.labels_layer.data)) - 1
        found = f", daughters {born}" if born else ""
        self.status = f"{mode}: done ({n} object(s){found})"

    def close_session(self) -> None:
        closer = getattr(self.session, "close", None)
        if closer is not None:
            closer()
        self.session = None
        self.starts.clear()
        self.obj_id = 1

    def export(self, path: str, voxel_size: Any = None):
        """Save the labels as an ImageJ hyperstack TIFF (T, Z, Y, X order; voxel size kept)."""
        from ..io.volumes import save_labels_hyperstack

        return save_labels_hyperstack(
            path, self._view(self.labels_layer.data), voxel_size=voxel_size
        )

    def _time_labels(self, what: str) -> np.ndarray:
        """The (T, Z, Y, X) labels for ``what`` (an export that needs time)."""
        if self.labels_layer is None:
            raise ValueError("choose a 3-D image layer and propagate first")
        if "T" not in self.axes:
            raise ValueError(f"{what} needs a time axis: save a z-stack's labels as a TIFF")
        if self.busy:
            raise ValueError("a propagation is running: wait for it to finish")
        return self._view(self.labels_layer.data)

    def export_ctc(self, folder: str):
        """Write a Cell Tracking Challenge result folder (mask###.tif of (Z, Y, X) labels +
        res_track.txt), the divisions found as parent links (:meth:`lineage`).

        Returns:
            The folder (a ``Path``).
        """
        from ..io.ctc import save_ctc

        return save_ctc(folder, self._time_labels("a CTC folder"), lineage=self.lineage())

    def tracks_layer(self):
        """Add (or replace) a napari Tracks layer of the objects' 3-D centroids through time;
        daughters are linked to their mother in its graph.

        Returns:
            The Tracks layer, or None when there are no labels yet.

        Raises:
            ValueError: a z-stack, or time not the first axis (napari's Tracks layer has time
                first).
        """
        from ..io.tracks import tracks_from_labels

        labels = self._time_labels("a Tracks layer")
        if self.axes[0] != "T":
            raise ValueError(
                f"napari's Tracks layer puts time first; the layer's axes are {self.axes} "
                "(the CTC export works with them)"
            )
        data, graph = tracks_from_labels(labels, lineage=self.lineage())
        if len(data) == 0:
            return None
        name = f"{self.image.name} 3-D tracks"
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        return self.viewer.add_tracks(
            data, graph=graph, name=name, scale=self.image.scale, translate=self.image.translate
        )


def _check_divisions(on: bool, axes: str | None) -> None:
    """Divisions need time: refuse ``on`` for a z-stack (or with no layer in use)."""
    if on and (axes is None or "T" not in axes):
        raise ValueError(
            "following divisions needs a time axis: use a 3-D + time (T, Z, Y, X) layer"
        )
