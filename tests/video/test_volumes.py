"""3-D: z-stacks played along z, the z-end guard, and 3-D cells followed through time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import clicked_zstack_labels
from napari_sam2.train.zstack import make_zstack, make_zstack_movie
from napari_sam2.video._volume_planes import _Planes
from napari_sam2.video.frames import FrameSource
from napari_sam2.video.session import VideoSession
from napari_sam2.video.volume_time import VolumeTimeSession
from napari_sam2.video.volumes import (
    central_slice,
    end_along_z,
    mask_contrast,
    propagate_along_z,
)


def _stack(z=6, h=32, w=40):
    """(Z, H, W) stack with a bright ball centred on slice 2."""
    zz, yy, xx = np.mgrid[:z, :h, :w]
    vol = np.full((z, h, w), 100.0)
    vol[((zz - 2) * 3) ** 2 + (yy - 16) ** 2 + (xx - 20) ** 2 < 64] = 1000.0
    return vol.astype(np.uint16)


def test_zyx_session_plays_slices_as_frames(model):
    vol = _stack()
    session = VideoSession(model, vol, axes="ZYX")
    assert session.frames.frame_axis == "Z" and session.num_frames == 6
    mask = session.add_points(2, 1, [(16, 20)], [1])
    assert mask.shape == (32, 40)
    visited = list(propagate_along_z(session, {1: 2}, "both", guard=False))
    assert sorted(visited) == list(range(6))
    labels = session.labels()
    assert labels.shape == (6, 32, 40) and (labels[2] == 1).any()


def test_czyx_channel_and_tiff_zstack(tmp_path, model):
    import tifffile

    vol = _stack()
    two = np.stack([np.zeros_like(vol), vol])  # (C, Z, Y, X): the cell is in channel 1
    session = VideoSession(model, two, axes="CZYX", channel=1)
    assert session.num_frames == 6 and session.frames.num_channels == 2
    np.testing.assert_array_equal(session.frames.raw(2)[..., 1], vol[2])
    path = tmp_path / "z.tif"
    tifffile.imwrite(path, vol, imagej=True, metadata={"axes": "ZYX"})
    src = FrameSource(path, image_size=32, prefetch=False)
    assert src.frame_axis == "Z" and src.num_frames == 6
    np.testing.assert_array_equal(src.raw(4), vol[4])
    src.close()


def test_time_and_z_together_name_the_volume_session():
    with pytest.raises(ValueError, match="VolumeTimeSession"):
        FrameSource(np.zeros((2, 3, 8, 8)), axes="TZYX")


def test_end_along_z_erases_reappearance_and_jumps():
    lab = np.zeros((10, 8, 8), np.uint16)
    lab[3:7, 2:5, 2:5] = 1  # the object: slices 3..6
    lab[8, 2:5, 2:5] = 1  # comes back after a gap: false positive
    lab[2, 5:8, 5:8] = 1  # jumped to another place below: no overlap
    lab[1, 5:8, 5:8] = 1
    assert end_along_z(lab, 1, 4) == 9 * 3
    assert [bool((lab[z] == 1).any()) for z in range(10)] == [
        False,
        False,
        False,
        True,
        True,
        True,
        True,
        False,
        False,
        False,
    ]


def test_end_along_z_contrast_collapse():
    lab = np.zeros((6, 20, 20), np.uint16)
    lab[:, 6:14, 6:14] = 1  # the mask stays on every slice ...
    image = np.zeros((6, 20, 20), np.float32)
    image[1:4, 6:14, 6:14] = 1.0  # ... the cell only spans slices 1..3
    assert mask_contrast(image[2], lab[2] == 1) == pytest.approx(1.0)
    end_along_z(lab, 1, 2, image=lambda z: image[z])
    assert [bool(lab[z].any()) for z in range(6)] == [False, True, True, True, False, False]


def test_central_slice():
    m = np.zeros((5, 4, 4), bool)
    assert central_slice(m) is None
    m[1, :2, :2] = True
    m[2, :3, :3] = True
    m[3, :2, :2] = True
    assert central_slice(m) == 2


def test_planes_view_reads_the_mapped_plane():
    mv = np.arange(3 * 4 * 2 * 5 * 6).reshape(3, 4, 2, 5, 6)  # T, Z, C, Y, X
    view = _Planes(mv, "TZCYX", 12, lambda i: divmod(i, 4))
    assert view.axes == "TCYX" and view.shape == (12, 2, 5, 6)
    np.testing.assert_array_equal(view[(7, 1, slice(None), slice(None))], mv[1, 3, 1])
    src = FrameSource(view, axes=view.axes, channel=1, image_size=8, prefetch=False)
    np.testing.assert_array_equal(src.raw(5), mv[1, 1].transpose(1, 2, 0))
    src.close()


def test_volume_time_session_shapes_and_prompted_frame(model):
    t, z = 3, 5
    vol = np.stack([_stack(z) for _ in range(t)])  # (T, Z, Y, X)
    session = VolumeTimeSession(model, vol, axes="TZYX")
    assert (session.num_frames, session.num_slices, session.frame_shape) == (3, 5, (32, 40))
    mask = session.add_points(1, 2, 1, [(16, 20)], [1])
    assert mask.shape == (5, 32, 40) and mask[2].any()
    assert session.labels().shape == (3, 5, 32, 40)
    done = list(session.propagate("both"))
    assert done == [1, 2, 0]  # forward from the prompt, then backward
    np.testing.assert_array_equal(session.labels()[1] == 1, mask)  # the prompt is kept
    track = session._tracks[1]
    assert set(track.read_slice) == {0, 1, 2}  # one plane per timepoint
    with pytest.raises(ValueError, match="z 9 is out of range"):
        session.add_points(0, 9, 2, [(3, 3)], [1])
    session.close()


def test_volume_time_session_bad_axes(model):
    with pytest.raises(ValueError, match="needs axes with T and Z"):
        VolumeTimeSession(model, np.zeros((4, 8, 8)), axes="ZYX")


def test_guard_ends_cells_with_the_bundled_model():
    """The bundled model keeps a confident mask on empty slices; the guard ends it."""
    from napari_sam2 import load_model

    micro = load_model("micro", device="cpu")
    stack, nuclei = make_zstack((20, 64, 64), count=2, radius=(8.0, 12.0), seed=3)
    runs = {guard: clicked_zstack_labels(micro, stack.image, nuclei, guard=guard)
            for guard in (False, True)}
    for n in nuclei:
        truth = (stack.labels == n.obj_id).any(axis=(1, 2))
        past = [(lab == n.obj_id).any(axis=(1, 2)) & ~truth for lab in (runs[False], runs[True])]
        assert not past[1].any()  # guarded: no mask past the cell's ends
        assert past[0].sum() > past[1].sum()  # unguarded: the mask outlives the cell
        assert (runs[True] == n.obj_id).sum() > 0.3 * truth.sum()  # the cell itself is kept


def test_zstack_generator_is_exact_and_touching():
    stack, nuclei = make_zstack((24, 64, 64), count=5, radius=(8.0, 14.0), seed=0)
    assert stack.image.shape == stack.labels.shape == (24, 64, 64)
    assert set(np.unique(stack.labels)) == {0} | {n.obj_id for n in nuclei}
    for n in nuclei:  # each nucleus ends inside the stack
        zs = np.flatnonzero((stack.labels == n.obj_id).any(axis=(1, 2)))
        assert zs.min() > 0 and zs.max() < 23
    movie = make_zstack_movie((16, 64, 64), frames=6, count=2, radius=(8.0, 10.0), seed=0)
    assert movie.labels.shape == (6, 16, 64, 64) and len(movie.lineage) == 2
    daughters = list(movie.lineage)
    assert not (movie.labels[0] == daughters[0]).any() and (movie.labels[-1] == daughters[0]).any()


def _resident_kib(path) -> int:
    """Resident KiB of this process's memory maps of ``path`` (Linux ``/proc/self/smaps``)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:  # a mapping's header line
                inside = line.rstrip().endswith(str(path))
            elif inside and line.startswith("Rss:"):
                total += int(head[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_volume_time_memory_does_not_grow_with_timepoints(tmp_path, model):
    """What grew with T: a worker pool (threads) per timepoint's z-session, and the resident
    pages of a memory-mapped movie and label volume. Both are bounded now."""
    import threading

    from napari_sam2.video._disk_volume import PageBudget

    t, z = 10, 5
    # files of ~1 MB, so that a few pages of the last reads (4 KiB each) are far below half
    movie = np.lib.format.open_memmap(tmp_path / "m.npy", "w+", np.uint16, (t, z, 96, 120))
    movie[:] = np.stack([_stack(z, 96, 120) for _ in range(t)])
    movie.flush()
    out = np.lib.format.open_memmap(tmp_path / "l.npy", "w+", np.uint16, movie.shape)
    session = VolumeTimeSession(model, movie, axes="TZYX", out=out)
    session._movie_pages = PageBudget(every=1)  # hand pages back after every read / write
    session._label_pages = PageBudget(every=1)
    session.add_points(0, 2, 1, [(16, 20)], [1])
    threads, pools = [], set()
    for _ in session.propagate("forward"):
        threads.append(threading.active_count())
        pools.add(id(session._zs[1].runner.pool))
    assert pools == {id(session._z_pool)}  # every timepoint's z-session uses the one pool
    assert max(threads[2:]) <= threads[1]  # no threads started per timepoint
    for path, arr in (("m.npy", movie), ("l.npy", out)):
        assert _resident_kib(tmp_path / path) < arr.nbytes / 2048  # < half of it resident
    assert (out[t - 1] == 1).any()  # the labels were written to the file
    session.close()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def test_automatic_zoom_runs_small_cells_of_a_zstack_in_windows():
    """A 16-20 px nucleus in a 256-px wide stack is too small for the bundled model at the
    whole slice: with zoom="auto" it runs in a window on every slice it is found on. The cell
    size is given (``cell_diameter=18``): the click-size estimate of the shipped weights for
    this nucleus is 45 px, which the click-size rule takes (confident enough, 2.3x the blob) and
    which needs no window; the size rule has its own tests in test_zoom_click_size.py."""
    from napari_sam2 import load_model

    micro = load_model("micro", device="cpu")
    stack, nuclei = make_zstack((14, 256, 256), count=1, radius=(8.0, 10.0), seed=4)
    n = nuclei[0]
    zc, yc, xc = (int(round(v)) for v in n.centre)
    truth = stack.labels == n.obj_id
    found = {}
    for zoom in ("off", "auto"):
        session = VideoSession(micro, stack.image, axes="ZYX", zoom=zoom, cell_diameter=18,
                               workers=1)
        session.add_points(zc, n.obj_id, [(yc, xc)], [1])
        list(propagate_along_z(session, {n.obj_id: zc}))
        found[zoom] = (session, session.labels() == n.obj_id)
    session, mask = found["auto"]
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    assert zc in slices and len(slices) > 1
    for z in slices:
        window = session.window(n.obj_id, int(z))
        assert window is not None and window[2] - window[0] < 256
    assert found["off"][0].window(n.obj_id, zc) is None
    assert _iou(mask, truth) > _iou(found["off"][1], truth)


def test_volume_time_session_passes_the_zoom_to_slices_and_time():
    """A small nucleus in a 256-px wide 3-D + time movie: the z-sessions and the session that
    follows it through time run it in windows (zoom="auto"); with zoom="off" they do not.
    The window side of the click is kept at later timepoints: seeded there from the model's
    own (wider than the cell) mask, the z-session used to size the window from that mask,
    ran whole slices and gave masks far too large."""
    from napari_sam2 import load_model

    micro = load_model("micro", device="cpu")
    mv = make_zstack_movie((12, 256, 256), frames=2, count=1, radius=(7.0, 8.0), divisions=0)
    m = mv.labels[0] == 1
    z = central_slice(m)
    ys, xs = np.nonzero(m[z])
    k = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    for zoom in ("auto", "off"):
        session = VolumeTimeSession(micro, mv.image, axes="TZYX", zoom=zoom)
        session.add_points(0, z, 1, [(ys[k], xs[k])], [1])
        filled = np.flatnonzero((session.labels()[0] == 1).any(axis=(1, 2)))
        in_z = [session._zs[1].window(1, int(s)) for s in filled]
        assert len(filled) > 1
        list(session.propagate("forward"))
        in_time = [session._tracks[1].time.window(1, t) for t in range(2)]
        later = np.flatnonzero((session.labels()[1] == 1).any(axis=(1, 2)))
        assert session._zs[0] == 1 and len(later) > 1  # t = 1 filled along z
        in_z_later = [session._zs[1].window(1, int(s)) for s in later]
        if zoom == "auto":
            windows = in_z + in_time + in_z_later
            assert all(w is not None for w in windows)
            assert {w[2] - w[0] for w in windows} == {in_z[0][2] - in_z[0][0]}  # one side
            assert in_z[0][2] - in_z[0][0] < 256
            voxels = [int((session.labels()[t] == 1).sum()) for t in range(2)]
            assert voxels[1] < 2 * voxels[0]  # not far larger than at the click
        else:
            assert in_z + in_time + in_z_later == [None] * (len(filled) + 2 + len(later))
        session.close()


def test_time_sessions_keep_no_spare_memories_and_trim_the_heap(model, monkeypatch):
    """Memory flat in T: each object's bank in time stops growing once it holds what attention
    reaches (no spare memories: every propagation restarts at a prompted timepoint), large
    blocks get their own memory maps (a fixed glibc mmap threshold), and the C heap's free
    pages are handed back after every timepoint."""
    from napari_sam2.video import volume_time

    trims, fixed = [], []
    monkeypatch.setattr(volume_time, "trim_heap", lambda: trims.append(1) or True)
    monkeypatch.setattr(volume_time, "fix_mmap_threshold", lambda: fixed.append(1) or True)
    t = 24
    movie = np.stack([_stack(5, 32, 40) for _ in range(t)])
    session = VolumeTimeSession(model, movie, axes="TZYX", zoom="off")
    session.add_points(0, 2, 1, [(16, 20)], [1])
    bank = session._tracks[1].time._objects[1].bank
    sizes = []
    for _ in session.propagate("forward", fill_z=False):  # the time sessions are what grew
        sizes.append(len(bank))
    s = session._tracks[1].time.settings
    assert s.stored_memory_frames == 0 and session.settings.stored_memory_frames > 0
    reach = max((s.num_memory_frames + 1) * s.memory_stride + 1, s.max_object_pointers)
    assert max(sizes) <= reach + 2  # the reach behind the front, the front, the prompt
    assert sizes[-1] == sizes[reach + 2]  # flat once full, well before T = 20
    assert len(trims) == t and fixed == [1]  # large blocks mapped, free pages returned
    session.close()


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux glibc")
def test_heap_helpers_reach_glibc():
    import platform

    from napari_sam2.video._heap import fix_mmap_threshold, trim_heap

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert fix_mmap_threshold() is True
    assert isinstance(trim_heap(), bool)


def _disc(shape, centre, r) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= r * r


def _found(shape, masks: dict):
    from napari_sam2.video.volumes import _ObjectSlices

    found = _ObjectSlices(shape)
    for obj_id, per_slice in masks.items():
        for z, m in per_slice.items():
            found.crops.setdefault(obj_id, {})[z] = ((0, 0, *shape), m)
    return found


def test_guard_ignores_a_neighbours_mask_past_its_end():
    """B's mask outlives B and jumps onto A; B is ended there (no overlap with its last slice)
    before the neighbour rule looks at A, so A keeps all its slices."""
    from napari_sam2.video.volumes import _guard

    shape, nz = (24, 32), 8
    a, b = _disc(shape, (10, 10), 4), _disc(shape, (10, 20), 4)
    image = np.zeros((nz, *shape), np.float32)
    image[1:7][:, a] = 1.0
    image[0:3][:, b] = 1.0
    found = _found(
        shape,
        {
            1: {z: a for z in range(1, 7)},
            2: {**{z: b for z in range(3)}, **{z: a for z in range(3, 7)}},
        },
    )
    _guard(found, {1: 3, 2: 1}, nz, lambda z: image[z])
    assert sorted(found.crops[1]) == list(range(1, 7))
    assert sorted(found.crops[2]) == [0, 1, 2]


def test_guard_keeps_touching_cells_prompted_on_one_slice():
    """Two touching cells whose (too wide) masks share ~60 % on every slice, prompted on the
    same slice: neither is prompted nearer to any slice, so both keep their slices."""
    from napari_sam2.video.volumes import _guard

    shape, nz = (24, 32), 6
    a, c = _disc(shape, (12, 12), 5), _disc(shape, (12, 15), 5)
    assert np.count_nonzero(a & c) > 0.5 * np.count_nonzero(a)
    image = np.zeros((nz, *shape), np.float32)
    image[:, a | c] = 1.0
    found = _found(shape, {1: {z: a for z in range(nz)}, 2: {z: c for z in range(nz)}})
    _guard(found, {1: 2, 2: 2}, nz, lambda z: image[z])
    assert sorted(found.crops[1]) == sorted(found.crops[2]) == list(range(nz))


def test_guard_ends_cells_stacked_in_z_where_the_other_begins():
    """Cell 1 (slices 0-4, prompted on 2) sits on cell 2 (slices 5-9, prompted on 7), both
    bright; each mask runs on through the other cell (overlap and contrast stay). Past the
    middle, each lies on a cell prompted nearer, so each ends where the other begins."""
    from napari_sam2.video.volumes import _guard

    shape, nz = (24, 32), 10
    a, b = _disc(shape, (12, 14), 5), _disc(shape, (12, 17), 5)
    image = np.zeros((nz, *shape), np.float32)
    image[:5][:, a] = 1.0
    image[5:][:, b] = 1.0
    found = _found(shape, {1: {z: a for z in range(nz)}, 2: {z: b for z in range(nz)}})
    _guard(found, {1: 2, 2: 7}, nz, lambda z: image[z])
    assert sorted(found.crops[1]) == [0, 1, 2, 3, 4]
    assert sorted(found.crops[2]) == [5, 6, 7, 8, 9]


def test_guard_on_tracked_start_slices_uses_the_share_rise():
    """Start slices found by tracking (3-D + time) claim nothing: touching cells whose masks
    overlap ~60 % from their start slices keep going; a mask that slides wholly onto its
    neighbour (its share rises by more than SHARED_RISE) ends there."""
    from napari_sam2.video.volumes import _guard

    shape, nz = (24, 32), 6
    a, c = _disc(shape, (12, 12), 5), _disc(shape, (12, 15), 5)
    image = np.zeros((nz, *shape), np.float32)
    image[:, a | c] = 1.0
    masks = {1: {z: a for z in range(nz)}, 2: {z: c for z in range(nz)}}
    found = _found(shape, masks)
    _guard(found, {1: 2, 2: 3}, nz, lambda z: image[z], claims=False)
    assert sorted(found.crops[1]) == sorted(found.crops[2]) == list(range(nz))
    found = _found(shape, masks)  # the same start slices as prompts: each ends where the
    _guard(found, {1: 2, 2: 3}, nz, lambda z: image[z])  # other was prompted nearer
    assert sorted(found.crops[1]) == [0, 1, 2] and sorted(found.crops[2]) == [3, 4, 5]
    path = {z: _disc(shape, (12, x), 5) for z, x in enumerate((24, 24, 24, 19, 14, 12))}
    for z, m in path.items():  # cell 3 drifts onto cell 1 (bright all the way)
        image[z][m] = 1.0
    found = _found(shape, {1: {z: a for z in range(nz)}, 3: path})
    _guard(found, {1: 2, 3: 1}, nz, lambda z: image[z], claims=False)
    assert sorted(found.crops[3]) == [0, 1, 2, 3]  # on 4 and 5 it lies on cell 1


def test_prompted_objects_end_where_their_mask_went_to_a_neighbour():
    """After the overlaps are shared out, a prompted object left with a sliver of its own
    mask on a slice (the rest lay deeper in a neighbour's mask) ends there: the sliver and
    every slice beyond are erased; a slice where it kept most of its mask stays."""
    from napari_sam2.video.volumes import MIN_KEPT_SHARE, _end_where_outweighed

    shape, nz = (24, 32), 8
    a = _disc(shape, (12, 12), 6)
    found = _found(shape, {1: {z: a for z in range(nz)}})
    labels = np.zeros((nz, *shape), np.uint16)
    labels[:, a] = 1
    sliver = a & (np.arange(shape[1]) < 8)  # what it kept on slices 5-7
    assert 0 < sliver.sum() < MIN_KEPT_SHARE * a.sum()
    labels[5:][:, a & ~sliver] = 2  # a neighbour's deeper mask won the rest
    _end_where_outweighed(labels, found, {1: 2})
    assert [int((labels[z] == 1).sum()) for z in range(nz)] == [int(a.sum())] * 5 + [0] * 3
    assert (labels[5:][:, a & ~sliver] == 2).all()  # the neighbour's voxels stay its own
