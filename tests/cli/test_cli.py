"""The ``napari-sam2`` console script, run in subprocesses (random-weight ``test_tiny_256``).

A few error paths that need no separate process (the file checks, an empty result) call
``napari_sam2.cli.main`` in process to keep the suite fast; they exercise the same code.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import cli_env, error_lines, interrupt_segment
from napari_sam2 import cli
from napari_sam2.cli.demo import interior_points
from napari_sam2.io.prompt_csv import read_point_prompts, write_point_prompts
from napari_sam2.io.tiff import load_labels_tiff, read_pixel_size

# ----------------------------------------------------------------------------- help, models


def test_help_teaches_with_examples(run_cli):
    top = run_cli("--help")
    assert top.returncode == 0
    assert "napari-sam2 demo" in top.stdout and "segment" in top.stdout
    seg = run_cli("segment", "--help")
    assert seg.returncode == 0
    for text in (
        "examples:",
        "--num-memory-frames",
        "--non-overlap",
        "axis-0",
        "frame,y,x",
        "index,shape-type,vertex-index",
        "--seed-labels",
        "--find-cells",
        "--divisions",
    ):
        assert text in seg.stdout
    bare = run_cli()
    assert bare.returncode == 2 and "usage" in bare.stderr


def test_models_listing(run_cli, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "sam2.1_hiera_small.pt").write_bytes(b"x" * 1000)  # an interrupted copy
    proc = run_cli("models", cache=cache)
    assert proc.returncode == 0, proc.stderr
    assert f"checkpoint cache: {cache}" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("sam2.1_hiera_small"))
    assert "partial" in row and "184.4 MB" in row
    assert re.search(r"^sam2\.1_hiera_tiny\s+156\.0 MB\s+no\s", proc.stdout, re.M)
    listing = json.loads(run_cli("models", "--json", cache=cache).stdout)
    assert listing["cache_dir"] == str(cache)
    names = [m["name"] for m in listing["models"]]
    assert names[0] == "micro" and "sam2.1_hiera_large" in names


def test_models_download_unknown_name(run_cli):
    proc = run_cli("models", "--download", "sam3_huge")
    assert proc.returncode == 1
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "unknown model 'sam3_huge'" in lines[0] and "sam2.1_hiera_tiny" in lines[0]


# ----------------------------------------------------------------------------- demo / segment


def test_demo_writes_its_files(demo_dir):
    from PIL import Image

    for name in ("movie.tif", "labels.tif", "ground_truth.tif", "prompts.csv", "preview.png"):
        assert (demo_dir / name).is_file(), name
    movie = tifffile.imread(demo_dir / "movie.tif")
    labels = load_labels_tiff(demo_dir / "labels.tif")
    assert movie.shape == labels.shape == (4, 96, 96)
    prompts = read_point_prompts(demo_dir / "prompts.csv")
    truth = load_labels_tiff(demo_dir / "ground_truth.tif")
    assert prompts and all(truth[0, int(p.y), int(p.x)] == p.obj_id for p in prompts)
    with Image.open(demo_dir / "preview.png") as im:
        assert im.mode == "RGB" and im.size[1] == 96
    out = (demo_dir / "stdout.txt").read_text()
    assert f"seeded {len(prompts)} cells" in out
    assert re.search(r"test_tiny_256 on cpu: \d+\.\d+ s per frame", out)
    assert re.search(r"mean IoU vs ground truth: \d\.\d{3}", out)


def test_demo_without_bundled_model_says_so(tmp_path, capsys, monkeypatch):
    import napari_sam2.weights.registry as registry

    monkeypatch.setattr(registry, "bundled_checkpoint_path", lambda: tmp_path / "micro.pt")
    assert cli.main(["demo", "--out", str(tmp_path / "d"), "-q"]) == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "bundled 'micro' model is not installed" in lines[0]
    assert "--model sam2.1_hiera_tiny" in lines[0]


def test_segment_napari_csv_boxes_ctc_and_measurements(demo_dir, tmp_path, run_cli):
    ctc_metrics = pytest.importorskip("ctc_metrics")
    from test_prompt_files import save_with_napari

    # the demo's movie with a pixel size of 0.5 um, which the labels must keep
    movie = tmp_path / "movie.tif"
    data = tifffile.imread(demo_dir / "movie.tif")
    tifffile.imwrite(
        movie, data, imagej=True, resolution=(2.0, 2.0), metadata={"axes": "TYX", "unit": "um"}
    )
    clicks = read_point_prompts(demo_dir / "prompts.csv")
    points = tmp_path / "points.csv"  # written by napari's own Points-layer CSV writer
    save_with_napari(
        points,
        np.array([[p.frame, p.y, p.x] for p in clicks]),
        {"obj_id": [p.obj_id for p in clicks], "positive": [p.positive for p in clicks]},
    )
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("frame,y0,x0,y1,x1,obj_id\n1,2,2,30,30,50\n")
    out, ctc, csv = tmp_path / "labels.tif", tmp_path / "01_RES", tmp_path / "cells.csv"
    proc = run_cli(
        "segment",
        movie,
        "--prompts",
        points,
        "--boxes",
        boxes,
        "--model",
        "test_tiny_256",
        "--out",
        out,
        "--ctc",
        ctc,
        "--csv",
        csv,
        "--num-memory-frames",
        3,
        "--non-overlap",
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"segmented \d+ object\(s\) on 4 frames of 96 x 96 px", proc.stdout)
    labels = load_labels_tiff(out)
    assert labels.shape == (4, 96, 96) and labels.any()
    assert set(np.unique(labels)) <= {0, 50} | {p.obj_id for p in clicks}
    assert read_pixel_size(out) == pytest.approx((0.5, 0.5))
    assert int(ctc_metrics.validate_sequence(str(ctc), threads=1)["Valid"]) == 1
    header, *rows = csv.read_text().splitlines()
    assert header.split(",")[:3] == ["frame", "obj_id", "area"] and "score" in header
    assert len(rows) == sum(len(np.unique(f)) - (0 in f) for f in labels)


def test_malformed_row_gives_line_number(run_cli, demo_dir, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("frame,y,x,obj_id,positive\n0,10,10,1,1\n0,10,ten,2,1\n")
    proc = run_cli("segment", demo_dir / "movie.tif", "--prompts", bad, "--model", "test_tiny_256")
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [
        "napari-sam2: error: bad.csv, line 3: x 'ten' is not a number"
    ]
    assert "Traceback" not in proc.stderr


def test_prompt_outside_image(run_cli, demo_dir, tmp_path):
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("frame,y,x,obj_id\n0,10,10,1\n0,40,120,2\n")
    proc = run_cli(
        "segment",
        demo_dir / "movie.tif",
        "--prompts",
        clicks,
        "--model",
        "test_tiny_256",
        "--out",
        tmp_path / "never.tif",
    )
    assert proc.returncode == 1
    lines = [line for line in error_lines(proc.stderr) if not line.startswith("model:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "clicks.csv, line 3: point (y=40, x=120) is outside the image (96 x 96" in lines[0]
    assert not (tmp_path / "never.tif").exists()


def test_bad_movies_one_line_errors(tmp_path, capsys, demo_dir):
    prompts = str(demo_dir / "prompts.csv")
    text = tmp_path / "notes.tif"
    text.write_text("not an image")
    four_d = tmp_path / "four_d.tif"
    tifffile.imwrite(four_d, np.zeros((5, 6, 32, 32), np.uint8))
    cases = [
        (tmp_path / "missing.tif", "movie not found"),
        (text, "cannot read notes.tif as a TIFF file"),
        (four_d, "Pass --axes, e.g. --axes 'TCYX'"),
    ]
    for path, message in cases:
        rc = cli.main(["segment", str(path), "--prompts", prompts, "--model", "test_tiny_256"])
        lines = error_lines(capsys.readouterr().err)
        lines = [line for line in lines if not line.startswith("model:")]
        assert rc == 1 and len(lines) == 1 and message in lines[0], (path, lines)
    with pytest.raises(ValueError, match="Cannot tell which axis"):  # --debug: the traceback
        cli.main(
            ["segment", str(four_d), "--prompts", prompts, "--model", "test_tiny_256", "--debug"]
        )


def test_empty_result_is_an_error(tmp_path, capsys, demo_dir):
    import torch

    from napari_sam2.model.config import get_config
    from napari_sam2.model.sam2 import SAM2Model
    from napari_sam2.weights.load import save_checkpoint

    model = SAM2Model(get_config("test_tiny_256"))
    with torch.no_grad():  # no mask ever: the decoder's mask output weights are zero
        for name, p in model.named_parameters():
            if "output_hypernetworks_mlps" in name:
                p.zero_()
    ckpt = save_checkpoint(tmp_path / "blind.pt", model)
    out = tmp_path / "labels.tif"
    rc = cli.main(
        [
            "segment",
            str(demo_dir / "movie.tif"),
            "--prompts",
            str(demo_dir / "prompts.csv"),
            "--model",
            str(ckpt),
            "--out",
            str(out),
            "-q",
        ]
    )
    lines = error_lines(capsys.readouterr().err)
    assert rc == 1 and len(lines) == 1 and "the result is empty" in lines[0]
    assert not out.exists()


def test_sigint_writes_the_finished_frames(tmp_path):
    import torch

    from napari_sam2.model.config import get_config
    from napari_sam2.model.sam2 import SAM2Model
    from napari_sam2.train.synthetic import make_movie
    from napari_sam2.video.movie_run import build_session, propagate_frames
    from napari_sam2.weights.load import load_model, save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "tiny.pt", SAM2Model(get_config("test_tiny_256")))
    n_frames = 80
    synth = make_movie(kind="nuclei", n_frames=n_frames, shape=(64, 64), n_cells=3, seed=1)
    movie = tmp_path / "long.tif"
    tifffile.imwrite(movie, synth.movie, imagej=True, metadata={"axes": "TYX"})
    seeds = interior_points(synth.labels[0], min_area=5)
    clicks = write_point_prompts(
        tmp_path / "clicks.csv", [(0, y, x, i) for i, (y, x) in seeds.items()]
    )
    out = tmp_path / "labels.tif"
    code, err = interrupt_segment(
        [str(movie), "--prompts", str(clicks), "--model", str(ckpt), "--out", str(out)]
    )
    assert code == 130, err
    m = re.search(rf"interrupted after (\d+) of {n_frames} frames: wrote the finished frames", err)
    assert m, err
    n_done = int(m.group(1))
    assert 1 <= n_done < n_frames

    labels = load_labels_tiff(out)  # a complete, readable TIFF
    assert labels.shape == (n_frames, 64, 64)
    assert labels[:n_done].any() and not labels[n_done:].any()
    # the finished frames are those of an uninterrupted run with the same weights
    session = build_session(str(movie), read_point_prompts(clicks), model=load_model(ckpt))
    _, frames = propagate_frames(session)
    for _, _result in zip(range(n_done), frames):
        pass
    reference = session.labels()[:n_done].copy()
    session.frames.close()
    # same weights, same code; where two random-weight objects overlap, the label streamed to
    # disk by the CLI and the in-process volume may give a pixel to the other object
    assert (labels[:n_done] == reference).mean() > 0.999
    assert set(np.unique(labels[:n_done])) == set(np.unique(reference))


def test_failure_midway_keeps_finished_frames(tmp_path, capsys, demo_dir, monkeypatch):
    from napari_sam2.video.session import VideoSession

    original = VideoSession._propagate_frame
    calls = []

    def flaky(self, t, objects, reverse, ahead=None):
        calls.append(t)
        if len(calls) == 3:
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(self, t, objects, reverse, ahead)

    monkeypatch.setattr(VideoSession, "_propagate_frame", flaky)
    out = tmp_path / "labels.tif"
    argv = ["segment", str(demo_dir / "movie.tif"), "--prompts", str(demo_dir / "prompts.csv")]
    rc = cli.main([*argv, "--model", "test_tiny_256", "--out", str(out), "-q"])
    lines = error_lines(capsys.readouterr().err)
    assert rc == 1 and len(lines) == 1, lines
    assert "failed after 2 frame(s): CUDA out of memory (simulated)" in lines[0]
    assert "wrote the finished frames (0-1)" in lines[0]
    labels = load_labels_tiff(out)
    assert labels.shape == (4, 96, 96) and not labels[2:].any()


# ----------------------------------------------------------------------------- training


def test_train_two_steps_then_resume_to_three(run_cli, tmp_path, capsys):
    out = tmp_path / "run"
    flags = [
        "--config",
        "test_tiny_256",
        "--clip-len",
        2,
        "--max-objects",
        1,
        "--correction-rounds",
        0,
        "--frame-size",
        64,
        "--out",
        out,
    ]
    first = run_cli("train", "--steps", 2, *flags)
    assert first.returncode == 0, first.stderr
    assert "trained to step 2" in first.stdout
    second = run_cli("train", "--steps", 3, *flags)
    assert second.returncode == 0, second.stderr
    assert f"resuming from {out / 'last.pt'} at step 2" in second.stderr
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    from napari_sam2.weights.load import load_model, read_checkpoint

    _, config = read_checkpoint(out / "model.pt")
    assert config.name == "test_tiny_256"
    assert load_model(out / "model.pt").config.image_size == 256
    assert cli.main(["train", "--steps", "3", *map(str, flags)]) == 0  # in process: quick
    assert "nothing to do" in capsys.readouterr().out


def test_finetune_one_step(run_cli, demo_dir, tmp_path, capsys):
    out = tmp_path / "ft"
    proc = run_cli(
        "finetune",
        "test_tiny_256",
        "--movie",
        demo_dir / "movie.tif",
        "--labels",
        demo_dir / "ground_truth.tif",
        "--steps",
        1,
        "--clip-len",
        2,
        "--max-objects",
        1,
        "--freeze-image-encoder",
        "--out",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "model.pt").is_file() and (out / "last.pt").is_file()
    rc = cli.main(
        [
            "finetune",
            "test_tiny_256",
            "--movie",
            str(demo_dir / "movie.tif"),
            "--labels",
            str(demo_dir / "prompts.csv"),
            "--out",
            str(out),
        ]
    )
    lines = error_lines(capsys.readouterr().err)
    assert (
        rc == 1
        and len(lines) == 1
        and "cannot read labels" in lines[0]
        and "not a TIFF" in lines[0]
    )


# ----------------------------------------------------------------------------- example script


def test_example_script_runs(tmp_path):
    script = Path(__file__).resolve().parents[2] / "examples" / "segment_tiff.py"
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            "--model",
            "test_tiny_256",
            "--frames",
            "3",
            "--out",
            str(tmp_path / "labels.tif"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=cli_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert load_labels_tiff(tmp_path / "labels.tif").shape == (3, 128, 128)
    assert (tmp_path / "labels_RES" / "res_track.txt").is_file()
    assert (tmp_path / "labels.csv").read_text().startswith("frame,obj_id,area")


def test_compile_without_a_compiler_is_a_one_line_error(tmp_path, capsys, demo_dir, monkeypatch):
    import shutil

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    movie, prompts = str(demo_dir / "movie.tif"), str(demo_dir / "prompts.csv")
    rc = cli.main(["segment", movie, "--prompts", prompts, "--model", "test_tiny_256",
                   "--device", "cpu", "--compile", "--out", str(tmp_path / "x.tif")])
    lines = error_lines(capsys.readouterr().err)
    assert rc == 1 and len(lines) == 1, lines
    assert "needs a C++ compiler" in lines[0] and "apt-get install g++" in lines[0]
    assert not (tmp_path / "x.tif").exists()


def test_objects_too_small_for_the_model_are_named_with_the_fix(tmp_path, capsys):
    movie = np.zeros((2, 300, 900), np.uint16)  # 300 x 900 px shrunk to 256 x 256
    movie[:, 100:130, 400:430] = 2000
    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TYX"})
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("0,98,398,132,432,1\n0,0,0,299,899,2\n")  # a 34-px cell, the whole frame
    rc = cli.main(["segment", str(path), "--boxes", str(boxes), "--model", "test_tiny_256",
                   "--device", "cpu", "--zoom", "off", "--out", str(tmp_path / "out.tif")])
    lines = error_lines(capsys.readouterr().err)
    warn = [line for line in lines if line.startswith("warning: object(s) 1:")]
    assert rc == 0 and len(warn) == 1, lines
    assert "spans only ~29 x 10 px" in warn[0] and "--roi or --tile" in warn[0]


def test_seeded_cells_too_small_for_the_model_are_named(tmp_path, capsys):
    movie = np.zeros((2, 300, 900), np.uint16)
    movie[:, 100:130, 400:430] = 2000
    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TYX"})
    seed = np.zeros((300, 900), np.uint16)
    seed[100:130, 400:430] = 7  # 30 x 30 px: ~26 x 9 px at the model's input
    seed[0:300, 0:300] = 8  # 256 x 85 px: large enough
    tifffile.imwrite(tmp_path / "seed.tif", seed)
    rc = cli.main(["segment", str(path), "--seed-labels", str(tmp_path / "seed.tif"),
                   "--model", "test_tiny_256", "--device", "cpu", "--zoom", "off",
                   "--out", str(tmp_path / "out.tif")])
    lines = error_lines(capsys.readouterr().err)
    warn = [line for line in lines if line.startswith("warning: object(s) 7:")]
    assert rc == 0 and len(warn) == 1 and "~26 x 9 px" in warn[0], lines
