"""``napari-sam2 segment`` with the bundled micro model, scored against exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from held_out import HELD_OUT_SEEDS
from napari_sam2.weights.registry import bundled_checkpoint_path

pytestmark = pytest.mark.skipif(
    not bundled_checkpoint_path().exists(), reason="the bundled micro checkpoint is not built"
)

#: least mean IoU (over frames) of each clicked nucleus
TRACK_IOU = 0.6


def test_segment_clicked_nuclei_match_ground_truth(tmp_path, run_cli):
    from napari_sam2.cli.demo import ancestor_labels, interior_points
    from napari_sam2.io.prompt_csv import write_point_prompts
    from napari_sam2.io.tiff import load_labels_tiff
    from napari_sam2.train.synthetic import make_movie

    mv = make_movie(
        kind="nuclei", n_frames=6, shape=(256, 256), n_cells=14, radius=(16.0, 24.0),
        seed=HELD_OUT_SEEDS[1],
    )  # fmt: skip
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, mv.movie, imagej=True, metadata={"axes": "TYX"})
    seeds = interior_points(mv.labels[0])
    near = sorted(seeds.items(), key=lambda kv: (kv[1][0] - 128) ** 2 + (kv[1][1] - 128) ** 2)
    cells = near[:3]
    clicks = write_point_prompts(
        tmp_path / "clicks.csv", [(0, y, x, k) for k, (_, (y, x)) in enumerate(cells, start=1)]
    )
    out = tmp_path / "labels.tif"
    proc = run_cli(
        "segment", movie, "--prompts", clicks, "--model", "micro", "--out", out, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    labels = load_labels_tiff(out)
    assert labels.shape == mv.labels.shape
    for k, (track_id, _) in enumerate(cells, start=1):
        truth = ancestor_labels(mv.labels, mv.lineage, {track_id}) == track_id
        pred = labels == k
        inter = (pred & truth).sum(axis=(1, 2))
        union = np.maximum((pred | truth).sum(axis=(1, 2)), 1)
        ious = inter / union
        assert ious.min() > 0 and ious.mean() >= TRACK_IOU, (k, np.round(ious, 3))
