"""``napari-sam2 segment --fit``: 2-D masks fitted to the image as they are written."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import cli, load_model
from napari_sam2.io.tiff import load_labels_tiff, save_labels_tiff

CENTRES = [(24, 24), (30, 70), (70, 48)]
RADIUS = 4


@pytest.fixture(scope="module")
def micro():
    torch.set_num_threads(1)
    return load_model("micro", device="cpu")


def _inputs(tmp_path, monkeypatch, model):
    """A (3, 96, 96) movie of small bright discs (saved as .npy), seed labels 2.2 times too
    wide on frame 0 (a label TIFF) and the ground truth; the CLI's model is ``model``."""
    import napari_sam2.cli.segment as seg

    monkeypatch.setattr(seg, "_load_model_cli", lambda *a, **k: model)
    yy, xx = np.mgrid[:96, :96]
    movie = np.random.default_rng(0).normal(100, 5, (3, 96, 96))
    truth = np.zeros((3, 96, 96), np.uint16)
    seed = np.zeros((96, 96), np.uint16)
    for i, (cy, cx) in enumerate(CENTRES):
        seed[(yy - cy) ** 2 + (xx - cx) ** 2 < (2.2 * RADIUS) ** 2] = i + 1
        for k in range(3):
            disc = (yy - cy - k) ** 2 + (xx - cx) ** 2 < RADIUS**2
            truth[k][disc] = i + 1
            movie[k][disc] += 1000
    np.save(tmp_path / "discs.npy", movie.astype(np.uint16))
    save_labels_tiff(tmp_path / "seed.tif", seed)
    args = ["segment", str(tmp_path / "discs.npy"), "--axes", "TYX",
            "--seed-labels", str(tmp_path / "seed.tif"), "-q"]  # fmt: skip
    return args, truth


def test_segment_fit_cuts_too_wide_masks_to_the_cells(micro, tmp_path, monkeypatch, capsys):
    args, truth = _inputs(tmp_path, monkeypatch, micro)
    assert cli.main([*args, "--out", str(tmp_path / "raw.tif")]) == 0
    assert cli.main([*args, "--fit", "--out", str(tmp_path / "fit.tif")]) == 0
    raw, fit = load_labels_tiff(tmp_path / "raw.tif"), load_labels_tiff(tmp_path / "fit.tif")
    for o in (1, 2, 3):
        assert not ((fit == o) & (raw != o)).any()  # only removes pixels
        j_raw = ((raw == o) & (truth == o)).sum() / ((raw == o) | (truth == o)).sum()
        j_fit = ((fit == o) & (truth == o)).sum() / ((fit == o) | (truth == o)).sum()
        assert j_fit > j_raw + 0.2
    # --fit with tiles is refused with the fix; --fit and --no-fit exclude each other
    never = tmp_path / "never.tif"
    assert cli.main([*args, "--fit", "--tile", "48", "--out", str(never)]) != 0
    assert "--tile cannot be combined with --fit" in capsys.readouterr().err
    assert not never.exists()
    with pytest.raises(SystemExit):
        cli.main([*args, "--fit", "--no-fit", "--out", str(never)])
    assert "not allowed with argument" in capsys.readouterr().err
