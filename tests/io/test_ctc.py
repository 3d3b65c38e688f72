"""Tests for napari_sam2.io.ctc, checked with the community validator/metrics (py-ctcmetrics)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

ctc_metrics = pytest.importorskip("ctc_metrics")

from napari_sam2.io.ctc import (  # noqa: E402
    TrackSegment,
    save_ctc,
    save_ctc_ground_truth,
    track_segments,
)


def _read_tracks(path) -> list[tuple[int, int, int, int]]:
    return [tuple(int(v) for v in line.split()) for line in path.read_text().splitlines()]


def _validate(folder) -> int:
    return int(ctc_metrics.validate_sequence(str(folder), threads=1)["Valid"])


def _movie_with_gaps_and_divisions(T: int = 8) -> tuple[np.ndarray, dict[int, int]]:
    """(T, 20, 20) labels:
    1: frames 0-2, gone 3-4, back 5-7 (gap);
    2: frames 0-3, divides into 3 and 4 (frames 4-7);
    5: frames 2-7 and keeps its id while giving birth to 6 at frame 5.
    """
    lab = np.zeros((T, 20, 20), np.int32)
    for t in range(T):
        if t not in (3, 4):
            lab[t, 1:4, 1:4] = 1
        if t < 4:
            lab[t, 10:14, 10:14] = 2
        else:
            lab[t, 10:13, 10:12] = 3
            lab[t, 14:17, 10:12] = 4
        if t >= 2:
            lab[t, 5:8, 15:18] = 5
        if t >= 5:
            lab[t, 17:19, 1:3] = 6
    return lab, {3: 2, 4: 2, 6: 5}


def test_segments_gaps_and_divisions():
    lab, lineage = _movie_with_gaps_and_divisions()
    segs = track_segments([np.unique(f) for f in lab], lineage)
    assert segs == [
        TrackSegment(1, 1, 0, 2, 0),
        TrackSegment(2, 2, 0, 3, 0),
        TrackSegment(3, 3, 4, 7, 2),
        TrackSegment(4, 4, 4, 7, 2),
        TrackSegment(5, 5, 2, 4, 0),  # mother 5 split at the division
        TrackSegment(6, 6, 5, 7, 5),
        TrackSegment(7, 1, 5, 7, 0),  # reappearance of 1 -> new track, no parent
        TrackSegment(8, 5, 5, 7, 5),  # continuation of 5 after the division
    ]
    linked = track_segments([np.unique(f) for f in lab], lineage, link_gaps=True)
    assert TrackSegment(7, 1, 5, 7, 1) in linked


def test_save_ctc_gaps_and_divisions_is_valid(tmp_path):
    lab, lineage = _movie_with_gaps_and_divisions()
    res = tmp_path / "01_RES"
    assert save_ctc(res, lab, lineage) == res
    names = sorted(p.name for p in res.iterdir())
    assert names == [f"mask{t:03d}.tif" for t in range(8)] + ["res_track.txt"]
    assert _read_tracks(res / "res_track.txt") == [
        (1, 0, 2, 0),
        (2, 0, 3, 0),
        (3, 4, 7, 2),
        (4, 4, 7, 2),
        (5, 2, 4, 0),
        (6, 5, 7, 5),
        (7, 5, 7, 0),
        (8, 5, 7, 5),
    ]
    m0 = tifffile.imread(res / "mask000.tif")
    m6 = tifffile.imread(res / "mask006.tif")
    assert m0.dtype == np.uint16 and m0.shape == (20, 20)
    np.testing.assert_array_equal(m0, lab[0])  # first segments keep their ids
    assert m6[2, 2] == 7 and m6[6, 16] == 8 and m6[18, 2] == 6 and m6[11, 11] == 3
    np.testing.assert_array_equal(m6 > 0, lab[6] > 0)
    assert _validate(res) == 1
    assert _validate(save_ctc(tmp_path / "02_RES", lab, lineage, link_gaps=True)) == 1


def test_validator_rejects_naive_gap_export(tmp_path):
    """Control: writing the raw ids (a track with a gap) is invalid for the validator."""
    lab, _ = _movie_with_gaps_and_divisions()
    res = tmp_path / "01_RES"
    res.mkdir()
    for t, frame in enumerate(lab):
        tifffile.imwrite(res / f"mask{t:03d}.tif", frame.astype(np.uint16))
    rows = []
    for i in np.unique(lab)[1:]:
        frames = np.nonzero((lab == i).any(axis=(1, 2)))[0]
        rows.append(f"{i} {frames[0]} {frames[-1]} 0")
    (res / "res_track.txt").write_text("\n".join(rows) + "\n")
    with pytest.warns(UserWarning):
        assert _validate(res) == 0


@pytest.mark.parametrize("spatial", [(20, 20), (3, 20, 20)])
def test_perfect_result_scores_one(tmp_path, spatial):
    lab2d, lineage = _movie_with_gaps_and_divisions()
    lab = lab2d if len(spatial) == 2 else np.stack([lab2d] * spatial[0], axis=1)
    save_ctc(tmp_path / "01_RES", lab, lineage)
    gt = save_ctc_ground_truth(tmp_path / "01_GT", lab, lineage)
    assert (gt / "TRA" / "man_track.txt").exists()
    seg_names = sorted(p.name for p in (gt / "SEG").iterdir())
    assert seg_names == [f"man_seg{t:03d}.tif" for t in range(8)]
    assert tifffile.imread(gt / "TRA" / "man_track005.tif").shape == spatial
    res = ctc_metrics.evaluate_sequence(
        str(tmp_path / "01_RES"), str(gt), metrics=["SEG", "DET", "TRA"], threads=1
    )
    assert res["SEG"] == pytest.approx(1.0)
    assert res["DET"] == pytest.approx(1.0)
    assert res["TRA"] == pytest.approx(1.0)


def test_imperfect_result_scores_below_one(tmp_path):
    """Control: a result missing the divisions scores lower TRA than 1."""
    lab, lineage = _movie_with_gaps_and_divisions()
    save_ctc(tmp_path / "01_RES", lab)  # no lineage
    gt = save_ctc_ground_truth(tmp_path / "01_GT", lab, lineage, seg_frames=[0, 5])
    assert sorted(p.name for p in (gt / "SEG").iterdir()) == ["man_seg000.tif", "man_seg005.tif"]
    res = ctc_metrics.evaluate_sequence(
        str(tmp_path / "01_RES"), str(gt), metrics=["SEG", "DET", "TRA"], threads=1
    )
    assert res["DET"] == pytest.approx(1.0)
    assert res["TRA"] < 1.0


def test_many_frames_four_digits(tmp_path):
    T = 1001
    lab = np.zeros((T, 4, 4), np.uint16)
    lab[:, 0, 0] = 1
    lab[::2, 2:, 2:] = 2  # object 2 blinks: present every other frame
    res = save_ctc(tmp_path / "01_RES", lab)
    names = sorted(p.name for p in res.glob("mask*.tif"))
    assert len(names) == T and names[0] == "mask0000.tif" and names[-1] == "mask1000.tif"
    tracks = _read_tracks(res / "res_track.txt")
    assert len(tracks) == 1 + 501  # one long track + one per appearance of 2
    assert tracks[0] == (1, 0, 1000, 0)
    assert _validate(res) == 1


def test_large_ids_are_compacted_to_uint16(tmp_path):
    lab = np.zeros((3, 6, 6), np.int64)
    lab[:, :2, :2] = 100_000
    lab[0, 4:, 4:] = 70_000
    lab[2, 4:, 4:] = 70_000  # gap -> a third track
    res = save_ctc(tmp_path / "01_RES", lab)
    assert _read_tracks(res / "res_track.txt") == [(1, 0, 0, 0), (2, 0, 2, 0), (3, 2, 2, 0)]
    m2 = tifffile.imread(res / "mask002.tif")
    assert m2.dtype == np.uint16 and m2[0, 0] == 2 and m2[5, 5] == 3
    assert _validate(res) == 1


def test_stale_masks_removed_and_other_files_kept(tmp_path):
    res = tmp_path / "01_RES"
    lab = np.zeros((5, 4, 4), np.uint8)
    lab[:, 1, 1] = 1
    save_ctc(res, lab)
    (res / "notes.txt").write_text("keep me")
    save_ctc(res, lab[:3])
    assert sorted(p.name for p in res.iterdir()) == [
        "mask000.tif",
        "mask001.tif",
        "mask002.tif",
        "notes.txt",
        "res_track.txt",
    ]
    assert _read_tracks(res / "res_track.txt") == [(1, 0, 2, 0)]


def test_lineage_errors_and_warnings(tmp_path):
    lab = np.zeros((4, 4, 4), np.uint8)
    lab[:, 0, 0] = 1
    lab[2:, 3, 3] = 2
    with pytest.raises(ValueError, match="not present before"):
        save_ctc(tmp_path / "a", lab, {1: 2})  # parent appears after the daughter
    with pytest.raises(ValueError, match="own parent"):
        save_ctc(tmp_path / "b", lab, {1: 1})
    with pytest.warns(UserWarning, match="skipped"):
        save_ctc(tmp_path / "c", lab, {2: 9})
    assert _read_tracks(tmp_path / "c" / "res_track.txt") == [(1, 0, 3, 0), (2, 2, 3, 0)]
    save_ctc(tmp_path / "f", lab, {2: 1})  # mother 1 keeps its id: split at frame 2
    assert _read_tracks(tmp_path / "f" / "res_track.txt") == [
        (1, 0, 1, 0),
        (2, 2, 3, 1),
        (3, 2, 3, 1),
    ]
    assert _validate(tmp_path / "f") == 1
    with pytest.raises(ValueError):
        save_ctc(tmp_path / "d", lab.astype(np.float32))
    with pytest.raises(ValueError):
        save_ctc(tmp_path / "e", lab[0])


def test_failed_write_keeps_previous_result(tmp_path, monkeypatch):
    lab = np.zeros((3, 4, 4), np.uint8)
    lab[:, 1, 1] = 1
    res = save_ctc(tmp_path / "01_RES", lab)
    before = {p.name: p.read_bytes() for p in res.iterdir()}

    def failing_imwrite(file, data, **kwargs):
        file.write(b"II*\x00")
        raise OSError("boom")

    monkeypatch.setattr(tifffile, "imwrite", failing_imwrite)
    with pytest.raises(OSError, match="boom"):
        save_ctc(res, lab * 2)
    assert {p.name: p.read_bytes() for p in res.iterdir()} == before
