"""Weight averaging (``train/average.py``): the average of two checkpoints loads as a model and
its parameters are the weighted mean."""

from __future__ import annotations

import pytest
import torch

from napari_sam2 import load_model
from napari_sam2.model.config import get_config
from napari_sam2.model.sam2 import SAM2Model
from napari_sam2.train.average import average_checkpoints
from napari_sam2.weights.load import save_checkpoint


def _model(seed: int) -> SAM2Model:
    torch.manual_seed(seed)
    return SAM2Model(get_config("test_tiny_256"))


def test_average_is_the_weighted_mean_and_loads(tmp_path):
    a, b = _model(0), _model(1)
    pa = save_checkpoint(tmp_path / "a.pt", a, step=10)
    pb = save_checkpoint(tmp_path / "b.pt", b, step=20)
    out = average_checkpoints([pa, pb], [1.0, 3.0], tmp_path / "avg.pt")
    m = load_model(out, device="cpu")
    sa, sb, sm = a.state_dict(), b.state_dict(), m.state_dict()
    name = next(k for k, v in sa.items() if v.is_floating_point() and v.numel() > 1
                and not torch.equal(v, sb[k]))
    torch.testing.assert_close(sm[name], 0.25 * sa[name] + 0.75 * sb[name])
    payload = torch.load(out, weights_only=True)
    assert payload["step"] == 20 and "0.25 x a.pt" in payload["init"]


def test_average_refuses_mismatched_input(tmp_path):
    pa = save_checkpoint(tmp_path / "a.pt", _model(0))
    with pytest.raises(ValueError, match="one weight per checkpoint"):
        average_checkpoints([pa, pa], [1.0], tmp_path / "x.pt")
    with pytest.raises(ValueError, match="non-negative"):
        average_checkpoints([pa, pa], [1.0, -1.0], tmp_path / "x.pt")
    other = torch.load(pa, weights_only=True)
    other["model"] = {k: v for k, v in list(other["model"].items())[1:]}
    torch.save(other, tmp_path / "b.pt")
    with pytest.raises(ValueError, match="architecture"):
        average_checkpoints([pa, tmp_path / "b.pt"], [1.0, 1.0], tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
