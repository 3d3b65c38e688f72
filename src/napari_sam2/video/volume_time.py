"""3-D cells through time: a (T, Z, Y, X) movie, one click on one slice of one timepoint.

:class:`VolumeTimeSession` follows each object through time on its central slice (a
:class:`~napari_sam2.video.session.VideoSession` per object whose frame t is the plane
(t, z_t), with its bounded memory bank), and at every timepoint fills its 3-D extent by
propagating along z from that slice (:func:`~napari_sam2.video.volumes.propagate_along_z`, in a
z-session per timepoint that is dropped after it). The central slice of the next timepoint is
the slice of this timepoint's 3-D mask nearest its z centroid among its wide slices
(:func:`~napari_sam2.video.volumes.central_slice`). Touching cells keep their identities by the
labels of the timepoint before (:mod:`._volume_identity`, :mod:`._volume_touching`). Memory does not
grow with the number of timepoints: the z-sessions share one worker pool (no threads are
started per timepoint), and the pages of a memory-mapped movie or label volume are handed back
as they are read and written (:class:`~napari_sam2.video._disk_volume.PageBudget`), as for 2-D
movies; the sessions that follow objects through time keep no spare memories; and the C heap
keeps neither large tensors nor the free pages of a finished timepoint
(:mod:`napari_sam2.video._heap`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..io.label_checks import check_labels
from ..model.sam2 import SAM2Model
from ._disk_volume import PageBudget, release_pages
from ._heap import fix_mmap_threshold, trim_heap
from ._parallel import WorkerPool, auto_workers
from ._volume_identity import give_back_stolen
from ._volume_overlap import without_neighbours
from ._volume_planes import _open_4d, _Planes
from ._volume_touching import reshare_touching
from ._volume_track import Track, replay, window_side
from .frames import FrameSource, frame_source_for
from .memory_bank import MemorySettings
from .session import VideoSession
from .volume_divisions import daughter_masks, may_divide
from .volumes import central_slice, propagate_along_z, slice_image, z_settings

__all__ = ["VolumeTimeSession"]


# ------------------------------------------------------------------------------ 3-D + time


class VolumeTimeSession:
    """Follow 3-D cells through a (T, Z, Y, X) movie from clicks or boxes on single slices.

    Args:
        model: a loaded :class:`~napari_sam2.model.sam2.SAM2Model`.
        movie: (T, Z, [C,] Y, X) numpy / memmap / dask / zarr array or TIFF path (read plane
            by plane).
        axes: one letter per dimension with T and Z, e.g. ``"TZYX"``, ``"TCZYX"``, ``"ZTYX"``.
        channel: channel index the model sees (C axis only).
        contrast_limits: (lo, hi) intensity window; default: robust percentiles of planes
            sampled over time and z (one window for the whole movie).
        settings: memory-bank settings of the time and z propagation (through time without
            spare memories: ``stored_memory_frames`` is 0 there, see :meth:`_time_settings`).
        precision: ``"fp32"`` or ``"bf16"``.
        guard: end objects along z where they end (:func:`end_along_z`).
        out: optional (T, Z, Y, X) integer array the labels are written into.
        zoom: ``"auto"`` (default): objects too small for the model at the whole-slice input
            run in windows that follow them, on every slice through z and through time
            (:mod:`napari_sam2.video.windows`); ``"off"``: every object sees whole slices.
        cell_diameter: typical cell diameter in y-x pixels for sizing the windows (None:
            estimated from the image around the first click).
        divisions: detect divisions while propagating forward
            (:mod:`napari_sam2.video.volume_divisions`): a cell whose 3-D mask holds two
            cells (fallen apart, over two bright cores, or one daughter with her sister
            opposite) ends, its two halves go on as daughters with new ids, recorded in
            :attr:`lineage` as ``{daughter: mother}``.
        fit: fit each timepoint's masks along z to the image (:mod:`._volume_fit`), as for
            z-stacks (validation movies, seeds 2000-2003: mean IoU 0.476 -> 0.689, mean TRA
            0.884 both; docs/3d_measurements.md).
    """

    def __init__(
        self,
        model: SAM2Model,
        movie: Any,
        *,
        axes: str = "TZYX",
        channel: int | None = None,
        contrast_limits: tuple[float, float] | None = None,
        settings: MemorySettings | None = None,
        precision: str = "fp32",
        guard: bool = True,
        out: np.ndarray | None = None,
        zoom: str = "auto",
        cell_diameter: float | None = None,
        divisions: bool = False,
        fit: bool = True,
    ) -> None:
        self.model = model.eval()
        self._movie, self._axes, self._tif = _open_4d(movie, axes)
        shape = self._movie.shape
        self.num_frames = int(shape[self._axes.index("T")])
        self.num_slices = int(shape[self._axes.index("Z")])
        self.frame_shape = (int(shape[self._axes.index("Y")]), int(shape[self._axes.index("X")]))
        self.channel = channel
        self.settings = settings or MemorySettings()
        self.precision = precision
        self.guard = guard
        self.zoom = zoom
        self.cell_diameter = cell_diameter
        self.divisions = bool(divisions)
        self.fit = bool(fit)
        #: {daughter id: mother id} of the divisions found
        self.lineage: dict[int, int] = {}
        nz = self.num_slices
        fix_mmap_threshold()  # large tensors out of the C heaps: flat peak memory in T
        self._movie_pages = PageBudget()  # resident pages of a memory-mapped movie, read
        self._label_pages = PageBudget()  # ... and of memory-mapped labels, written
        # one pool for every timepoint's z-session: threads are not started per timepoint
        self._z_pool = WorkerPool(auto_workers(model.device, model.config.image_size))
        every = _Planes(self._movie, self._axes, self.num_frames * nz, lambda i: divmod(i, nz))
        probe = self._source(every, contrast_limits)
        self.contrast_limits = probe.contrast_limits  # one window for every plane
        probe.close()
        # the planes sampled over the whole movie (and the kernel's read-ahead around them)
        release_pages(self._movie)
        expected = (self.num_frames, nz, *self.frame_shape)
        if out is not None:
            check_labels(out, shape=expected, name="out", check_values=False)
        self._labels = out if out is not None else np.zeros(expected, np.uint16)
        self._tracks: dict[int, Track] = {}
        self._zs: tuple[int, VideoSession] | None = None
        #: prompted timepoints not filled along z since their last prompt (``fill_z=False``)
        self._unfilled: set[int] = set()

    # ------------------------------------------------------------------ basics
    def _source(self, planes: _Planes, limits: Any, prefetch: bool = True) -> FrameSource:
        return frame_source_for(
            planes,
            self.model.config,
            axes=planes.axes,
            channel=self.channel,
            contrast_limits=limits,
            prefetch=prefetch,
        )

    @property
    def obj_ids(self) -> list[int]:
        """Ids of the objects, ascending."""
        return sorted(self._tracks)

    def labels(self) -> np.ndarray:
        """The (T, Z, Y, X) label volume (the session's own array; results stream into it)."""
        return self._labels

    def close(self) -> None:
        """Close the frame sources and the TIFF file (if a path was given)."""
        for tr in self._tracks.values():
            tr.time.frames.close()
        if self._zs is not None:
            self._zs[1].frames.close()
            self._zs = None
        if self._tif is not None:
            self._tif.close()
            self._tif = None

    def _check(self, frame: int, z: int) -> tuple[int, int]:
        for name, v, n in (("frame", frame, self.num_frames), ("z", z, self.num_slices)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < n:
                raise ValueError(f"{name} {v!r} is out of range: the movie has {name} 0..{n - 1}")
        return int(frame), int(z)

    def _z_session(self, t: int) -> VideoSession:
        """The z-session of timepoint t (one at a time; its label volume is ``labels()[t]``)."""
        if self._zs is not None and self._zs[0] == t:
            return self._zs[1]
        if self._zs is not None:
            self._zs[1].frames.close()
        nz = self.num_slices
        src = self._source(
            _Planes(self._movie, self._axes, nz, lambda z: (t, z), self._movie_pages),
            self.contrast_limits,
        )
        zs = self._session(src, z_settings(self.settings, nz))
        zs.runner.pool = self._z_pool  # shared: a z-session lives for one timepoint only
        zs.set_label_volume(self._labels[t])
        self._zs = (t, zs)
        for o in self.obj_ids:  # a timepoint prompted before: its prompts again
            for prompt in self._tracks[o].prompts.get(t, []):
                replay(zs, o, prompt)
        return zs

    def _session(self, src: FrameSource, settings: MemorySettings, **kw: Any) -> VideoSession:
        """A 2-D session over planes of the movie; unfitted (3-D data is fitted in 3-D)."""
        return VideoSession(
            self.model, src, settings=settings, precision=self.precision, zoom=self.zoom,
            cell_diameter=self.cell_diameter, fit_masks=False, **kw,
        )

    def _track(self, obj_id: int) -> Track:
        if obj_id not in self._tracks:
            tr: Track

            def plane(t: int) -> tuple[int, int]:
                return t, tr.read_slice[t]

            src = self._source(
                _Planes(self._movie, self._axes, self.num_frames, plane, self._movie_pages),
                self.contrast_limits,
                prefetch=False,  # frame t+1's slice is only known once t is done
            )
            time = self._session(src, self._time_settings(), keep_labels=False)
            tr = Track(obj_id, time)
            self._tracks[obj_id] = tr
        return self._tracks[obj_id]

    def _divide(self, t: int, mother: Track, image: np.ndarray | None = None) -> None:
        """Split ``mother`` into two daughters at t when its 3-D mask holds two cells there
        (:func:`.daughter_masks`; ``image``: t's, :meth:`_image`, read here when not given)."""
        born = min(mother.prompted) if mother.born else None
        if t == 0 or t - 1 not in mother.centre or not may_divide(t, born):
            return
        was, now = self._labels[t - 1] == mother.obj_id, self._labels[t] == mother.obj_id
        image = self._image(t) if image is None else image
        parts = daughter_masks(now, int(np.count_nonzero(was)), image=image, mother=was)
        lab = self._labels[t]
        mine = [o for o, tr in self._tracks.items() if t in tr.prompted]
        if parts is None or any(np.isin(lab[p], mine).any() for p in parts):
            return  # (no division, or one that would take voxels of a mask prompted at t)
        mother.ended = t - 1
        mother.centre.pop(t, None)
        top = max(max(self._tracks), *self.lineage, *self.lineage.values(), 0)
        lab[lab == mother.obj_id] = 0  # the mother ends at t - 1: fragments go with her
        for k, part in enumerate(parts):
            obj_id = top + 1 + k
            lab[part] = obj_id
            zc = central_slice(part)
            tr = self._track(obj_id)
            tr.side, tr.sized, tr.born = mother.side, True, True
            self._read_at(tr, t, zc)
            tr.time.add_mask(t, obj_id, part[zc], window_side=tr.side)
            tr.centre[t] = zc
            tr.prompted.add(t)
            self.lineage[obj_id] = mother.obj_id

    def _image(self, t: int) -> np.ndarray:
        """(Z, Y, X) float32 image of timepoint t as the model sees it (:func:`slice_image`)."""
        image = slice_image(self._z_session(t))
        return np.stack([image(z) for z in range(self.num_slices)])

    def _time_settings(self) -> MemorySettings:
        """Settings of the time sessions: no spare memories (``stored_memory_frames`` 0).

        Every propagation through time starts again at an object's first prompted timepoint
        and goes one timepoint at a time, so the memories attention reaches (the stride and
        pointer windows behind the front, and the prompted timepoints) are all it ever needs;
        spares would only make each bank grow over its first ~50 timepoints.
        """
        return dataclasses.replace(self.settings, stored_memory_frames=0)

    def _read_at(self, tr: Track, t: int, z: int) -> None:
        """Make the time session's frame t the plane (t, z) (dropping an encoding made from
        another slice)."""
        if tr.read_slice.get(t) == z:
            return
        tr.read_slice[t] = z
        tr.time.frames.drop_cache()
        tr.time.runner.drop_features(t)  # the encodings of the old plane (frame and windows)

    # ------------------------------------------------------------------ prompts
    def add_points(
        self, frame: int, z: int, obj_id: int, points, labels, *, fill_z: bool = True
    ) -> np.ndarray:
        """Clicks on slice z of timepoint ``frame``: segments the object in 3-D there.

        The objects prompted on one timepoint are filled along z together, as the cells of a
        z-stack are (:func:`~napari_sam2.video.volumes.propagate_along_z` with its prompt
        rules): an object's fill ends where it runs onto a cell prompted on a nearer slice, so
        one cell's fill does not take a neighbour stacked above or below it, and the labels do
        not depend on the order of the clicks. A new prompt fills every object prompted on
        that timepoint again.

        Args:
            frame: timepoint t.
            z: slice index.
            obj_id: object id (>= 1; one id per cell across time).
            points: (N, 2) clicks as (y, x) pixels.
            labels: (N,) 1 = on the object, 0 = background.
            fill_z: fill the objects prompted on that timepoint along z at once; False
                segments slice z only (fill later with :meth:`fill_z`: many prompts, one
                fill; without a fill it is followed through time on slice z).

        Returns:
            (Z, Y, X) bool mask of the object at that timepoint.
        """
        frame, z = self._check(frame, z)
        return self._prompt(frame, z, obj_id, ("points", z, points, labels), fill_z)

    def add_box(self, frame: int, z: int, obj_id: int, box, *, fill_z: bool = True) -> np.ndarray:
        """A box (y0, x0, y1, x1) on slice z of timepoint ``frame`` (see :meth:`add_points`)."""
        frame, z = self._check(frame, z)
        return self._prompt(frame, z, obj_id, ("box", z, box), fill_z)

    def fill_z(self, frame: int) -> list[int]:
        """Fill along z, at timepoint ``frame``, the objects prompted there, all together.

        Returns:
            The ids filled.
        """
        frame, _ = self._check(frame, 0)
        return self._fill_prompted(frame)

    def _prompt(self, t: int, z: int, obj_id: int, prompt: tuple, fill_z: bool) -> np.ndarray:
        """Run one prompt on slice z of t, record it, and fill (or settle on slice z)."""
        tr = self._track(obj_id)
        zs = self._z_session(t)
        if t not in tr.prompts and obj_id in zs.obj_ids:  # followed there: the prompt rules
            zs.remove_object(obj_id)
        replay(zs, obj_id, prompt)
        tr.prompts.setdefault(t, []).append(prompt)
        tr.clicked[t] = z
        if fill_z:
            self._fill_prompted(t)
        else:
            self._unfilled.add(t)
        mask = self._labels[t] == obj_id
        if not mask.any():  # nothing found: the prompt is dropped, the others filled without it
            self._drop_last_prompt(t, obj_id)
            if fill_z:
                self._fill_prompted(t)
            raise ValueError(
                f"the prompt on frame {t}, slice {z} gave an empty mask for object {obj_id}: "
                "click inside the cell, or draw a box around it"
            )
        if not fill_z:
            self._settle(t, obj_id)
        return mask

    def _drop_last_prompt(self, t: int, obj_id: int) -> None:
        """Forget an object's last prompt at t (its earlier prompts there stay)."""
        tr = self._tracks[obj_id]
        zs = self._z_session(t)
        last = tr.prompts[t].pop()
        zs.clear_prompts(last[1], obj_id)
        for prompt in tr.prompts[t]:
            if prompt[1] == last[1]:
                replay(zs, obj_id, prompt)
        if tr.prompts[t]:
            tr.clicked[t] = tr.prompts[t][-1][1]
        else:
            del tr.prompts[t]
            tr.clicked.pop(t)
            zs.remove_object(obj_id)

    def _fill_prompted(self, t: int) -> list[int]:
        """Fill every object prompted at t along z together, from its last prompt's slice,
        and hand each its central slice (see :meth:`_settle`)."""
        starts = {o: tr.clicked[t] for o, tr in sorted(self._tracks.items()) if t in tr.prompts}
        self._unfilled.discard(t)
        if not starts:
            return []
        zs = self._z_session(t)
        for o in starts:  # each fill starts from its prompts alone: no memories of a fill before
            done = set(zs.prompted_frames(o))
            for s in range(self.num_slices):
                if s not in done:
                    zs.clear_prompts(s, o)
        for _ in propagate_along_z(zs, starts, "both", self.guard, fit=self.fit):
            pass
        for o in starts:
            if (self._labels[t] == o).any():  # an empty prompt is refused by the caller
                self._settle(t, o)
        return list(starts)

    def _settle(self, t: int, obj_id: int) -> None:
        """Give a prompted object's mask on its clicked slice to its time session."""
        zs = self._z_session(t)
        tr = self._tracks[obj_id]
        z = tr.clicked[t]
        mask = self._labels[t] == obj_id
        # the slice clicked is the cell's for sure; the central slice of a fill that went on
        # into a neighbour along z may be the neighbour's
        zc = z if mask[z].any() else central_slice(mask)
        if zc is None:
            return
        if not tr.sized:  # the window side of its first prompt, kept through time and z
            tr.side, tr.sized = window_side(zs, obj_id, z), True
        self._read_at(tr, t, zc)
        tr.time.add_mask(t, obj_id, mask[zc], window_side=tr.side)
        tr.centre[t] = zc
        tr.prompted.add(t)

    # ------------------------------------------------------------------ propagation
    def propagate(
        self, direction: str = "both", stop: int | None = None, *, fill_z: bool = True
    ) -> Iterator[int]:
        """Follow every prompted object through time, filling its 3-D extent at each timepoint.

        Each object runs forward (and/or backward) from its own first prompted timepoint.
        A generator: it yields each timepoint t once its (Z, Y, X) labels are written; closing
        it early keeps the finished timepoints.

        Args:
            direction: ``"forward"``, ``"backward"`` or ``"both"``.
            stop: last timepoint of a one-way run (default: the movie's end that way).
            fill_z: fill each timepoint along z (3-D cells), the prompted timepoints not
                filled yet first (:meth:`fill_z`); False follows the objects on their slice
                only (one 2-D mask per timepoint, on the slice of the prompt).
        """
        if direction not in ("forward", "backward", "both"):
            raise ValueError(
                f"direction must be 'forward', 'backward' or 'both', got {direction!r}"
            )
        if fill_z:  # prompted timepoints clicked slice by slice are filled first
            for t in sorted(self._unfilled):
                self._fill_prompted(t)
        tracks = [tr for tr in self._tracks.values() if tr.prompted]
        if not tracks:
            raise ValueError("nothing to propagate: add points or a box on a slice first")
        first = {tr.obj_id: min(tr.prompted) for tr in tracks}
        last = self.num_frames - 1
        if direction in ("forward", "both"):
            hi = last if stop is None or direction == "both" else int(stop)
            for t in range(min(first.values()), hi + 1):
                active = [  # daughters found on the way join after their division
                    tr
                    for tr in self._tracks.values()
                    if tr.prompted and min(tr.prompted) <= t and (tr.ended is None or t <= tr.ended)
                ]
                self._timepoint(t, active, reverse=False, fill_z=fill_z)
                yield t
        if direction in ("backward", "both"):
            lo = 0 if stop is None or direction == "both" else int(stop)
            top = max(first.values()) - (1 if direction == "both" else 0)
            for t in range(top, lo - 1, -1):
                active = [
                    tr
                    for tr in tracks
                    if not tr.born
                    and (first[tr.obj_id] > t if direction == "both" else first[tr.obj_id] >= t)
                ]
                self._timepoint(t, active, reverse=True, fill_z=fill_z)
                yield t

    def _timepoint(self, t: int, tracks: list[Track], reverse: bool, fill_z: bool) -> None:
        """Track ``tracks`` to timepoint t on their central slices, then fill along z."""
        before = t + 1 if reverse else t - 1
        starts: dict[int, int] = {}
        seeds: dict[int, np.ndarray] = {}
        followed: list[int] = []  # the objects whose 3-D mask at t comes from tracking
        for tr in tracks:
            if t in tr.prompted:  # its 3-D mask at t comes from the prompt
                continue
            followed.append(tr.obj_id)
            z = tr.centre.get(before)
            if z is None:  # lost before t: follow on the slice last read
                z = tr.read_slice.get(before)
            if z is None:
                continue
            self._read_at(tr, t, z)
            res = next(
                tr.time.propagate(start=t, direction="backward" if reverse else "forward", stop=t)
            )
            m = res.mask(0)
            lab = self._labels[t]
            lab[lab == tr.obj_id] = 0
            tr.centre.pop(t, None)
            if m.any() and not fill_z:  # the slice only
                lab[z][m & (lab[z] == 0)] = tr.obj_id
                tr.centre[t] = z
            elif m.any():
                if 0 <= before < self.num_frames:  # not the neighbours' pixels of t - 1
                    m = without_neighbours(m, self._labels[before][z], tr.obj_id)
                starts[tr.obj_id], seeds[tr.obj_id] = z, m
        if starts:
            zs = self._z_session(t)
            for obj_id, z in starts.items():
                if obj_id in zs.obj_ids:  # re-propagated over t: start afresh
                    zs.remove_object(obj_id)
                zs.add_mask(z, obj_id, seeds[obj_id], window_side=self._tracks[obj_id].side)
            # the start slices come from tracking, not from prompts: no slice is claimed;
            # identity: the labels of the timepoint before share the overlaps out, a cell's
            # voxels taken by a neighbour go back to it, touching labels are shared by cell
            previous = self._labels[before] if 0 <= before < self.num_frames else None
            for _ in propagate_along_z(
                zs, starts, "both", self.guard, claims=False, fit=self.fit, previous=previous
            ):
                pass
            image = self._image(t) if previous is not None or self.divisions else None
            if previous is not None:
                give_back_stolen(self._labels[t], previous, followed)
            for obj_id in starts if self.divisions and not reverse else ():
                self._divide(t, self._tracks[obj_id], image)
            if previous is not None:  # after the divisions: a dividing cell is not round
                reshare_touching(self._labels[t], previous, followed, image)
            for obj_id in followed:  # (a mother divided at t has no voxels left there)
                if (zc := central_slice(self._labels[t] == obj_id)) is not None:
                    self._tracks[obj_id].centre[t] = zc
        self._label_pages.note(self._labels, self._labels[t].nbytes)
        # this timepoint's encodings, z-session memories and logits are freed by now: hand
        # their pages back, or the C heap keeps them and the process grows with T
        trim_heap()
