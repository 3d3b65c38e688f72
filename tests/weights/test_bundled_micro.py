"""The bundled micro model: shipped in the package, loads offline, really tracks a nucleus."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import VideoSession, load_model
from napari_sam2.demo import ancestor_labels, interior_points
from napari_sam2.train.synthetic import make_movie
from napari_sam2.weights.load import bundled_checkpoint_path

pytestmark = pytest.mark.skipif(
    not bundled_checkpoint_path().exists(), reason="the bundled micro checkpoint is not built"
)

#: A seed the training stream never draws from (it derives movie seeds from seeds 0 and 1).
HELD_OUT_SEED = 424242


def test_bundled_checkpoint_is_small_and_loads_offline():
    path = bundled_checkpoint_path()
    assert path.stat().st_size <= 15 * 1024 * 1024
    model = load_model("micro", device="cpu")
    assert model.config.name == "micro"
    assert not model.training
    n_params = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < n_params < 4_000_000


def test_one_click_tracks_a_held_out_nucleus_over_ten_frames():
    torch.set_num_threads(1)
    movie = make_movie(
        kind="nuclei",
        n_frames=10,
        shape=(256, 256),
        n_cells=14,
        radius=(16.0, 24.0),
        seed=HELD_OUT_SEED,
    )
    seeds = interior_points(movie.labels[0])
    # the nucleus nearest the centre, so it stays in view over the 10 frames
    obj, (y, x) = min(seeds.items(), key=lambda kv: (kv[1][0] - 128) ** 2 + (kv[1][1] - 128) ** 2)
    truth = ancestor_labels(movie.labels, movie.lineage, {obj}) == obj
    session = VideoSession(load_model("micro", device="cpu"), movie.movie, axes="TYX")
    first = session.add_points(0, 1, [(y, x)], [1])
    assert first.shape == (256, 256) and first.dtype == bool
    ious = []
    for res in session.propagate(direction="forward"):
        pred = res.masks[list(res.obj_ids).index(1)]
        gt = truth[res.frame]
        ious.append((pred & gt).sum() / max((pred | gt).sum(), 1))
    assert len(ious) == 10
    assert float(np.mean(ious)) >= 0.8, np.round(ious, 3)
