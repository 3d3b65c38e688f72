"""``napari-sam2 segment --roi Y0,X0,Y1,X1``: only the region is segmented, the labels stay
full-size (the console script in a subprocess; error paths in process, like test_cli.py)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import error_lines, write_blob_movie
from napari_sam2 import cli
from napari_sam2.io.tiff import load_labels_tiff


@pytest.fixture(scope="module")
def movie_path(tmp_path_factory):
    """(T=4, H=64, W=96) uint16 movie with two bright blobs, and a clicks CSV inside the ROI."""
    d = tmp_path_factory.mktemp("roi")
    return write_blob_movie(d / "movie.tif", (24, 30), (40, 60))


def test_segment_with_roi(run_cli, movie_path, tmp_path):
    out = tmp_path / "labels.tif"
    proc = run_cli(
        "segment",
        movie_path,
        "--prompts",
        movie_path.with_name("clicks.csv"),
        "--roi",
        "10,20,56,76",
        "--model",
        "test_tiny_256",
        "--out",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    assert "frames of 64 x 96 px (TYX), region of interest y 10:56, x 20:76;" in proc.stderr
    labels = load_labels_tiff(out)
    assert labels.shape == (4, 64, 96)
    inside = labels[:, 10:56, 20:76]
    assert inside.any() and set(np.unique(inside).tolist()) <= {0, 1, 2}
    outside = labels.copy()
    outside[:, 10:56, 20:76] = 0
    assert not outside.any()


@pytest.mark.parametrize(
    "roi, message",
    [
        ("10,20,56", "--roi '10,20,56': give the region as Y0,X0,Y1,X1 whole pixels"),
        ("10,20,5.5,76", "give the region as Y0,X0,Y1,X1"),
        ("30,20,10,76", "need 0 <= Y0 < Y1 and 0 <= X0 < X1"),
        ("0,0,65,96", "roi (0, 0, 65, 96) does not fit the frame"),
        ("30,0,64,96", "point (y=24, x=30) is outside the region of interest"),
    ],
)
def test_bad_roi_one_line_errors(movie_path, tmp_path, capsys, roi, message):
    out = tmp_path / "never.tif"
    args = ["segment", str(movie_path), "--prompts", str(movie_path.with_name("clicks.csv"))]
    rc = cli.main([*args, "--roi", roi, "--model", "test_tiny_256", "--out", str(out)])
    lines = [ln for ln in error_lines(capsys.readouterr().err) if not ln.startswith("model:")]
    assert rc == 1 and len(lines) == 1 and message in lines[0], lines
    assert not out.exists()


def test_help_lists_roi(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["segment", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and "--roi Y0,X0,Y1,X1" in out and "--roi 100,200" in out
