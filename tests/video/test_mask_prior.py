"""The micro model's tracking protocol: the adjacent frame's mask as the mask prompt."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import present_model
from napari_sam2 import VideoSession
from napari_sam2.model.sam2 import SAM2Model
from napari_sam2.train.train_config import TrainConfig
from napari_sam2.train.trainer import train


def _with_prior(model) -> SAM2Model:
    cfg = dataclasses.replace(model.config, track_mask_prior=True)
    twin = SAM2Model(cfg).eval()
    twin.load_state_dict(model.state_dict())
    return twin


def _record_mask_inputs(model, calls: list):
    original = model.predict_masks

    def spy(pix, high_res, point_coords=None, point_labels=None, mask_input=None, **kw):
        if point_coords is None:  # tracking calls only
            calls.append(None if mask_input is None else mask_input.clone())
        return original(pix, high_res, point_coords, point_labels, mask_input=mask_input, **kw)

    model.predict_masks = spy


@pytest.mark.parametrize("reverse", [False, True])
def test_tracking_gets_the_adjacent_frames_mask(movie, reverse):
    model = _with_prior(present_model())
    calls: list = []
    session = VideoSession(model, movie, axes="TYX", workers=1)  # both objects in one call
    start = 5 if reverse else 2
    session.add_points(start, 1, [(16, 18)], [1])
    session.add_points(start, 2, [(32, 44)], [1])
    _record_mask_inputs(model, calls)
    direction = "backward" if reverse else "forward"
    steps = 0
    for res in session.propagate(start=start, direction=direction):
        if res.frame == start:
            continue
        before = res.frame + 1 if reverse else res.frame - 1
        prior = calls[-1]
        assert prior is not None and prior.shape[0] == 2
        expected = torch.cat([session._objects[i].bank.get(before).mask_logits for i in (1, 2)])
        torch.testing.assert_close(prior, expected.float().clamp(-32, 32))
        steps += 1
    assert steps == (start if reverse else len(movie) - 1 - start)


def test_official_behaviour_has_no_prior(movie):
    model = present_model()
    assert not model.config.track_mask_prior
    calls: list = []
    session = VideoSession(model, movie, axes="TYX")
    session.add_points(0, 1, [(16, 18)], [1])
    _record_mask_inputs(model, calls)
    list(session.propagate(direction="forward", stop=3))
    assert calls and all(c is None for c in calls)


def test_trainer_tracks_with_the_prior(tmp_path):
    torch.set_num_threads(1)
    model = _with_prior(present_model()).train()
    tcfg = TrainConfig(
        steps=2,
        clip_len=3,
        single_frame_fraction=0.0,
        max_objects=2,
        correction_rounds=0,
        kinds=("nuclei",),
        radius=(20.0, 26.0),
        save_every=10,
        warmup_steps=1,
    )
    out = train(model, tcfg, tmp_path, log=None)
    assert out.config.track_mask_prior
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    losses = [json.loads(line)["loss"] for line in lines]
    assert len(losses) == 2 and np.isfinite(losses).all()
