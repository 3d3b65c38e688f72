"""The files of a training run: ``last.pt`` resumes exactly, ``model.pt`` loads as a model."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from napari_sam2 import load_model
from napari_sam2.model.config import get_config
from napari_sam2.model.sam2 import SAM2Model
from napari_sam2.train.checkpoint import (
    LAST_NAME,
    MODEL_NAME,
    restore_training_state,
    save_training_state,
)
from napari_sam2.train.train_config import TrainConfig
from napari_sam2.train.trainer import _optimizer


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one thread avoids waiting on busy cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _one_step(model: SAM2Model, opt: torch.optim.Optimizer) -> None:
    """An AdamW step with the gradient of sum(p ** 2) / 2 (set directly: no autograd needed)."""
    for p in model.parameters():
        p.grad = p.detach().clone()
    opt.step()


def test_saved_state_restores_weights_optimiser_step_and_rngs(tmp_path):
    torch.manual_seed(0)
    tcfg = TrainConfig(steps=10, lr=1e-3, seed=3)
    model = SAM2Model(get_config("test_tiny_256"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(params, tcfg)
    _one_step(model, opt)
    rng = np.random.default_rng(5)
    rng.random(7)
    save_training_state(tmp_path, model, opt, 4, rng, tcfg)

    state = torch.load(tmp_path / LAST_NAME, map_location="cpu", weights_only=False)
    assert set(state) == {"model", "optimizer", "step", "rng", "torch_rng", "train_config"}
    assert state["step"] == 4 and state["train_config"] == asdict(tcfg)
    assert not (tmp_path / (LAST_NAME + ".part")).exists()

    fresh = SAM2Model(get_config("test_tiny_256"))
    fresh_opt = _optimizer([p for p in fresh.parameters() if p.requires_grad], tcfg)
    fresh_rng = np.random.default_rng(99)
    torch.manual_seed(123)
    assert restore_training_state(tmp_path, fresh, fresh_opt, fresh_rng) == 4
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)
    assert fresh_rng.random() == rng.random()  # the generator continues where it was saved
    torch.testing.assert_close(torch.get_rng_state(), state["torch_rng"], atol=0, rtol=0)
    # the optimiser continues too: one more step from each gives the same weights
    _one_step(model, opt)
    _one_step(fresh, fresh_opt)
    for a, b in zip(model.parameters(), fresh.parameters()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_model_file_loads_strictly_with_its_config(tmp_path):
    tcfg = TrainConfig(steps=2)
    model = SAM2Model(get_config("test_tiny_256"))
    opt = _optimizer(list(model.parameters()), tcfg)
    save_training_state(tmp_path, model, opt, 2, np.random.default_rng(0), tcfg)
    payload = torch.load(tmp_path / MODEL_NAME, map_location="cpu", weights_only=False)
    assert payload["step"] == 2 and payload["train_config"] == asdict(tcfg)
    loaded = load_model(tmp_path / MODEL_NAME, device="cpu")
    assert loaded.config == model.config
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)


def test_nothing_to_resume_gives_step_zero(tmp_path):
    model = SAM2Model(get_config("test_tiny_256"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = _optimizer(list(model.parameters()), TrainConfig())
    assert restore_training_state(tmp_path, model, opt, np.random.default_rng(0)) == 0
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], atol=0, rtol=0)
