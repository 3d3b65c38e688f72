"""Nothing lost, nothing silently wrong on the command line: damaged movies, unwritable outputs
and stop signals (random-weight ``test_tiny_256``)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import error_lines, interrupt_segment
from napari_sam2 import cli
from napari_sam2.cli.signals import StopOnSignals
from napari_sam2.io.tiff import load_labels_tiff

N = 12  # frames of the long demo movie


def _model_lines(err: str) -> list[str]:
    return [line for line in error_lines(err) if not line.startswith("model:")]


@pytest.fixture(scope="module")
def long_movie(demo_dir, tmp_path_factory) -> tuple[np.ndarray, Path]:
    """The demo movie repeated to N frames, as zlib-compressed pages and as a plain TIFF."""
    frames = tifffile.imread(demo_dir / "movie.tif")
    movie = np.concatenate([frames] * (N // len(frames)))
    folder = tmp_path_factory.mktemp("long")
    tifffile.imwrite(folder / "zlib.tif", movie, compression="zlib")
    tifffile.imwrite(folder / "plain.tif", movie, imagej=True, metadata={"axes": "TYX"})
    return movie, folder


def _segment(movie: Path, out: Path, prompts: Path, *extra: str) -> int:
    argv = ["segment", str(movie), "--prompts", str(prompts), "--out", str(out)]
    return cli.main([*argv, "--model", "test_tiny_256", "-q", *extra])


# ----------------------------------------------------------------------------- damaged movies


def test_truncated_movie_is_an_error_naming_the_first_bad_frame(
    long_movie, demo_dir, tmp_path, capsys
):
    movie, folder = long_movie
    raw = (folder / "plain.tif").read_bytes()
    cut = tmp_path / "cut.tif"
    with tifffile.TiffFile(folder / "plain.tif") as tif:
        start = tif.series[0].dataoffset
    frame_bytes = movie[0].nbytes
    cut.write_bytes(raw[: start + 7 * frame_bytes + frame_bytes // 3])  # 7 whole frames
    out = tmp_path / "labels.tif"
    prompts = demo_dir / "prompts.csv"

    assert _segment(cut, out, prompts) == 1
    lines = _model_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert f"{cut} is damaged or incomplete" in lines[0]
    assert f"promise {N} frames but frame 7 is missing or cut off" in lines[0]
    assert "pass --allow-partial to use frames 0-6 only" in lines[0]
    assert not out.exists()

    assert _segment(cut, out, prompts, "--allow-partial") == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "using frames 0-6 only" in err
    labels = load_labels_tiff(out)
    assert labels.shape == (7, *movie.shape[1:]) and labels.any()


def test_undecodable_frame_keeps_the_frames_before_it(long_movie, demo_dir, tmp_path, capsys):
    """zlib page 10 damaged: frames 0-9 are written (default read-ahead workers), the error
    names the file and the frame, and the contrast pre-scan does not stop the run first."""
    _, folder = long_movie
    movie = tmp_path / "damaged.tif"
    movie.write_bytes((folder / "zlib.tif").read_bytes())
    with tifffile.TiffFile(movie) as tif:
        offset = tif.pages[10].dataoffsets[0]
    raw = bytearray(movie.read_bytes())
    raw[offset : offset + 8] = b"\xff" * 8
    movie.write_bytes(bytes(raw))
    out = tmp_path / "labels.tif"

    rc = _segment(movie, out, demo_dir / "prompts.csv", "--direction", "forward")
    lines = _model_lines(capsys.readouterr().err)
    assert rc == 1 and len(lines) == 1, lines
    assert f"failed after 10 frame(s): could not read frame 10 of {movie}" in lines[0]
    assert "wrote the finished frames (0-9)" in lines[0]
    labels = load_labels_tiff(out)
    assert labels.shape[0] == N and labels[:10].any() and not labels[10:].any()
    assert not out.with_name("labels.partial.tif").exists()


# ----------------------------------------------------------------------------- outputs


def test_unwritable_output_is_refused_before_any_work(demo_dir, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    prompts = demo_dir / "prompts.csv"
    movie = demo_dir / "movie.tif"
    cases = [
        (["--out", str(blocker / "labels.tif")], f"cannot write --out {blocker / 'labels.tif'}"),
        (["--out", str(tmp_path)], f"cannot write --out {tmp_path}: it is a folder"),
        (
            ["--out", str(tmp_path / "ok.tif"), "--csv", str(blocker / "cells.csv")],
            f"cannot write --csv {blocker / 'cells.csv'}",
        ),
        (
            ["--out", str(tmp_path / "ok.tif"), "--ctc", str(blocker)],
            f"cannot write --ctc {blocker}: it is a file",
        ),
    ]
    for flags, message in cases:
        rc = cli.main(["segment", str(movie), "--prompts", str(prompts), *flags, "-q"])
        lines = error_lines(capsys.readouterr().err)
        # refused before the model is loaded (no "model:" line) and before any frame
        assert rc == 1 and len(lines) == 1 and message in lines[0], (flags, lines)
    assert not (tmp_path / "ok.tif").exists()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write read-only folders"
)
def test_read_only_output_folder_is_refused_before_any_work(demo_dir, tmp_path, capsys):
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        rc = _segment(demo_dir / "movie.tif", folder / "o.tif", demo_dir / "prompts.csv")
    finally:
        folder.chmod(0o755)
    lines = error_lines(capsys.readouterr().err)
    assert rc == 1 and len(lines) == 1
    assert (
        f"cannot write --out {folder / 'o.tif'}: the folder {folder} is not writable" in (lines[0])
    )


def test_output_failing_at_the_end_is_saved_beside_the_movie(
    demo_dir, tmp_path, capsys, monkeypatch
):
    import napari_sam2.cli.label_output as label_output

    movie = tmp_path / "movie.tif"
    movie.write_bytes((demo_dir / "movie.tif").read_bytes())
    out = tmp_path / "results" / "o.tif"
    real_replace = os.replace

    def share_gone(src, dst):
        if Path(dst) == out:
            raise PermissionError(13, "Permission denied", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(label_output.os, "replace", share_gone)
    rc = _segment(movie, out, demo_dir / "prompts.csv")
    lines = error_lines(capsys.readouterr().err)
    fallback = tmp_path / "o.recovered.tif"
    assert rc == 1 and len(lines) == 1, lines
    assert f"could not write {out} (Permission denied)" in lines[0]
    assert f"the labels were saved to {fallback} instead" in lines[0]
    assert load_labels_tiff(fallback).shape == (4, 96, 96) and load_labels_tiff(fallback).any()
    assert not out.exists() and not out.with_name("o.partial.tif").exists()


# ----------------------------------------------------------------------------- signals


def test_stop_on_signals_sets_the_event_then_stops_at_once():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    told: list[str] = []
    with StopOnSignals(on_first=told.append) as stop:
        signal.raise_signal(signal.SIGTERM)
        assert stop.event.is_set() and told == ["SIGTERM"] and stop.exit_code == 143
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert {s: signal.getsignal(s) for s in before} == before


@pytest.fixture(scope="module")
def signal_movie(tmp_path_factory):
    """80 frames of 64 x 64 px, clicks on 3 cells, a fixed random-weight checkpoint."""
    import torch

    from napari_sam2.cli.demo import interior_points
    from napari_sam2.io.prompt_csv import write_point_prompts
    from napari_sam2.model.config import get_config
    from napari_sam2.model.sam2 import SAM2Model
    from napari_sam2.train.synthetic import make_movie
    from napari_sam2.weights.load import save_checkpoint

    folder = tmp_path_factory.mktemp("signals")
    torch.manual_seed(0)
    ckpt = save_checkpoint(folder / "tiny.pt", SAM2Model(get_config("test_tiny_256")))
    synth = make_movie(kind="nuclei", n_frames=80, shape=(64, 64), n_cells=3, seed=1)
    movie = folder / "long.tif"
    tifffile.imwrite(movie, synth.movie, imagej=True, metadata={"axes": "TYX"})
    seeds = interior_points(synth.labels[0], min_area=5)
    rows = [(0, y, x, i) for i, (y, x) in seeds.items()]
    clicks = write_point_prompts(folder / "clicks.csv", rows)
    return movie, clicks, ckpt


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_stop_signals_write_the_finished_frames(signal_movie, tmp_path, sig):
    movie, clicks, ckpt = signal_movie
    out = tmp_path / "labels.tif"
    code, err = interrupt_segment(
        [str(movie), "--prompts", str(clicks), "--model", str(ckpt), "--out", str(out),
         "--direction", "forward"],
        sig,
        after=2,
    )
    assert code == 128 + int(sig), err
    assert f"{sig.name}: stopping after the current frame" in err
    m = re.search(r"interrupted after (\d+) of 80 frames: wrote the finished frames", err)
    assert m, err
    n_done = int(m.group(1))
    assert 2 <= n_done < 80
    labels = load_labels_tiff(out)  # a complete, readable TIFF
    assert labels.shape == (80, 64, 64)
    assert labels[:n_done].any() and not labels[n_done:].any()
    assert not out.with_name("labels.partial.tif").exists()
