"""Per-movie output folders appear in one rename; staging folders never survive; summary CSV."""

from __future__ import annotations

import csv

import pytest

from napari_sam2.batch.outputs import (
    MovieResult,
    finished_result,
    staging_folder,
    sweep_staging,
    write_result_json,
    write_summary,
)


def _finish(out, name, extra=()):
    with staging_folder(out, name) as stage:
        (stage / "labels.tif").write_bytes(b"x")
        for e in extra:
            (stage / e).parent.mkdir(parents=True, exist_ok=True)
            (stage / e).write_text("x")
        write_result_json(stage, {"frames": 4, "objects": 2, "seconds": 1.5})


def test_staging_commits_whole_folder_or_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staging_folder(out, "m") as stage:
        (stage / "labels.tif").write_bytes(b"half")
        assert not (out / "m").exists()
        raise RuntimeError("worker failed")
    assert list(out.iterdir()) == []
    with pytest.raises(KeyboardInterrupt), staging_folder(out, "m") as stage:
        raise KeyboardInterrupt
    assert list(out.iterdir()) == []
    _finish(out, "m")
    assert sorted(p.name for p in out.iterdir()) == ["m"]
    assert finished_result(out, "m", "m.tif", ctc=False, csv=False) == MovieResult(
        "m.tif", "m", "skipped", frames=4, objects=2, seconds=1.5
    )
    # an earlier result folder is replaced as a whole
    with staging_folder(out, "m") as stage:
        (stage / "new.txt").write_text("new")
    assert sorted(p.name for p in (out / "m").iterdir()) == ["new.txt"]
    assert sorted(p.name for p in out.iterdir()) == ["m"]


def test_finished_needs_every_requested_output(tmp_path):
    _finish(tmp_path, "m", extra=["cells.csv"])
    assert finished_result(tmp_path, "m", "m.tif", ctc=False, csv=True) is not None
    assert finished_result(tmp_path, "m", "m.tif", ctc=True, csv=False) is None
    assert finished_result(tmp_path, "other", "o.tif", ctc=False, csv=False) is None
    (tmp_path / "m" / "result.json").write_text("{broken")
    assert finished_result(tmp_path, "m", "m.tif", ctc=False, csv=False) is None


def test_sweep_removes_only_the_named_movies_staging(tmp_path):
    for name in (".a.partial-1", ".a.replaced-2", ".ab.partial-3", ".b.partial-4", "a"):
        (tmp_path / name).mkdir()
    gone = sweep_staging(tmp_path, ["a"])
    assert sorted(p.name for p in gone) == [".a.partial-1", ".a.replaced-2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ab.partial-3", ".b.partial-4", "a"]


def test_summary_csv(tmp_path):
    rows = [
        MovieResult("a.tif", "a", "done", 4, 2, 1.23456, worker="0"),
        MovieResult("b.tif", "b", "failed", error="cannot read b.tif, it is broken"),
    ]
    path = write_summary(tmp_path, rows)
    with open(path, newline="") as fh:
        table = list(csv.reader(fh))
    assert table == [
        ["movie", "status", "frames", "objects", "seconds", "error"],
        ["a.tif", "done", "4", "2", "1.23", ""],
        ["b.tif", "failed", "", "", "", "cannot read b.tif, it is broken"],
    ]
