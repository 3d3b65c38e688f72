"""``napari-sam2 segment --tile S``: one zoomed-in region per tile, labels full-size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import error_lines, write_blob_movie
from napari_sam2 import cli, segment_movie
from napari_sam2.io.tiff import load_labels_tiff


@pytest.fixture(scope="module")
def movie_path(tmp_path_factory):
    """(T=4, H=64, W=96) uint16 movie with two blobs in different 48-px tiles, and clicks."""
    d = tmp_path_factory.mktemp("tile")
    return write_blob_movie(d / "movie.tif", (20, 20), (40, 70))


def test_segment_with_tiles_equals_segment_movie(movie_path, tmp_path, capsys):
    out, csv = tmp_path / "labels.tif", tmp_path / "cells.csv"
    clicks = movie_path.with_name("clicks.csv")
    torch.manual_seed(0)  # the same random test weights for both runs
    rc = cli.main(["segment", str(movie_path), "--prompts", str(clicks), "--tile", "48",
                   "--tile-margin", "8", "--model", "test_tiny_256", "--direction", "forward",
                   "--out", str(out), "--csv", str(csv), "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "in 48-px tiles" in printed and str(out) in printed
    labels = load_labels_tiff(out)
    torch.manual_seed(0)
    expected = segment_movie(str(movie_path), str(clicks), model="test_tiny_256",
                             direction="forward", tile=48, tile_margin=8)
    np.testing.assert_array_equal(labels, expected)
    assert labels.shape == (4, 64, 96) and labels.any()
    assert csv.read_text().count("\n") > 1  # measurements written


@pytest.mark.parametrize("extra", [["--roi", "0,0,32,32"], ["--find-cells", "0"], ["--divisions"]])
def test_tile_refuses_combinations(movie_path, tmp_path, capsys, extra):
    out = tmp_path / "never.tif"
    args = ["segment", str(movie_path), "--prompts", str(movie_path.with_name("clicks.csv"))]
    rc = cli.main([*args, "--tile", "48", *extra, "--model", "test_tiny_256", "--out", str(out)])
    lines = error_lines(capsys.readouterr().err)
    assert rc == 1 and len(lines) == 1 and "--tile cannot be combined with" in lines[0], lines
    assert not out.exists()


def test_bad_tile_size_is_a_one_line_error(movie_path, tmp_path, capsys):
    out = tmp_path / "never.tif"
    args = ["segment", str(movie_path), "--prompts", str(movie_path.with_name("clicks.csv"))]
    rc = cli.main([*args, "--tile", "8", "--model", "test_tiny_256", "--out", str(out)])
    lines = [ln for ln in error_lines(capsys.readouterr().err) if not ln.startswith("model:")]
    assert rc == 1 and len(lines) == 1 and "tile must be at least 16 px" in lines[0], lines
    assert not out.exists()
