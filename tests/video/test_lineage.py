"""Division and lost/found tracking: pure logic on hand-made label volumes, plus the session."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_sam2 import FrameResult, VideoSession
from napari_sam2.io.ctc import save_ctc, track_segments
from napari_sam2.io.tracks import tracks_from_labels
from napari_sam2.video.division_propagation import propagate_with_divisions
from napari_sam2.video.lineage import (
    DivisionSettings,
    DivisionTracker,
    TrackEvent,
    track_divisions,
)

H, W = 40, 70


def dividing_blob(
    T: int = 10, split_at: int = 4, merge_at: int | None = None, fragment: bool = False
) -> np.ndarray:
    """(T, H, W) uint16: object 1 (10x20 block drifting right) splits at ``split_at`` into two
    10x9 pieces drifting apart (or sheds a 1-pixel fragment), re-merging at ``merge_at``;
    object 2 is a static bystander."""
    lab = np.zeros((T, H, W), np.uint16)
    for t in range(T):
        lab[t, 30:36, 2:8] = 2
        apart = t >= split_at and (merge_at is None or t < merge_at)
        if not apart:
            lab[t, 10:20, 10 + t : 30 + t] = 1
            continue
        gap = 2 + (t - split_at)
        lab[t, 10:20, 10 + t : 19 + t] = 1
        if fragment:
            lab[t, 10, 19 + t + gap] = 1
        else:
            lab[t, 10:20, 19 + t + gap : 30 + t + gap] = 1
    return lab


def ids(frame: np.ndarray) -> list[int]:
    return [int(i) for i in np.unique(frame) if i]


# ---------------------------------------------------------------------- divisions


def test_split_that_persists_gives_two_daughters():
    lab = dividing_blob()
    out, lineage, events = track_divisions(lab)
    assert lineage == {3: 1, 4: 1}
    assert events == [TrackEvent("division", 4, 1, (3, 4))]
    for t in range(4):
        np.testing.assert_array_equal(out[t], lab[t])  # mother untouched before the split
    for t in range(4, 10):
        assert ids(out[t]) == [2, 3, 4]  # mother ends at frame 3
        np.testing.assert_array_equal(out[t] > 0, lab[t] > 0)  # same pixels, new ids
        # the larger (right, 11 px wide) piece is the first daughter, in every frame
        assert out[t, 15, 29 + t] == 3 and out[t, 15, 10 + t] == 4
        for d in (3, 4):
            assert ndimage.label(out[t] == d)[1] == 1
    assert not lab[4:].__eq__(3).any()  # the input is not modified (not inplace)
    segs = track_segments([ids(f) for f in out], lineage)
    assert [(s.label, s.begin, s.end, s.parent) for s in segs] == [
        (1, 0, 3, 0),
        (2, 0, 9, 0),
        (3, 4, 9, 1),
        (4, 4, 9, 1),
    ]
    _, graph = tracks_from_labels(out, lineage)
    assert graph == {3: [1], 4: [1]}


def test_division_with_instant_loss_setting_and_object_subset():
    lab = dividing_blob()
    # the daughters created on the confirmation frame are present there, not lost
    _, lineage, events = track_divisions(lab, DivisionSettings(lost_frames=1))
    assert lineage == {3: 1, 4: 1} and [e.kind for e in events] == ["division"]
    # only the objects asked for are tracked: object 1 is left alone
    vol = lab.copy()
    tr = DivisionTracker()
    for t in range(10):
        assert tr.update(t, vol[t], obj_ids=[2]) == []
    np.testing.assert_array_equal(vol, lab)


def test_ctc_export_of_a_division_is_valid(tmp_path):
    ctc_metrics = pytest.importorskip("ctc_metrics")
    out, lineage, _ = track_divisions(dividing_blob())
    res = save_ctc(tmp_path / "01_RES", out, lineage)
    lines = (res / "res_track.txt").read_text().split()
    assert lines == "1 0 3 0 2 0 9 0 3 4 9 1 4 4 9 1".split()
    assert int(ctc_metrics.validate_sequence(str(res), threads=1)["Valid"]) == 1


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_split_must_persist_k_frames(k):
    # the pieces stay apart on frames 4..5 (2 frames) then merge again
    lab = dividing_blob(split_at=4, merge_at=6)
    out, lineage, events = track_divisions(lab, DivisionSettings(min_frames=k))
    if k <= 2:
        assert lineage == {3: 1, 4: 1} and events[0].frame == 4
        # after the re-merge the mother's pixels are split between the daughters
        assert ids(out[7]) == [2, 3, 4] and not (out[7] == 1).any()
        np.testing.assert_array_equal(out[7] > 0, lab[7] > 0)
    else:
        assert lineage == {} and events == []
        np.testing.assert_array_equal(out, lab)


def test_tiny_fragment_is_not_a_division():
    lab = dividing_blob(fragment=True)
    out, lineage, events = track_divisions(lab)
    assert lineage == {} and events == []
    np.testing.assert_array_equal(out, lab)
    # a smaller min_fraction / min_area does not make a 1-pixel fragment a daughter either
    _, lineage, _ = track_divisions(lab, DivisionSettings(min_fraction=0.01, min_area=4))
    assert lineage == {}
    # but it does with min_area=1 and a tiny fraction
    _, lineage, _ = track_divisions(lab, DivisionSettings(min_fraction=0.001, min_area=1))
    assert lineage == {3: 1, 4: 1}


def test_unequal_pieces_and_min_fraction():
    lab = np.zeros((6, H, W), np.uint16)
    lab[:2, 10:20, 10:40] = 1  # area 300
    lab[2:, 10:20, 10:33] = 1  # 230 px piece
    lab[2:, 10:20, 35:40] = 1  # 50 px piece = 1/6 of the mother
    assert track_divisions(lab, DivisionSettings(min_fraction=0.2))[1] == {}
    out, lineage, _ = track_divisions(lab, DivisionSettings(min_fraction=0.15))
    assert lineage == {2: 1, 3: 1}
    assert (out[2:, 15, 12] == 2).all() and (out[2:, 15, 37] == 3).all()  # larger piece first


def test_touching_daughters_are_cut_at_a_neck_when_asked():
    yy, xx = np.mgrid[:H, :W]
    lab = np.zeros((8, H, W), np.uint16)
    for t in range(8):
        if t < 3:
            lab[t][(yy - 20) ** 2 + (xx - 35) ** 2 <= 12**2] = 1
        else:  # two disks of radius 8, centres 15 or 16 px apart: half-waist <= 3 px < 8 / 2
            d = 15 + (t - 3) % 2
            for cx in (35 - d / 2, 35 + d / 2):
                lab[t][(yy - 20) ** 2 + (xx - cx) ** 2 <= 8**2] = 1
    assert all(ndimage.label(lab[t] == 1)[1] == 1 for t in range(3, 8))  # touching
    assert track_divisions(lab)[1] == {}
    out, lineage, events = track_divisions(lab, DivisionSettings(neck_ratio=0.5))
    assert lineage == {2: 1, 3: 1} and events[0].frame == 3
    for t in range(3, 8):
        assert ids(out[t]) == [2, 3]
        assert abs(int((out[t] == 2).sum()) - int((out[t] == 3).sum())) <= 6
        assert out[t, 20, 20] in (2, 3) and out[t, 20, 20] != out[t, 20, 50]
    # an ellipse (no waist) is never cut
    ell = np.zeros((6, H, W), np.uint16)
    ell[:, ((yy - 20) / 8.0) ** 2 + ((xx - 35) / 25.0) ** 2 <= 1] = 1
    assert track_divisions(ell, DivisionSettings(neck_ratio=0.5))[1] == {}
    with pytest.raises(ValueError, match="neck_ratio"):
        DivisionSettings(neck_ratio=1.5).validate()


def test_disabled_division_keeps_labels():
    lab = dividing_blob()
    out, lineage, events = track_divisions(lab, DivisionSettings(enabled=False))
    assert lineage == {} and events == []
    np.testing.assert_array_equal(out, lab)


def test_daughter_divides_again():
    lab = dividing_blob(T=14)
    # the right piece splits again from frame 9 on
    for t in range(9, 14):
        lab[t, 10:20, 19 + t + 2 + (t - 4) + 4 : 19 + t + 2 + (t - 4) + 6] = 0
    out, lineage, events = track_divisions(lab)
    assert lineage == {3: 1, 4: 1, 5: 3, 6: 3}  # 3 is the right piece
    assert [e.kind for e in events] == ["division", "division"] and events[1].frame == 9
    assert ids(out[13]) == [2, 4, 5, 6]
    for t in range(9, 14):  # the moving pieces keep their ids and sizes
        assert [(out[t] == i).sum() for i in (4, 5, 6)] == [90, 50, 40]
    _, graph = tracks_from_labels(out, lineage)
    assert graph == {3: [1], 4: [1], 5: [3], 6: [3]}


# ---------------------------------------------------------------------- lost and found


def blinking(gap: tuple[int, int], T: int = 12) -> np.ndarray:
    lab = np.zeros((T, H, W), np.uint16)
    for t in range(T):
        lab[t, 30:36, 2:8] = 2
        if not gap[0] <= t < gap[1]:
            lab[t, 5:15, 10 + t : 20 + t] = 1
    return lab


def test_absent_k_frames_then_back_is_a_new_track():
    lab = blinking((3, 6))  # absent on frames 3, 4, 5
    out, lineage, events = track_divisions(lab)
    assert lineage == {}
    assert events == [TrackEvent("lost", 2, 1), TrackEvent("found", 6, 1, (3,))]
    assert all(ids(out[t]) == [1, 2] for t in range(3))
    assert all(ids(out[t]) == [2, 3] for t in range(6, 12))
    np.testing.assert_array_equal(out > 0, lab > 0)
    segs = track_segments([ids(f) for f in out], lineage)
    assert [(s.label, s.begin, s.end, s.parent) for s in segs] == [
        (1, 0, 2, 0),
        (2, 0, 11, 0),
        (3, 6, 11, 0),  # new id, no parent
    ]


def test_short_absence_keeps_the_id():
    lab = blinking((3, 5))  # absent on 2 frames < k = 3
    out, lineage, events = track_divisions(lab)
    assert events == [] and lineage == {}
    np.testing.assert_array_equal(out, lab)
    out, _, events = track_divisions(lab, DivisionSettings(lost_frames=2))
    assert [e.kind for e in events] == ["lost", "found"] and ids(out[11]) == [2, 3]
    out, _, events = track_divisions(blinking((3, 9)), DivisionSettings(lost_and_found=False))
    assert events == [] and ids(out[11]) == [1, 2]


def test_low_score_counts_as_absent():
    lab = blinking((99, 99), T=8)  # always visible
    scores = [{1: 0.9, 2: 0.9} for _ in range(8)]
    for t in (2, 3, 4):
        scores[t][1] = 0.1  # the model says absent (pixels left over)
    out, _, events = track_divisions(lab, scores=scores)
    assert [(e.kind, e.frame, e.obj_id, e.new_ids) for e in events] == [
        ("lost", 1, 1, ()),
        ("found", 5, 1, (3,)),
    ]
    assert ids(out[7]) == [2, 3]


def test_specks_count_as_absent_and_pieces_from_birth_are_split_without_parent():
    lab = blinking((3, 12))
    lab[7, 5, 20] = 1  # a 1-pixel speck while the object is lost: not a reappearance
    lab[8:, 5:15, 10:16] = 1  # back on frame 8 ...
    lab[8:, 5:15, 20:26] = 1  # ... in two pieces, which persist
    out, lineage, events = track_divisions(lab)
    assert [(e.kind, e.frame, e.obj_id, e.new_ids) for e in events] == [
        ("lost", 2, 1, ()),
        ("found", 8, 1, (3,)),
        ("split", 8, 3, (4, 5)),  # track 3 never was one piece: no mother to link to
    ]
    assert lineage == {}
    assert out[7, 5, 20] == 1 and ids(out[11]) == [2, 4, 5] and not (out == 3).any()


def test_found_object_can_divide_later():
    lab = dividing_blob(T=12, split_at=7)
    lab[2:5][lab[2:5] == 1] = 0  # object 1 absent on frames 2..4
    out, lineage, events = track_divisions(lab)
    assert [e.kind for e in events] == ["lost", "found", "division"]
    assert lineage == {4: 3, 5: 3}  # the found track 3 is the mother
    assert ids(out[11]) == [2, 4, 5] and ids(out[6]) == [2, 3] and ids(out[1]) == [1, 2]


# ---------------------------------------------------------------------- streaming API


def test_tracker_streaming_frame_results_and_checks():
    lab = dividing_blob()
    vol = lab.copy()
    tr = DivisionTracker(DivisionSettings(), next_id=10)
    assert tr.final_frame is None
    got = []
    for t in range(10):
        present = [i for i in (1, 2) if (vol[t] == i).any()]
        res = FrameResult(t, present, np.stack([vol[t] == i for i in present]),
                          np.ones(len(present), np.float32))
        got += tr.update(res, vol[t])
        assert tr.final_frame == t - 2
        if t == 5:
            assert ids(vol[4]) == ids(vol[5]) == [1, 2]  # split seen on 2 frames: pending
        if t == 6:  # division confirmed on frame 6 rewrote frames 4..6
            assert ids(vol[4]) == ids(vol[5]) == ids(vol[6]) == [2, 10, 11]
    assert got == [TrackEvent("division", 4, 1, (10, 11))] == tr.events
    assert tr.lineage == {10: 1, 11: 1}
    assert tr.resolve(1) == [10, 11] and tr.resolve(2) == [2]
    assert tr.track_span(1) == (0, 3) and tr.track_span(10) == (4, 9)
    with pytest.raises(ValueError, match="in order"):
        tr.update(3, vol[3])
    with pytest.raises(ValueError, match="integer"):
        DivisionTracker().update(0, vol[0].astype(float))
    with pytest.raises(ValueError, match="min_frames"):
        DivisionTracker(DivisionSettings(min_frames=0))
    small = DivisionTracker(DivisionSettings(lost_frames=1), next_id=256)
    small.update(0, np.ones((2, 2), np.uint8))
    small.update(1, np.zeros((2, 2), np.uint8))  # lost
    with pytest.raises(ValueError, match="does not fit"):
        small.update(2, np.ones((2, 2), np.uint8))  # found: id 256 is too big for uint8


# ---------------------------------------------------------------------- with the session


def dividing_movie(lab: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(200, 20, lab.shape) + 1500 * (lab > 0), 0, 65535).astype(np.uint16)


def test_session_division_integration(model, tmp_path):
    T = 6
    lab = dividing_blob(T=T, split_at=3)
    s = VideoSession(model, dividing_movie(lab))
    for t in range(T):  # mask prompts on every frame: the session outputs these masks
        s.add_mask(t, 1, lab[t] == 1)
    s.add_mask(0, 2, lab[0] == 2)
    tracker = DivisionTracker(DivisionSettings(min_frames=3))
    results = list(propagate_with_divisions(s, tracker=tracker))
    assert [r.frame for r in results] == list(range(T))
    assert tracker.events == [TrackEvent("division", 3, 1, (3, 4))]
    assert s.lineage == {3: 1, 4: 1}
    assert s.obj_ids == [2, 3, 4]  # the mother is retired, the daughters are objects
    assert s.prompted_frames(3) == [3] and s.prompted_frames(4) == [3]
    out = s.labels()
    for t in range(3):  # the mother's earlier labels are kept
        assert (out[t] == 1).sum() > 150
    for t in range(3, T):
        assert not (out[t] == 1).any()
        assert (out[t] == 3).sum() > 60 and (out[t] == 4).sum() > 60
        assert out[t, 15, 29 + t] == 3 and out[t, 15, 10 + t] == 4
    assert results[2].obj_ids == [1, 2] and results[-1].obj_ids == [3, 4, 2]
    res = save_ctc(tmp_path / "01_RES", out, s.lineage)
    tracks = (res / "res_track.txt").read_text().split()
    assert tracks[:4] == ["1", "0", "2", "0"] and "3 3 5 1" in " ".join(tracks)
    # re-propagating from frame 0: the daughters (prompted on frame 3) stay off frames 0..2
    list(propagate_with_divisions(s, start=0))
    for t in range(3):
        assert not np.isin(s.labels()[t], [3, 4]).any()
        assert (s.labels()[t] == 1).sum() > 150
    assert {3: 1, 4: 1}.items() <= s.lineage.items()
    s.reset()
    assert s.lineage == {}


def test_propagate_with_divisions_needs_labels(model):
    lab = dividing_blob(T=3)
    s = VideoSession(model, dividing_movie(lab), keep_labels=False)
    s.add_mask(0, 1, lab[0] == 1)
    with pytest.raises(ValueError, match="keep_labels"):
        next(propagate_with_divisions(s))
