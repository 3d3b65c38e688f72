"""VideoSession: prompts, propagation semantics, labels, settings, bounded memory, batching."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tifffile

from napari_sam2 import FrameResult, MemorySettings, VideoSession

# ---------------------------------------------------------------------- inputs


def test_accepts_tiff_path_and_dask(model, movie, tmp_path):
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, movie)
    da = pytest.importorskip("dask.array")
    for src in (path, str(path), da.from_array(movie, chunks=(1, 48, 64))):
        s = VideoSession(model, src)
        assert s.num_frames == 8 and s.frame_shape == (48, 64)
        m = s.add_points(0, 1, [[14, 16]], [1])
        assert m.shape == (48, 64) and m.dtype == bool


def test_ambiguous_axes_error(model):
    with pytest.raises(ValueError, match="axes"):
        VideoSession(model, np.zeros((5, 6, 7, 8), np.uint8))


# ---------------------------------------------------------------------- prompts


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda s: s.add_points(0, 1, [[100, 5]], [1]), "outside the image"),
        (lambda s: s.add_points(0, 1, [[5, -1]], [1]), "outside the image"),
        (lambda s: s.add_points(0, 1, np.zeros((0, 2)), []), "no points"),
        (lambda s: s.add_points(0, 1, [[5, 5]], [1, 0]), "one label per point"),
        (lambda s: s.add_points(0, 1, [[5, 5]], [2]), "positive"),
        (lambda s: s.add_box(0, 1, (10, 10, 10, 20)), "empty box"),
        (lambda s: s.add_box(0, 1, (10, 20, 30, 5)), "empty box"),
        (lambda s: s.add_mask(0, 1, np.ones((10, 10), bool)), "shape"),
        (lambda s: s.add_mask(0, 1, np.zeros((48, 64), bool)), "empty"),
        (lambda s: s.add_points(8, 1, [[5, 5]], [1]), "out of range"),
        (lambda s: s.add_points(-1, 1, [[5, 5]], [1]), "out of range"),
        (lambda s: s.add_points(0, 0, [[5, 5]], [1]), ">= 1"),
        (lambda s: s.add_points(0, -3, [[5, 5]], [1]), ">= 1"),
        (lambda s: s.add_points(0, 1.5, [[5, 5]], [1]), "integer"),
        (lambda s: s.propagate().__next__(), "nothing to propagate"),
        (lambda s: s.remove_object(4), "no object"),
    ],
)
def test_bad_prompts_raise_valueerror(model, movie, call, match):
    s = VideoSession(model, movie)
    with pytest.raises(ValueError, match=match):
        call(s)


def test_prompts_return_masks_and_write_labels(model, movie):
    s = VideoSession(model, movie)
    m1 = s.add_points(2, 1, [[16, 18]], [1])
    m2 = s.add_box(2, 2, (25, 38, 40, 52))
    yy, xx = np.mgrid[:48, :64]
    m3 = s.add_mask(5, 3, (yy - 20) ** 2 + (xx - 20) ** 2 < 30)
    for m in (m1, m2, m3):
        assert m.shape == (48, 64) and m.dtype == bool and m.any()
    lab = s.labels()
    assert lab.dtype == np.uint16 and lab.shape == (8, 48, 64)
    assert set(np.unique(lab[2])) <= {0, 1, 2} and (lab[2] == 2).any()
    assert (lab[5] == 3).sum() > 0
    assert s.obj_ids == [1, 2, 3] and s.prompted_frames() == [2, 5]
    # a mask prompt used as output reproduces the mask (up to resampling)
    inter = (m3 & ((yy - 20) ** 2 + (xx - 20) ** 2 < 30)).sum() / m3.sum()
    assert inter > 0.9


def test_object_may_first_appear_on_any_frame(model, movie):
    s = VideoSession(model, movie)
    s.add_points(0, 1, [[14, 16]], [1])
    s.add_points(5, 2, [[32, 41]], [1])
    frames = [r.frame for r in s.propagate(direction="forward")]
    assert frames == list(range(8))
    assert s.prompted_frames(2) == [5]


# ---------------------------------------------------------------------- propagation


def test_propagate_yields_frame_results_at_original_size(model, movie):
    s = VideoSession(model, movie)
    s.add_points(0, 1, [[14, 16]], [1])
    s.add_points(0, 2, [[32, 46]], [1])
    results = list(s.propagate())
    assert [r.frame for r in results] == list(range(8))
    for r in results:
        assert isinstance(r, FrameResult)
        assert r.obj_ids == [1, 2]
        assert r.masks.shape == (2, 48, 64) and r.masks.dtype == bool
        assert r.scores.shape == (2,) and np.all((r.scores >= 0) & (r.scores <= 1))
    assert (s.labels() > 0).reshape(8, -1).any(1).all()


def test_directions_and_stop(model, movie):
    s = VideoSession(model, movie)
    s.add_points(4, 1, [[18, 20]], [1])
    assert [r.frame for r in s.propagate(direction="backward")] == [4, 3, 2, 1, 0]
    assert [r.frame for r in s.propagate(start=4, direction="forward", stop=6)] == [4, 5, 6]
    both = [r.frame for r in s.propagate(start=4, direction="both")]
    assert both == [4, 5, 6, 7, 3, 2, 1, 0]
    with pytest.raises(ValueError, match="direction"):
        next(s.propagate(direction="sideways"))


def test_closing_early_keeps_finished_frames(model, movie):
    s = VideoSession(model, movie)
    s.add_points(0, 1, [[14, 16]], [1])
    gen = s.propagate()
    done = [next(gen).frame for _ in range(3)]
    gen.close()
    lab = s.labels()
    assert done == [0, 1, 2]
    assert all((lab[t] == 1).any() for t in done)
    assert not (lab[3:] > 0).any()
    # a later propagation continues from there
    rest = [r.frame for r in s.propagate(start=3)]
    assert rest == [3, 4, 5, 6, 7] and (lab[7] == 1).any()


def test_correction_replaces_only_visited_frames(model, movie):
    s = VideoSession(model, movie)
    s.add_points(0, 1, [[14, 16]], [1])
    list(s.propagate())
    before = s.labels().copy()
    s.add_points(5, 1, [[30, 30]], [0])
    after_click = s.labels().copy()
    assert np.array_equal(after_click[:5], before[:5])
    assert np.array_equal(after_click[6:], before[6:])
    list(s.propagate(start=5))
    after = s.labels()
    assert np.array_equal(after[:5], before[:5]), "frames before the correction must not change"
    assert s.prompted_frames(1) == [0, 5]


def test_other_objects_and_manual_edits_are_kept(model, movie):
    s = VideoSession(model, movie)
    s.add_points(0, 1, [[14, 16]], [1])
    s.add_points(0, 2, [[32, 46]], [1])
    list(s.propagate())
    lab = s.labels()
    lab[3, 0:5, 0:5] = 9  # a manual edit with another label
    obj2 = lab == 2
    s.add_points(0, 1, [[15, 17], [20, 20]], [1, 1])
    list(s.propagate(obj_ids=[1]))
    assert (lab[3, 0:5, 0:5] == 9).all()
    assert np.array_equal(lab == 2, obj2), "propagating object 1 must not touch object 2"


def test_remove_object_clear_prompts_reset(model, movie):
    s = VideoSession(model, movie)
    s.add_points(0, 1, [[14, 16]], [1])
    s.add_points(0, 2, [[32, 46]], [1])
    list(s.propagate())
    s.remove_object(2)
    assert not (s.labels() == 2).any() and s.obj_ids == [1]
    s.clear_prompts(0, 1)
    assert s.prompted_frames(1) == [] and not (s.labels()[0] == 1).any()
    with pytest.raises(ValueError, match="nothing to propagate"):
        next(s.propagate())
    s.reset()
    assert s.obj_ids == [] and not s.labels().any()


def test_uint32_labels_past_65535(model, movie):
    s = VideoSession(model, movie)
    s.add_points(0, 70000, [[14, 16]], [1])
    assert s.labels().dtype == np.uint32
    assert (s.labels()[0] == 70000).any()


def test_non_overlap(model, movie):
    s = VideoSession(model, movie, settings=MemorySettings(non_overlap=True))
    s.add_points(0, 1, [[14, 16]], [1])
    s.add_points(0, 2, [[16, 18]], [1])  # nearly the same place: masks would overlap
    for r in s.propagate():
        assert not (r.masks[0] & r.masks[1]).any()


def test_external_label_volume(model, movie):
    s = VideoSession(model, movie)
    vol = np.zeros((8, 48, 64), np.uint16)
    vol[1, :3, :3] = 7
    s.set_label_volume(vol)
    s.add_points(0, 1, [[14, 16]], [1])
    list(s.propagate(stop=2))
    assert s.labels() is vol and (vol[0] == 1).any() and (vol[1, :3, :3] == 7).all()
    with pytest.raises(ValueError, match="shape"):
        s.set_label_volume(np.zeros((2, 2, 2), np.uint16))


# ---------------------------------------------------------------------- settings


def test_memory_settings_defaults_match_meta():
    s = MemorySettings()
    assert s.num_memory_frames == 6  # num_maskmem 7 = 1 prompted + 6 recent
    assert s.memory_stride == 1  # memory_temporal_stride_for_eval
    assert s.max_prompted_frames is None  # max_cond_frames_in_attn = -1
    assert s.max_object_pointers == 16  # max_obj_ptrs_in_encoder
    assert s.use_object_pointers and not s.non_overlap
    assert s.fill_holes_area == 8 and s.multimask_first_click


@pytest.mark.parametrize(
    "change, match",
    [
        ({"num_memory_frames": 7}, "num_memory_frames"),
        ({"memory_stride": 0}, "memory_stride"),
        ({"max_object_pointers": 17}, "max_object_pointers"),
        ({"max_prompted_frames": 0}, "max_prompted_frames"),
        ({"fill_holes_area": -1}, "fill_holes_area"),
    ],
)
def test_invalid_settings(model, movie, change, match):
    with pytest.raises(ValueError, match=match):
        VideoSession(model, movie, settings=MemorySettings(**change))
    with pytest.raises(TypeError, match="unknown"):
        MemorySettings().replace(bogus=1)


def test_settings_change_between_propagations(model, movie):
    s = VideoSession(model, movie)
    s.add_points(0, 1, [[14, 16]], [1])
    full = [r.masks.copy() for r in s.propagate()]
    s.settings = s.settings.replace(num_memory_frames=0, use_object_pointers=False)
    none = [r.masks.copy() for r in s.propagate()]
    assert any(not np.array_equal(a, b) for a, b in zip(full[1:], none[1:]))
    # and the selection really follows the settings
    obj = s._objects[1]
    sel = obj.bank.select(5, s.settings, s.num_frames, reverse=False)
    assert [t for t, _ in sel.spatial] == [0] and sel.pointers == []


def test_no_recent_memory_skips_the_memory_encoder(model, movie, monkeypatch):
    """With num_memory_frames=0 a tracked frame's memory would never be attended: it is not
    computed (only prompted frames are encoded), and more memory frames later rebuild it."""
    encoded = []
    real = type(model).encode_memory

    def counting(self, features, masks, *args, **kwargs):
        encoded.append(masks.shape[0])
        return real(self, features, masks, *args, **kwargs)

    monkeypatch.setattr(type(model), "encode_memory", counting)
    s = VideoSession(model, movie, settings=MemorySettings(num_memory_frames=0), workers=1)
    s.add_points(0, 1, [[14, 16]], [1])
    s.add_points(0, 2, [[32, 46]], [1])
    skipped = [r.masks.copy() for r in s.propagate()]
    assert encoded == [2]  # frame 0's two prompted objects, nothing while tracking
    assert all(e.features is None for o in s._objects.values() for e in o.bank.tracked.values())
    assert all(m.any() for m in skipped)

    # the same movie with memory frames: tracked memories are encoded again, frame by frame
    s.settings = s.settings.replace(num_memory_frames=2)
    encoded.clear()
    for _ in s.propagate(start=3):
        pass
    assert encoded == [2] * (s.num_frames - 3)
    sel = s._objects[1].bank.select(5, s.settings, s.num_frames, reverse=False)
    assert len(sel.spatial) == 3  # frame 0 (prompted), frames 3 and 4 (rebuilt)
    sel = s._objects[1].bank.select(3, s.settings, s.num_frames, reverse=False)
    assert len(sel.spatial) == 1  # frames 1, 2 were tracked without memory: skipped


def test_memory_selection_follows_stride_and_limits():
    import torch

    from napari_sam2.video.memory_bank import MemoryBank, MemoryEntry

    bank = MemoryBank(num_maskmem=7)

    def entry():
        return MemoryEntry(torch.zeros(1, 1, 2, 2), torch.zeros(1, 4), torch.zeros(1, 1, 4, 4),
                           torch.ones(1, 1))

    for t in range(0, 40):
        bank.tracked[t] = entry()
    for t in (0, 10, 20, 30):
        bank.cond[t] = bank.tracked.pop(t)
    s = MemorySettings(memory_stride=3, max_prompted_frames=2)
    sel = bank.select(25, s, num_frames=40, reverse=False)
    cond = [e for t, e in sel.spatial if t == 0]
    assert len(cond) == 2  # nearest prompted frame before (20) and after (30)
    picked = {id(e): t for t, e in list(bank.tracked.items()) + list(bank.cond.items())}
    recent = sorted(picked[id(e)] for t, e in sel.spatial if t > 0)
    # previous frame, then every 3rd frame below ((25-2)//3)*3 = 21: 21, 18, 15, 12, 9
    assert recent == [9, 12, 15, 18, 21, 24]
    # pointers: prompted frame 20 (past only), then frames 24..10 except 20 (a selected prompted
    # frame) -- 10 counts, as an unselected prompted frame
    assert len(sel.pointers) == 1 + 14


# ---------------------------------------------------------------------- bounded memory


def test_memory_does_not_grow_with_movie_length(model):
    t, h, w = 60, 32, 32
    movie = np.random.default_rng(0).integers(0, 255, (t, h, w), dtype=np.uint8)
    s = VideoSession(model, movie, settings=MemorySettings(feature_cache_frames=4,
                                                           stored_memory_frames=8))
    s.add_points(0, 1, [[10, 10]], [1])
    sizes = []
    for _r in s.propagate():
        obj = s._objects[1]
        sizes.append((len(obj.bank.tracked), obj.bank.nbytes(), len(s.runner.cached_frames)))
    reach = max((6 + 1) * 1 + 1, 16)
    assert max(n for n, _, _ in sizes) <= reach + 8 + 1
    assert max(f for _, _, f in sizes) <= 4
    assert sizes[-1][1] <= max(b for _, b, _ in sizes[:30]) * 1.01


# ---------------------------------------------------------------------- batching


def test_batched_objects_equal_per_object(model, movie):
    points = {1: [[14, 16]], 2: [[32, 46]], 3: [[40, 10]]}
    together = VideoSession(model, movie)
    for i, p in points.items():
        together.add_points(0, i, p, [1])
    joint = {r.frame: r for r in together.propagate()}
    for k, (i, p) in enumerate(points.items()):
        alone = VideoSession(model, movie)
        alone.add_points(0, i, p, [1])
        for r in alone.propagate():
            a, b = r.masks[0], joint[r.frame].masks[k]
            union = (a | b).sum()
            assert union == 0 or (a & b).sum() / union >= 0.995


def test_chunked_equals_unchunked(model, movie):
    runs = []
    for chunk in (None, 1):
        s = VideoSession(model, movie, object_chunk_size=chunk)
        for i, p in {1: [[14, 16]], 2: [[32, 46]], 3: [[40, 10]]}.items():
            s.add_points(0, i, p, [1])
        runs.append([r.masks for r in s.propagate()])
    for a, b in zip(*runs):
        assert (a == b).mean() > 0.999


def test_image_encodings_are_cached_for_repropagation(model, movie):
    s = VideoSession(model, movie)
    s.add_points(0, 1, [[14, 16]], [1])
    list(s.propagate())
    n = s.stats["image_encodings"]
    assert n == 8
    s.add_points(4, 1, [[20, 21]], [1])
    list(s.propagate(start=4))
    assert s.stats["image_encodings"] == n  # all 8 frames fit the default cache of 16


def test_bf16_precision_runs_and_agrees(model, movie):
    ref = VideoSession(model, movie)
    fast = VideoSession(model, movie, precision="bf16")
    for s in (ref, fast):
        s.add_points(0, 1, [[14, 16]], [1])
    a = [r.masks[0] for r in ref.propagate()]
    b = [r.masks[0] for r in fast.propagate()]
    ious = [(x & y).sum() / max((x | y).sum(), 1) for x, y in zip(a, b)]
    assert np.mean(ious) > 0.8
    with pytest.raises(ValueError, match="precision"):
        VideoSession(model, movie, precision="fp8")


def test_frame_result_is_a_dataclass():
    assert dataclasses.is_dataclass(FrameResult)
