"""The many-cells part of the tracking controller (``controller.cells``): seeding objects from
a Labels layer, finding all cells on a frame automatically, and the cell presets.

Seeded and found objects are new objects with a mask prompt on one frame (like "Use my edit":
no mark in the clicks or boxes layer, the mask is the prompt). They never take the id or the
pixels of an existing object or of labels painted by hand: taken ids are renumbered to the next
free ids, and only background pixels of the frame are written.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_sam2.io.label_checks import check_labels
from napari_sam2.video.found_cells import new_cell_labels

from ._model import ModelControl
from ._objects import ObjectsControl
from ._propagation import PropagationControl
from ._sessions import SessionKeeper
from ._state import TrackingState
from .jobs import Job

#: clicks per decoder batch of "find cells" (a progress step, and where Cancel can stop)
_FIND_BATCH = 64

__all__ = ["DEFAULT_PRESET", "PRESETS", "ManyCellsControl"]

#: Cell presets: name -> description, memory-setting changes (fields any preset changes are
#: reset to their defaults by the others), follow_divisions, DivisionSettings fields and the
#: "find cells" grid (points per side).
PRESETS: dict[str, dict[str, Any]] = {
    "Generic": {
        "description": "Any objects: SAM 2's default memory, no division tracking.",
        "memory": {},
        "follow_divisions": False,
        "division": {},
        "points_per_side": 16,
    },
    "Nuclei (fluorescence)": {
        "description": (
            "Bright, compact nuclei that divide: one cell per pixel, holes filled, divisions "
            "followed (daughters separate quickly)."
        ),
        "memory": {"non_overlap": True, "fill_holes_area": 16},
        "follow_divisions": True,
        "division": {},
        "points_per_side": 24,
    },
    "Cells (phase contrast)": {
        "description": (
            "Touching cells with irregular outlines: one cell per pixel, divisions followed, "
            "daughters that still touch are cut at the narrow neck between them."
        ),
        "memory": {"non_overlap": True},
        "follow_divisions": True,
        "division": {"neck_ratio": 0.5},
        "points_per_side": 24,
    },
    "Bacteria": {
        "description": (
            "Small, densely packed rods that divide end to end: one cell per pixel, divisions "
            "followed and cut at the septum, a finer grid to find all cells."
        ),
        "memory": {"non_overlap": True},
        "follow_divisions": True,
        "division": {"neck_ratio": 0.5},
        "points_per_side": 32,
    },
}
DEFAULT_PRESET = "Generic"


class ManyCellsControl:
    """Many objects at once: cell presets, seeding from a Labels layer, finding all cells.

    Args:
        state: the controller's shared :class:`~napari_sam2._napari._state.TrackingState`.
        objects: the object list (new objects get free ids there).
        model: the memory settings a preset changes; queues loading the chosen model.
        sessions: gives the session the masks are prompted in.
        propagation: the division settings a preset changes.

    Attributes:
        preset: the name of the last preset applied (a key of :data:`PRESETS`).
        points_per_side: default grid of :meth:`find` (``points_per_side**2`` clicks).
    """

    def __init__(
        self,
        state: TrackingState,
        objects: ObjectsControl,
        model: ModelControl,
        sessions: SessionKeeper,
        propagation: PropagationControl,
    ) -> None:
        self._state = state
        self._objects = objects
        self._model = model
        self._sessions = sessions
        self._propagation = propagation
        self.preset = DEFAULT_PRESET
        self.points_per_side = int(PRESETS[DEFAULT_PRESET]["points_per_side"])
        p = PRESETS[DEFAULT_PRESET]
        propagation.use_divisions(p["follow_divisions"], p["division"])

    def set_preset(self, name: str) -> None:
        """Apply a cell preset of :data:`PRESETS` ("Generic", "Nuclei (fluorescence)",
        "Cells (phase contrast)", "Bacteria"): memory settings, the propagation's
        ``follow_divisions`` and ``division_settings``, and the :meth:`find` grid. Settings a
        preset leaves out are those of "Generic" (the defaults), so presets can be switched
        back and forth.

        Raises:
            ValueError: an unknown preset, or memory settings the loaded model cannot use.
        """
        if name not in PRESETS:
            raise ValueError(f"preset must be one of {list(PRESETS)}, got {name!r}")
        from napari_sam2.video.memory_bank import MemorySettings

        p = PRESETS[name]
        defaults = MemorySettings()
        changes = {k: getattr(defaults, k) for q in PRESETS.values() for k in q["memory"]}
        changes.update(p["memory"])
        self._model.update_settings(**changes)  # checked against the model; emits the change
        self.preset = name
        self._propagation.use_divisions(p["follow_divisions"], p["division"])
        self.points_per_side = int(p["points_per_side"])
        self._state.events.settings_changed.emit()
        self._state.report(f"preset: {name}")

    # ================================================================== seeding from labels
    def seed_layers(self) -> list:
        """The Labels layers objects can be seeded from (all but this plugin's own)."""
        from napari.layers import Labels

        return [
            ly
            for ly in self._state.viewer.layers
            if isinstance(ly, Labels) and not _same(ly, self._state.labels_layer)
        ]

    def seed_from_labels(self, layer=None, frame: int | None = None, *, wait: bool = False):
        """Make every label of a napari Labels layer an object, with its mask as the prompt.

        Each label value becomes the object id when that id is free (no object, no label on
        any frame, no lineage entry uses it); taken ids are renumbered to the next free ids.
        The masks, less the pixels that already belong to an object or to hand-painted labels
        (those are kept), are given to the model as mask prompts on ``frame`` (all objects at
        once on the frame's single encoding) and shown in the labels layer exactly; a label
        with no such pixel left is skipped. Propagate afterwards to track them.

        Args:
            layer: a napari Labels layer or its name: (Y, X), or (T, Y, X) with as many frames
                as the movie (or one). Default: the selected Labels layer, or the only one.
            frame: frame index t (default: the frame under the time slider); a (T, Y, X)
                layer's slice at that frame is used.
            wait: block (processing events) until done.

        Returns:
            With ``wait=True`` the mapping {label value: object id} of the objects made
            (ascending label values), else the job (its ``result`` is that mapping); ``{}`` at
            once when the layer has no labels on that frame.

        Raises:
            RuntimeError: no image layer, or no model loaded and none ready to load.
            ValueError: not a usable Labels layer (the message says why).
        """
        st = self._state
        info = st.need_image()
        layer = self._resolve_seed_layer(layer)
        t = st.current_frame() if frame is None else int(frame)
        if not 0 <= t < info.num_frames:
            raise ValueError(f"frame {t} is outside the movie (0..{info.num_frames - 1})")
        image = self._seed_image(layer, t)
        values = np.unique(image)
        values = values[values != 0]
        if values.size == 0:
            from napari.utils.notifications import show_info

            show_info(f"SAM 2: Labels layer '{layer.name}' has no labels on frame {t}")
            return {}
        self._model.ensure_queued()
        ids = self._objects.reserve([int(v) for v in values])
        mapping = dict(zip((int(v) for v in values), ids))
        new_ids = np.asarray(ids, dtype=np.uint32)
        relabelled = np.zeros(image.shape, np.uint32)
        nz = image != 0
        relabelled[nz] = new_ids[np.searchsorted(values, image[nz])]
        moved = sum(v != i for v, i in mapping.items())
        message = f"seeded {len(ids)} objects from '{layer.name}' on frame {t}"
        if moved:
            message += f" ({moved} taken ids renumbered)"
        job = self._seed_job(t, relabelled, ids, message, mapping=mapping)
        return st.finish(job, wait)

    def _resolve_seed_layer(self, layer):
        from napari.layers import Labels

        viewer = self._state.viewer
        if isinstance(layer, str):
            layer = viewer.layers[layer]
        if layer is None:
            active = viewer.layers.selection.active
            usable = self.seed_layers()
            if active in usable:
                layer = active
            elif len(usable) == 1:
                layer = usable[0]
            else:
                raise ValueError(
                    "choose the Labels layer to seed from"
                    + (f" (one of {[ly.name for ly in usable]})" if usable else ": there is none")
                )
        if not isinstance(layer, Labels):
            raise ValueError(f"'{layer.name}' is not a Labels layer")
        if _same(layer, self._state.labels_layer):
            raise ValueError(
                f"'{layer.name}' holds the tracked objects themselves: to give the model a "
                "painted object, select it and use 'Use my edit'"
            )
        return layer

    def _seed_image(self, layer, t: int) -> np.ndarray:
        """(H, W) integer labels of a Labels layer on frame t (checked against the movie)."""
        info = self._state.info
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        shape = tuple(data.shape)
        if len(shape) == 3:
            if shape[0] not in (1, info.num_frames):
                raise ValueError(
                    f"Labels layer '{layer.name}' has {shape[0]} frames, the movie "
                    f"{info.num_frames}"
                )
            data = data[0 if shape[0] == 1 else t]
        elif len(shape) != 2:
            raise ValueError(
                f"Labels layer '{layer.name}' must be 2-D (Y, X) or 3-D (T, Y, X), got shape "
                f"{shape}"
            )
        return check_labels(
            np.asarray(data),
            shape=info.frame_shape,
            name=f"Labels layer '{layer.name}'",
            shape_of="the movie's frames (H, W)",
            bool_ok=True,
        )

    def _seed_job(
        self,
        t: int,
        image: np.ndarray,
        ids: list[int],
        message: str,
        *,
        mapping: dict[int, int] | None = None,
    ) -> Job:
        """Queue giving the labels of ``image`` (H, W) uint32 (values: the new, already listed
        ``ids``) to the session as mask prompts on frame t.

        Only the pixels that are background when the job runs are used (prompt = what is
        shown, as with "Use my edit"); an object left without pixels is unlisted again. The
        job's result: the ids seeded, or ``mapping`` {label value: id} restricted to them.
        """

        st = self._state

        def work():
            s = self._sessions.ensure()
            lab = st.volume[t]
            img = np.where(lab == 0, image, 0).astype(np.uint32)
            kept = np.unique(img)
            kept = kept[kept != 0]
            if kept.size:
                s.add_labels(t, img)
                # the masks are the prompts: show them exactly (they lie on background pixels)
                lab[np.isin(lab, kept.astype(lab.dtype))] = 0
                put = img != 0
                lab[put] = img[put]
            kept = set(kept.tolist())
            if mapping is None:
                return [i for i in ids if i in kept]
            return {v: i for v, i in mapping.items() if i in kept}

        def done(result) -> None:
            kept = set(result.values() if isinstance(result, dict) else result)
            lost = [i for i in ids if i not in kept]
            if lost:
                self._objects.unlist(lost)
            st.refresh_labels(force=True)
            if kept:
                st.events.mask_shown.emit(t, min(kept))
            st.events.objects_changed.emit()
            text = message + (
                f"; {len(lost)} lay entirely on existing labels and were skipped" if lost else ""
            )
            st.report(text)
            renumbered = {v: i for v, i in (mapping or {}).items() if v != i and i in kept}
            if renumbered or lost:
                from napari.utils.notifications import show_info

                pairs = ", ".join(f"{v} -> {i}" for v, i in list(renumbered.items())[:10])
                more = ", ..." if len(renumbered) > 10 else ""
                show_info(
                    f"SAM 2: {text}" + (f"; label -> object: {pairs}{more}" if renumbered else "")
                )

        return st.submit(
            Job(
                f"seeding {len(ids)} objects on frame {t}",
                work,
                kind="prompt",
                on_result=done,
                on_error=lambda _exc: self._objects.unlist(ids),
            )
        )

    # ================================================================== finding cells
    def find(
        self,
        frame: int | None = None,
        *,
        points_per_side: int | None = None,
        min_area: int = 16,
        max_area: int | None = None,
        pred_iou_thresh: float | None = None,
        stability_thresh: float | None = None,
        wait: bool = False,
    ):
        """Find all cells on a frame without prompts and add them as new objects.

        Runs :meth:`VideoSession.find_objects <napari_sam2.video.session.VideoSession.find_objects>`
        (a grid of clicks, filtered and de-duplicated) in a job with progress (encode, one step
        per batch of 64 clicks, prepare) that *Cancel* stops between steps. Candidates lying
        mostly on pixels
        that already carry labels (existing objects, hand-painted labels) are dropped, the
        others keep only their background pixels, and each becomes a new object (next free
        ids) with its mask as the prompt on that frame. Remove the wrong ones
        (``controller.objects.remove``), then propagate (``controller.propagation.run``).

        Args:
            frame: frame index t (default: the frame under the time slider).
            points_per_side: grid side (default: :attr:`points_per_side`, set by the preset).
            min_area: smallest cell, in frame pixels.
            max_area: largest cell, in frame pixels (default: a quarter of the frame).
            pred_iou_thresh, stability_thresh: quality filters (default: the engine's).
            wait: block (processing events) until the objects are added.

        Returns:
            With ``wait=True`` the new object ids (empty when nothing was found or it was
            cancelled), else the search job.

        Raises:
            RuntimeError: no image layer, or no model loaded and none ready to load.
        """
        st = self._state
        info = st.need_image()
        t = st.current_frame() if frame is None else int(frame)
        if not 0 <= t < info.num_frames:
            raise ValueError(f"frame {t} is outside the movie (0..{info.num_frames - 1})")
        pps = self.points_per_side if points_per_side is None else int(points_per_side)
        if pps < 1:
            raise ValueError(f"points_per_side must be >= 1, got {pps}")
        self._model.ensure_queued()
        kwargs: dict[str, Any] = {"points_per_side": pps, "min_area": int(min_area)}
        if max_area is not None:
            kwargs["max_area"] = int(max_area)
        if pred_iou_thresh is not None:
            kwargs["pred_iou_thresh"] = float(pred_iou_thresh)
        if stability_thresh is not None:
            kwargs["stability_thresh"] = float(stability_thresh)
        kwargs["batch"] = _FIND_BATCH
        n_batches = -(-(pps * pps) // _FIND_BATCH)
        job = Job(f"finding cells on frame {t}", lambda: None, kind="other", total=n_batches + 2)
        state: dict[str, Any] = {"ids": []}

        def run():
            from ..video.seeding import find_objects_steps

            s = self._sessions.ensure()
            s.features(t)  # the slow part on a new frame: encode it (cached for the search)
            yield 1
            if job.cancel.is_set():
                return None
            search = find_objects_steps(s, t, **kwargs)
            try:
                while True:
                    done, _ = next(search)
                    yield 1 + done
                    if job.cancel.is_set():
                        return None
            except StopIteration as finished:
                masks, _ = finished.value
            finally:
                search.close()
            image = new_cell_labels(st.volume[t], masks, int(min_area))
            yield n_batches + 2
            return image

        def found(image) -> None:
            if image is None or job.cancel.is_set():
                st.report("finding cells cancelled")
                return
            k = int(image.max())
            if k == 0:
                from napari.utils.notifications import show_info

                show_info(
                    f"SAM 2: no new cells found on frame {t}; try more points per side or a "
                    "smaller minimum area"
                )
                st.report(f"no new cells found on frame {t}")
                return
            base = self._objects.next_free_id()
            ids = list(range(base, base + k))
            self._objects.list_new(ids)
            relabelled = np.where(image > 0, image + np.uint32(base - 1), 0).astype(np.uint32)
            state["ids"] = ids
            state["job"] = self._seed_job(
                t,
                relabelled,
                ids,
                f"found {k} cells on frame {t} (objects {ids[0]}..{ids[-1]}): remove the "
                "wrong ones, then propagate",
            )

        job.fn = run
        job.on_result = found
        st.submit(job)
        if not wait:
            return job
        st.finish(job, True)
        follow = state.get("job")
        if follow is not None:
            st.finish(follow, True)
        return list(state["ids"])


def _same(a, b) -> bool:
    """Whether two layers are the same (napari hands plugins proxies of its layers)."""
    return getattr(a, "__wrapped__", a) is getattr(b, "__wrapped__", b)
