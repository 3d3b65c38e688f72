"""The objects (cells) being tracked: their ids, the selected one, and the free ids.

An object id is the label value of the object in the Labels layer. :class:`ObjectsControl` is
owned by the controller (``controller.objects``); the prompts, the propagation and the many-cells
parts receive it to add, select and list objects.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from psygnal import Signal

from ._state import TrackingState
from .layers import label_volume_for, rgba

__all__ = ["ObjectsControl"]

_MAX_ID = int(np.iinfo(np.uint32).max)


class ObjectsControl:
    """The list of objects and the selected one.

    Args:
        state: the controller's shared :class:`~napari_sam2._napari._state.TrackingState`.

    Attributes:
        ids: the object ids, ascending.
        current: the selected object id (clicks and boxes go to it), or None.

    Signals:
        removed(int): an object was removed (its prompt marks are dropped by the prompts).
    """

    removed = Signal(int)

    def __init__(self, state: TrackingState) -> None:
        self._state = state
        self.ids: list[int] = []
        self.current: int | None = None

    def reset(self, ids: list[int]) -> None:
        """List ``ids`` (e.g. the labels of a reused Labels layer) and select the first."""
        self.ids = sorted(ids)
        self.current = self.ids[0] if self.ids else None

    def color(self, obj_id: int) -> np.ndarray:
        """(4,) RGBA of an object, as the Labels layer draws it."""
        layer = self._state.labels_layer
        if layer is None:
            return np.array([1, 1, 1, 1], np.float32)
        return rgba(layer.get_color(obj_id))

    def next_free_id(self) -> int:
        """One above every id in use: objects, labels on any frame, and the lineage."""
        st = self._state
        used = max(self.ids, default=0)
        if st.volume is not None and st.volume.size:
            used = max(used, int(st.volume.max()))
        if st.session is not None and st.session.lineage:
            lineage = dict(st.session.lineage)
            used = max(used, *lineage, *lineage.values())
        return used + 1

    def add(self, obj_id: int | None = None) -> int:
        """Create an object (default: the next free id) and select it; returns its id."""
        self._state.need_image()
        obj_id = self.next_free_id() if obj_id is None else int(obj_id)
        if not 1 <= obj_id <= _MAX_ID:
            raise ValueError(f"object ids are 1 .. {_MAX_ID} (0 is background)")
        self._fit_volume(obj_id)
        if obj_id not in self.ids:
            self.ids.append(obj_id)
            self.ids.sort()
        self.select(obj_id)
        return obj_id

    def select(self, obj_id: int) -> None:
        """Select an object (and the same label in the Labels layer)."""
        if obj_id not in self.ids:
            raise ValueError(f"no object {obj_id}; objects: {self.ids}")
        self.current = int(obj_id)
        layer = self._state.labels_layer
        if layer is not None and layer.selected_label != obj_id:
            with self._state.suppressed():
                layer.selected_label = int(obj_id)
        self._state.events.objects_changed.emit()

    def next(self, step: int = 1) -> int | None:
        """Select the next (step=1) or previous (step=-1) object; returns its id."""
        if not self.ids:
            return None
        if self.current not in self.ids:
            self.select(self.ids[0])
        else:
            i = (self.ids.index(self.current) + step) % len(self.ids)
            self.select(self.ids[i])
        return self.current

    def ensure_current(self) -> int:
        """The selected object; a new one when none is selected."""
        if self.current is None or self.current not in self.ids:
            self.add()
        return self.current

    def use(self, obj_id: int) -> int:
        """Select ``obj_id``, creating it if needed."""
        if obj_id not in self.ids:
            self.add(obj_id)
        else:
            self.select(obj_id)
        return int(obj_id)

    def include(self, obj_id: int) -> None:
        """List ``obj_id`` (e.g. labels painted by hand) without selecting it."""
        if obj_id not in self.ids:
            self.ids.append(int(obj_id))
            self.ids.sort()
            self._state.events.objects_changed.emit()

    def remove(self, obj_id: int | None = None, *, wait: bool = False) -> None:
        """Forget an object (default: the selected one): its prompts, its memory and its labels
        on every frame."""
        st = self._state
        obj_id = self.current if obj_id is None else int(obj_id)
        if obj_id not in self.ids:
            raise ValueError(f"no object {obj_id}; objects: {self.ids}")
        self.ids.remove(obj_id)
        if self.current == obj_id:
            self.current = self.ids[0] if self.ids else None
            if self.current is not None and st.labels_layer is not None:
                with st.suppressed():
                    st.labels_layer.selected_label = self.current
        self.removed.emit(obj_id)
        for k in [k for k in st.scores if k[1] == obj_id]:
            del st.scores[k]

        def work() -> int:
            s = st.session
            if s is not None and obj_id in s.obj_ids:
                s.remove_object(obj_id)
            if s is not None:  # its divisions go too (its daughters stay, without a mother)
                for d, m in list(s.lineage.items()):
                    if obj_id in (d, m):
                        del s.lineage[d]
            vol = st.volume
            for t in range(vol.shape[0]):
                frame = vol[t]
                hit = frame == obj_id
                if hit.any():
                    frame[hit] = 0
            return obj_id

        job = st.submit_edit(f"removing object {obj_id}", work)
        st.events.objects_changed.emit()
        if wait:
            st.finish(job, True)

    # ------------------------------------------------------------------ many ids at once
    def used_ids(self) -> set[int]:
        """Ids in use: objects, labels on any frame (hand-painted too), session objects and
        lineage entries."""
        st = self._state
        used = set(self.ids)
        vol = st.volume
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
        s = st.session
        if s is not None:
            lineage = dict(s.lineage)
            used.update(s.obj_ids, lineage, lineage.values())
        used.discard(0)
        return used

    def reserve(self, wanted: list[int]) -> list[int]:
        """New object ids for ``wanted`` label values (ascending): a value is kept when free,
        else it gets the next free id. The ids are listed at once (so a click or "Add"
        meanwhile cannot take them); the first is selected."""
        used = self.used_ids()
        keep = [v for v in wanted if v not in used and v <= _MAX_ID]
        top = max([*used, *keep], default=0)
        ids = []
        for v in wanted:
            if v in keep:
                ids.append(v)
            else:
                top += 1
                ids.append(top)
        if max(ids) > _MAX_ID:
            raise ValueError(f"no free object ids left below {_MAX_ID + 1}")
        self.list_new(ids)
        return ids

    def list_new(self, ids: list[int]) -> None:
        """List new object ids and select the first."""
        self._fit_volume(max(ids))
        self.ids = sorted(set(self.ids).union(ids))
        self.select(ids[0])

    def unlist(self, ids: list[int]) -> None:
        """Drop ids listed by :meth:`reserve` / :meth:`list_new` that got no pixels."""
        gone = set(ids)
        self.ids = [i for i in self.ids if i not in gone]
        if self.current not in self.ids:
            self.current = self.ids[0] if self.ids else None
        self._state.events.objects_changed.emit()

    def sync_from_session(self) -> None:
        """List the session's new objects (daughters and renamed reappearances created while
        following divisions); objects it retired stay listed (their earlier labels remain)."""
        s = self._state.session
        new = [] if s is None else [i for i in s.obj_ids if i not in self.ids]
        if new:
            self.ids = sorted(self.ids + new)
            self._state.events.objects_changed.emit()

    def on_selected_label(self, event: Any = None) -> None:
        """The user picked a label in the Labels layer: select that object if it is one."""
        st = self._state
        if st.suppressing or st.labels_layer is None:
            return
        lab = int(st.labels_layer.selected_label)
        if lab in self.ids and lab != self.current:
            self.current = lab
            st.events.objects_changed.emit()

    def _fit_volume(self, obj_id: int) -> None:
        """Switch the label volume to uint32 when ``obj_id`` does not fit its dtype (ids above
        65,535), keeping the layer and the session on the same array."""
        st = self._state
        if obj_id <= np.iinfo(st.volume.dtype).max:
            return
        from napari_sam2.video._disk_volume import widened

        new = widened(st.volume)  # a memory-mapped volume stays on disk
        with st.suppressed():
            st.labels_layer.data = label_volume_for(st.info, new)
        st.relink_volume(new, "switching labels to 32 bits")
