"""Tests for the device choice of ``napari_sam2.load_model`` (auto order, explicit devices,
refusals, and loading onto CUDA where there is one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_sam2 import SAM2Model, load_model
from napari_sam2.model.config import CONFIGS
from napari_sam2.weights.load import resolve_device

TINY = "test_tiny_256"


@pytest.fixture
def tiny_sd() -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in SAM2Model(CONFIGS[TINY]).state_dict().items()}


def _gpus(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    "cuda, mps, expected",
    [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_device_order(monkeypatch, cuda, mps, expected):
    _gpus(monkeypatch, cuda, mps)
    assert resolve_device("auto") == torch.device(expected)
    assert resolve_device("AUTO") == torch.device(expected)


def test_explicit_devices(monkeypatch):
    _gpus(monkeypatch, cuda=False, mps=False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda' was requested but CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="'cuda:1' was requested"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match="Apple MPS is not available"):
        resolve_device("mps")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_model(TINY, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_load_on_cuda(tmp_path: Path, tiny_sd):
    path = tmp_path / "test_tiny_256.pt"
    torch.save({"model": tiny_sd}, path)
    model = load_model(path, device="auto")
    assert model.device.type == "cuda"
    got = {k: v.cpu() for k, v in model.state_dict().items()}
    assert all(torch.equal(got[k], v) for k, v in tiny_sd.items())
    x = torch.randn(1, 3, 256, 256, device="cuda")
    with torch.inference_mode():
        feats = model.encode_image(x)
    assert feats.vision.shape == (1, 32, 16, 16) and bool(np.isfinite(feats.vision.cpu()).all())
