"""The bundled micro model: shipped in the package, loads offline.

How well it tracks (against ground truth, above a classical baseline, on several held-out
movies and a real CTC crop): ``test_accuracy.py``.
"""

from __future__ import annotations

import pytest

from napari_sam2 import load_model
from napari_sam2.weights.registry import bundled_checkpoint_path

pytestmark = pytest.mark.skipif(
    not bundled_checkpoint_path().exists(), reason="the bundled micro checkpoint is not built"
)


def test_bundled_checkpoint_is_small_and_loads_offline():
    path = bundled_checkpoint_path()
    assert path.stat().st_size <= 15 * 1024 * 1024
    model = load_model("micro", device="cpu")
    assert model.config.name == "micro"
    assert not model.training
    n_params = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < n_params < 4_000_000
