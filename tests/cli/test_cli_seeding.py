"""``napari-sam2 segment`` with Shapes-layer boxes, seed label images, --find-cells and
--divisions (the console script in subprocesses; a few cases in process, like test_cli.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tifffile

from conftest import error_lines
from napari_sam2 import cli
from napari_sam2.io.tiff import load_labels_tiff, save_labels_tiff


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.count_nonzero(a & b) / max(np.count_nonzero(a | b), 1)


def test_seed_labels_clicks_and_shapes_boxes_together(run_cli, demo_dir, tmp_path):
    from test_prompt_files import _rect, save_shapes_with_napari

    truth = load_labels_tiff(demo_dir / "ground_truth.tif")  # (4, 96, 96), ids 1..
    seed = np.where(truth[2] > 0, truth[2] + 10, 0).astype(np.uint16)  # ids 11.. on frame 2
    seed_ids = sorted(set(np.unique(seed).tolist()) - {0})
    assert seed_ids
    save_labels_tiff(tmp_path / "seed.tif", seed)  # a 2-D label image: the labels of frame 2
    boxes = tmp_path / "boxes.csv"  # napari's Shapes CSV, no obj_id: ids after the labels'
    save_shapes_with_napari(boxes, [_rect(1, 2, 2, 30, 30), _rect(3, 50, 50, 90, 90)])
    out = tmp_path / "labels.tif"
    proc = run_cli(
        "segment",
        demo_dir / "movie.tif",
        "--prompts",
        demo_dir / "prompts.csv",
        "--seed-labels",
        tmp_path / "seed.tif",
        "--seed-frame",
        2,
        "--boxes",
        boxes,
        "--model",
        "test_tiny_256",
        "--out",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    n_clicks = len((demo_dir / "prompts.csv").read_text().splitlines()) - 1
    n_objects = n_clicks + len(seed_ids) + 2
    assert (
        f"{n_objects} object(s), {n_clicks} click(s), 2 box(es), {len(seed_ids)} label(s) "
        "from seed.tif on frame 2"
    ) in proc.stderr
    labels = load_labels_tiff(out)
    box_ids = {max(seed_ids) + 1, max(seed_ids) + 2}
    assert set(np.unique(labels).tolist()) <= {0, *range(1, n_clicks + 1), *seed_ids, *box_ids}
    # a mask prompt gives back its own mask on the seed frame
    for i in seed_ids:
        assert _iou(labels[2] == i, seed == i) > 0.7, i


def test_seed_label_volume_forward_only(run_cli, demo_dir, tmp_path):
    out = tmp_path / "labels.tif"
    proc = run_cli(
        "segment",
        demo_dir / "movie.tif",
        "--seed-labels",
        demo_dir / "ground_truth.tif",  # (T, Y, X): its frame 1 is used
        "--seed-frame",
        1,
        "--direction",
        "forward",
        "--model",
        "test_tiny_256",
        "--out",
        out,
        "-q",
    )
    assert proc.returncode == 0, proc.stderr
    truth = load_labels_tiff(demo_dir / "ground_truth.tif")
    labels = load_labels_tiff(out)
    ids = sorted(set(np.unique(truth[1]).tolist()) - {0})
    assert not labels[0].any()  # forward from the seed frame: frame 0 is never reached
    assert sorted(set(np.unique(labels[1]).tolist()) - {0}) == ids
    for i in ids:
        assert _iou(labels[1] == i, truth[1] == i) > 0.7, i


def test_seed_and_find_cells_errors(tmp_path, capsys, demo_dir):
    movie = str(demo_dir / "movie.tif")
    empty = tmp_path / "empty.tif"
    tifffile.imwrite(empty, np.zeros((96, 96), np.uint16))
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.ones((50, 60), np.uint16))
    cases = [
        (["--seed-frame", "2", "--prompts", str(demo_dir / "prompts.csv")], "--seed-frame needs"),
        (["--seed-labels", str(empty)], "empty.tif holds no label (all 0) for frame 0"),
        (["--seed-labels", str(small)], "seed labels are 50 x 60 px but the movie's frames are"),
        (
            ["--seed-labels", str(demo_dir / "ground_truth.tif"), "--seed-frame", "7"],
            "ground_truth.tif holds 4 frames (T, Y, X); frame 7 is out of range",
        ),
        (["--grid-points", "8", "--seed-labels", str(small)], "--grid-points needs --find-cells"),
        (["--find-cells", "9"], "find_cells frame 9 is out of range: the movie has frames 0..3"),
        (["--find-cells", "1", "--grid-points", "2"], "no cell was found on frame 1"),
        (["--seed-labels", str(small), "--divisions", "--direction", "backward"], "forward"),
        ([], "give prompts: --prompts CLICKS.csv, --boxes BOXES.csv, --seed-labels"),
    ]
    for flags, message in cases:
        rc = cli.main(["segment", movie, *flags, "--model", "test_tiny_256", "-q"])
        lines = error_lines(capsys.readouterr().err)
        assert rc == 1 and len(lines) == 1 and message in lines[0], (flags, lines)


def test_find_cells(run_cli, demo_dir, tmp_path):
    # random weights: masks cover most of the frame, so the filters are opened up
    out = tmp_path / "labels.tif"
    proc = run_cli(
        "segment",
        demo_dir / "movie.tif",
        "--find-cells",
        1,
        "--grid-points",
        4,
        "--min-iou",
        0,
        "--min-stability",
        0,
        "--max-cell-area",
        96 * 96,
        "--model",
        "test_tiny_256",
        "--out",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    m = re.search(
        r"(\d+) object\(s\), 0 click\(s\), 0 box\(es\), (\d+) cell\(s\) found on frame 1",
        proc.stderr,
    )
    assert m and m.group(1) == m.group(2) and int(m.group(1)) >= 1, proc.stderr
    labels = load_labels_tiff(out)
    found = set(range(1, int(m.group(1)) + 1))
    assert set(np.unique(labels[1]).tolist()) - {0} <= found and labels[1].any()


def test_divisions_write_a_valid_ctc_folder(run_cli, demo_dir, tmp_path):
    ctc_metrics = pytest.importorskip("ctc_metrics")
    ctc = tmp_path / "01_RES"
    proc = run_cli(
        "segment",
        demo_dir / "movie.tif",
        "--seed-labels",
        demo_dir / "ground_truth.tif",
        "--seed-frame",
        1,
        "--divisions",
        "--model",
        "test_tiny_256",
        "--ctc",
        ctc,
        "--out",
        tmp_path / "labels.tif",
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(
        rf"^divisions: \d+ \(lineage in {re.escape(str(ctc))}/res_track.txt\)", proc.stdout, re.M
    ), proc.stdout
    assert int(ctc_metrics.validate_sequence(str(ctc), threads=1)["Valid"]) == 1
    labels = load_labels_tiff(tmp_path / "labels.tif")
    tracks = np.loadtxt(ctc / "res_track.txt", dtype=int, ndmin=2)  # L B E P
    assert len(tracks) >= len(np.unique(labels[1])) - 1


def test_a_division_reaches_res_track(tmp_path, capsys, monkeypatch):
    """One cell splits in two on frame 3: with --divisions the mother's track ends on frame 2
    and the two daughters (new ids) name her as parent in res_track.txt. The model is replaced
    by a stand-in that "tracks" the true pieces (random weights cannot)."""
    from scipy import ndimage

    from napari_sam2.video._sparse import MaskCrop
    from napari_sam2.video.session import FrameResult, VideoSession

    t_len, size = 7, 64
    truth = np.zeros((t_len, size, size), np.uint8)
    truth[:3, 20:40, 16:48] = 1  # one cell on frames 0-2 ...
    truth[3:, 20:40, 16:30] = 1  # ... two from frame 3 on
    truth[3:, 20:40, 34:48] = 1
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(
        movie, (truth * 200 + 20).astype(np.uint8), imagej=True, metadata={"axes": "TYX"}
    )
    save_labels_tiff(tmp_path / "seed.tif", truth[0].astype(np.uint16))

    def tracked(self, t, objects, reverse, ahead=None):  # noqa: ARG001 - VideoSession._propagate_frame
        pieces, _ = ndimage.label(truth[t])
        ids, masks = [], []
        for obj in objects:
            prompt = obj.prompts[min(obj.prompts)].mask  # where the object was seeded
            hit = np.unique(pieces[prompt & (pieces > 0)])
            masks.append(np.isin(pieces, hit) & (pieces > 0))
            ids.append(obj.obj_id)
        stack = np.stack(masks)
        self.label_volume.write(t, ids, [MaskCrop(0, 0, np.where(m, 10.0, -10.0)) for m in stack])
        return FrameResult(t, ids, stack, np.ones(len(ids), np.float32))

    monkeypatch.setattr(VideoSession, "_propagate_frame", tracked)
    ctc = tmp_path / "01_RES"
    rc = cli.main(
        [
            "segment",
            str(movie),
            "--seed-labels",
            str(tmp_path / "seed.tif"),
            "--divisions",
            "--model",
            "test_tiny_256",
            "--ctc",
            str(ctc),
            "--out",
            str(tmp_path / "labels.tif"),
            "-q",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert f"divisions: 1 (lineage in {ctc / 'res_track.txt'}): 1 -> 2, 3" in out
    assert (ctc / "res_track.txt").read_text().split("\n")[:3] == ["1 0 2 0", "2 3 6 1", "3 3 6 1"]
    labels = load_labels_tiff(tmp_path / "labels.tif")
    assert set(np.unique(labels[:3]).tolist()) == {0, 1}
    assert set(np.unique(labels[3:]).tolist()) == {0, 2, 3}
    ctc_metrics = pytest.importorskip("ctc_metrics")
    assert int(ctc_metrics.validate_sequence(str(ctc), threads=1)["Valid"]) == 1
