"""Many cells at once, for :class:`~napari_sam2._napari.controller.TrackingController`: seeding
objects from a Labels layer, finding all cells on a frame automatically, cell presets and the
"follow divisions" switch.

Seeded and found objects are new objects with a mask prompt on one frame (like "Use my edit":
no mark in the clicks or boxes layer, the mask is the prompt). They never take the id or the
pixels of an existing object or of labels painted by hand: taken ids are renumbered to the next
free ids, and only background pixels of the frame are written.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .jobs import Job

#: clicks per decoder batch of "find cells" (a progress step, and where Cancel can stop)
_FIND_BATCH = 64

__all__ = ["DEFAULT_PRESET", "PRESETS", "ManyCellsMixin"]

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

#: A found cell that lies mostly (more than this fraction of its area) on labelled pixels is
#: an object that already exists: it is dropped.
_MAX_OVERLAP = 0.5


class ManyCellsMixin:
    """Many-cells methods of the tracking controller (see there for the attributes used)."""

    def _init_many_cells(self) -> None:
        self.preset = DEFAULT_PRESET
        #: propagate forward through :func:`~napari_sam2.video.lineage.propagate_with_divisions`
        self.follow_divisions = bool(PRESETS[DEFAULT_PRESET]["follow_divisions"])
        #: default grid of :meth:`find_cells` (``points_per_side**2`` clicks)
        self.points_per_side = int(PRESETS[DEFAULT_PRESET]["points_per_side"])
        self._division_settings = None  # created on first use (importing torch is slow)

    # ================================================================== presets & divisions
    @property
    def division_settings(self):
        """The :class:`~napari_sam2.video.lineage.DivisionSettings` used when
        :attr:`follow_divisions` is on (from the preset; fields may be changed in place)."""
        if self._division_settings is None:
            from napari_sam2.video.lineage import DivisionSettings

            self._division_settings = DivisionSettings(**PRESETS[self.preset]["division"])
        return self._division_settings

    @division_settings.setter
    def division_settings(self, value) -> None:
        value.validate()
        self._division_settings = value

    def set_follow_divisions(self, on: bool) -> None:
        """Follow cell divisions (and lost/found cells) in forward propagations (see
        :meth:`propagate`); used from the next propagation on."""
        self.follow_divisions = bool(on)
        self.settings_changed.emit()
        self._emit_status("following divisions" if on else "not following divisions")

    def set_preset(self, name: str) -> None:
        """Apply a cell preset of :data:`PRESETS` ("Generic", "Nuclei (fluorescence)",
        "Cells (phase contrast)", "Bacteria"): memory settings, :attr:`follow_divisions`,
        :attr:`division_settings` and the :meth:`find_cells` grid. Settings a preset leaves
        out are those of "Generic" (the defaults), so presets can be switched back and forth.
        """
        if name not in PRESETS:
            raise ValueError(f"preset must be one of {list(PRESETS)}, got {name!r}")
        from napari_sam2.video.memory_bank import MemorySettings

        p = PRESETS[name]
        defaults = MemorySettings()
        changes = {k: getattr(defaults, k) for q in PRESETS.values() for k in q["memory"]}
        changes.update(p["memory"])
        new = self.settings.replace(**changes)
        if self.model is not None:
            new.validate(self.model.config.num_maskmem, self.model.config.max_obj_ptrs_in_encoder)
        self.settings = new
        self.preset = name
        self._division_settings = None
        self.follow_divisions = bool(p["follow_divisions"])
        self.points_per_side = int(p["points_per_side"])
        self.settings_changed.emit()
        self._emit_status(f"preset: {name}")

    # ================================================================== seeding from labels
    def seed_layers(self) -> list:
        """The Labels layers objects can be seeded from (all but this plugin's own)."""
        from napari.layers import Labels

        return [
            ly
            for ly in self.viewer.layers
            if isinstance(ly, Labels) and not _same(ly, self.labels_layer)
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
        info = self._need_image()
        layer = self._resolve_seed_layer(layer)
        t = self.current_frame() if frame is None else int(frame)
        if not 0 <= t < info.num_frames:
            raise ValueError(f"frame {t} is outside the movie (0..{info.num_frames - 1})")
        image = self._seed_image(layer, t)
        values = np.unique(image)
        values = values[values != 0]
        if values.size == 0:
            from napari.utils.notifications import show_info

            show_info(f"SAM 2: Labels layer '{layer.name}' has no labels on frame {t}")
            return {}
        self._ensure_model_queued()
        ids = self._reserve_ids([int(v) for v in values])
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
        return self._maybe_wait(job, wait)

    def _resolve_seed_layer(self, layer):
        from napari.layers import Labels

        if isinstance(layer, str):
            layer = self.viewer.layers[layer]
        if layer is None:
            active = self.viewer.layers.selection.active
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
        if _same(layer, self.labels_layer):
            raise ValueError(
                f"'{layer.name}' holds the tracked objects themselves: to give the model a "
                "painted object, select it and use 'Use my edit'"
            )
        return layer

    def _seed_image(self, layer, t: int) -> np.ndarray:
        """(H, W) integer labels of a Labels layer on frame t (checked against the movie)."""
        info = self.info
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
        img = np.asarray(data)
        if img.shape != tuple(info.frame_shape):
            h, w = info.frame_shape
            raise ValueError(
                f"Labels layer '{layer.name}' is {img.shape[0]} x {img.shape[1]} pixels, the "
                f"movie's frames {h} x {w}"
            )
        if img.dtype == bool:
            img = img.astype(np.uint8)
        if img.dtype.kind not in "iu":
            raise ValueError(f"Labels layer '{layer.name}' must hold integer labels")
        if img.dtype.kind == "i" and img.size and img.min() < 0:
            raise ValueError(f"Labels layer '{layer.name}' has negative labels")
        return img

    def _used_ids(self) -> set[int]:
        """Ids in use: objects, labels on any frame (hand-painted too), session objects and
        lineage entries."""
        used = set(self.objects)
        vol = self.volume
        if vol is not None and vol.size:
            if vol.dtype.itemsize <= 2:  # per frame, so no volume-sized temporary
                seen = np.zeros(1 << (8 * vol.dtype.itemsize), bool)
                for t in range(vol.shape[0]):
                    counts = np.bincount(vol[t].ravel())
                    seen[: counts.size] |= counts > 0
                used.update(np.flatnonzero(seen).tolist())
            else:
                for t in range(vol.shape[0]):
                    used.update(np.unique(vol[t]).tolist())
        s = self.session
        if s is not None:
            lineage = dict(s.lineage)
            used.update(s.obj_ids, lineage, lineage.values())
        used.discard(0)
        return used

    def _reserve_ids(self, wanted: list[int]) -> list[int]:
        """New object ids for ``wanted`` label values (ascending): a value is kept when free,
        else it gets the next free id. The ids are listed as objects at once (so a click or
        "Add" meanwhile cannot take them); the first is selected."""
        used = self._used_ids()
        limit = np.iinfo(np.uint32).max
        keep = [v for v in wanted if v not in used and v <= limit]
        top = max([*used, *keep], default=0)
        ids = []
        for v in wanted:
            if v in keep:
                ids.append(v)
            else:
                top += 1
                ids.append(top)
        if max(ids) > limit:
            raise ValueError("no free object ids left below 4294967296")
        self._list_new_objects(ids)
        return ids

    def _list_new_objects(self, ids: list[int]) -> None:
        if max(ids) > np.iinfo(self.volume.dtype).max:
            self._widen_volume()
        self.objects = sorted(set(self.objects).union(ids))
        self.select_object(ids[0])

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

        def work():
            s = self._ensure_session()
            lab = self.volume[t]
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
                self._unlist(lost)
            self._refresh_labels(force=True)
            if kept:
                self.mask_shown.emit(t, min(kept))
            self.objects_changed.emit()
            text = message + (
                f"; {len(lost)} lay entirely on existing labels and were skipped" if lost else ""
            )
            self._emit_status(text)
            renumbered = {v: i for v, i in (mapping or {}).items() if v != i and i in kept}
            if renumbered or lost:
                from napari.utils.notifications import show_info

                pairs = ", ".join(f"{v} -> {i}" for v, i in list(renumbered.items())[:10])
                more = ", ..." if len(renumbered) > 10 else ""
                show_info(
                    f"SAM 2: {text}" + (f"; label -> object: {pairs}{more}" if renumbered else "")
                )

        return self._submit(
            Job(
                f"seeding {len(ids)} objects on frame {t}",
                work,
                kind="prompt",
                on_result=done,
                on_error=lambda _exc: self._unlist(ids),
            )
        )

    def _unlist(self, ids: list[int]) -> None:
        gone = set(ids)
        self.objects = [i for i in self.objects if i not in gone]
        if self.current_id not in self.objects:
            self.current_id = self.objects[0] if self.objects else None
        self.objects_changed.emit()

    # ================================================================== finding cells
    def find_cells(
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
        (:meth:`remove_object`), then :meth:`propagate`.

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
        info = self._need_image()
        t = self.current_frame() if frame is None else int(frame)
        if not 0 <= t < info.num_frames:
            raise ValueError(f"frame {t} is outside the movie (0..{info.num_frames - 1})")
        pps = self.points_per_side if points_per_side is None else int(points_per_side)
        if pps < 1:
            raise ValueError(f"points_per_side must be >= 1, got {pps}")
        self._ensure_model_queued()
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

            s = self._ensure_session()
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
            image = _new_cells(self.volume[t], masks, int(min_area))
            yield n_batches + 2
            return image

        def found(image) -> None:
            if image is None or job.cancel.is_set():
                self._emit_status("finding cells cancelled")
                return
            k = int(image.max())
            if k == 0:
                from napari.utils.notifications import show_info

                show_info(
                    f"SAM 2: no new cells found on frame {t}; try more points per side or a "
                    "smaller minimum area"
                )
                self._emit_status(f"no new cells found on frame {t}")
                return
            base = self.next_free_id()
            ids = list(range(base, base + k))
            self._list_new_objects(ids)
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
        self._submit(job)
        if not wait:
            return job
        self.jobs.wait(job=job)
        if job.error is not None:
            raise job.error
        follow = state.get("job")
        if follow is not None:
            self.jobs.wait(job=follow)
            if follow.error is not None:
                raise follow.error
        return list(state["ids"])


def _same(a, b) -> bool:
    """Whether two layers are the same (napari hands plugins proxies of its layers)."""
    return getattr(a, "__wrapped__", a) is getattr(b, "__wrapped__", b)


def _new_cells(lab: np.ndarray, masks: list[np.ndarray], min_area: int) -> np.ndarray:
    """Provisional (H, W) uint32 labels 1..K of the candidate masks (best first) that are new:
    a candidate lying mostly on labelled pixels of ``lab`` (H, W) is dropped, the others keep
    the pixels that are background and not taken by a better candidate, if at least
    ``min_area`` of them."""
    labelled = lab != 0
    taken = labelled.copy()
    out = np.zeros(lab.shape, np.uint32)
    k = 0
    for m in masks:
        area = np.count_nonzero(m)
        if area == 0 or np.count_nonzero(m & labelled) > _MAX_OVERLAP * area:
            continue
        own = m & ~taken
        if np.count_nonzero(own) < min_area:
            continue
        k += 1
        out[own] = k
        taken |= own
    return out
