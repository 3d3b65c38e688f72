"""Prompt maps: clicks and boxes drawn into the mask prompt (micro model), off for Meta's models."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from napari_sam2.model.config import (
    CONFIGS,
    OFFICIAL_NAMES,
    config_from_dict,
    config_to_dict,
    get_config,
)
from napari_sam2.model.prompt_maps import PROMPT_MAP_AMPLITUDE, prompt_maps
from napari_sam2.model.sam2 import SAM2Model
from reference import build_reference


def _at(maps: torch.Tensor, x: float, y: float, image_size: int = 256) -> float:
    """Map value at model-input pixel (x, y)."""
    h, w = maps.shape[-2:]
    return float(maps[0, 0, int(y * h / image_size), int(x * w / image_size)])


def test_clicks_are_signed_bumps_and_padding_is_ignored():
    coords = torch.tensor([[[100.0, 60.0], [200.0, 200.0], [10.0, 10.0]]])
    labels = torch.tensor([[1, 0, -1]], dtype=torch.int32)
    maps = prompt_maps(coords, labels, (64, 64), 256, sigma=6.0)
    assert maps.shape == (1, 1, 64, 64) and maps.dtype == torch.float32
    assert _at(maps, 100, 60) > 0.8 * PROMPT_MAP_AMPLITUDE  # positive click
    assert _at(maps, 200, 200) < -0.8 * PROMPT_MAP_AMPLITUDE  # negative click
    assert abs(_at(maps, 10, 10)) < 1e-3  # padding draws nothing
    assert abs(_at(maps, 160, 120)) < 1e-3  # far from every click


def test_box_fills_its_inside_with_half_height():
    coords = torch.tensor([[[40.0, 50.0], [120.0, 90.0]]])  # (x, y) corners
    labels = torch.tensor([[2, 3]], dtype=torch.int32)
    maps = prompt_maps(coords, labels, (64, 64), 256, sigma=6.0)
    assert _at(maps, 80, 70) == pytest.approx(0.5 * PROMPT_MAP_AMPLITUDE)
    assert _at(maps, 200, 200) == 0.0
    assert _at(maps, 20, 70) == 0.0


def test_batch_rows_are_independent():
    coords = torch.tensor([[[30.0, 30.0]], [[220.0, 220.0]]])
    labels = torch.ones(2, 1, dtype=torch.int32)
    maps = prompt_maps(coords, labels, (64, 64), 256, sigma=6.0)
    assert _at(maps[:1], 30, 30) > 5 and abs(_at(maps[1:], 30, 30)) < 1e-3


def test_official_configs_have_no_prompt_maps_and_micro_has():
    assert all(CONFIGS[n].prompt_map_sigma == 0 for n in OFFICIAL_NAMES)
    assert get_config("micro").prompt_map_sigma > 0
    cfg = get_config("micro")
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_predict_masks_with_maps_equals_meta_decoder_fed_the_map():
    """With prompt maps on, our decoder output equals Meta's prompt encoder + decoder given the
    same clicks plus the map as the mask prompt (so the micro model loads and runs in Meta's
    code with the same result when the caller draws the map)."""
    base = get_config("test_tiny_256")
    cfg = dataclasses.replace(base, prompt_map_sigma=6.0)
    torch.manual_seed(0)
    ours = SAM2Model(cfg).eval()
    ref = build_reference(base, video=False)
    ref.load_state_dict(ours.state_dict(), strict=True)
    ref.eval()
    with torch.no_grad():
        feats = ours.encode_image(torch.randn(1, 3, 256, 256)).expand(2)
    pix, high_res = ours.no_memory(feats), feats.high_res
    coords = torch.tensor([[[100.0, 60.0]], [[30.0, 200.0]]])
    labels = torch.ones(2, 1, dtype=torch.int32)
    with torch.no_grad():
        head = ours.predict_masks(pix, high_res, coords, labels, multimask=True)
        maps = prompt_maps(coords, labels, ours.sam_prompt_encoder.mask_input_size, 256, 6.0)
        sparse, dense = ref.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=maps)
        masks, ious, _, _ = ref.sam_mask_decoder(
            image_embeddings=pix,
            image_pe=ref.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            repeat_image=False,
            high_res_features=list(high_res),
        )
        plain = SAM2Model(base).eval()
        plain.load_state_dict(ours.state_dict())
        head_plain = plain.predict_masks(pix, high_res, coords, labels, multimask=True)
    torch.testing.assert_close(head.raw_multimask_logits, masks, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(head.ious, ious, atol=1e-4, rtol=1e-4)
    # and the map really changes the prediction
    assert not torch.allclose(head.raw_multimask_logits, head_plain.raw_multimask_logits)


def test_image_predictor_draws_prompt_maps_like_the_video_path():
    """ImagePredictor (single images) encodes clicks and boxes the way the model's own decoder
    path does, prompt maps included, so micro behaves the same in both."""
    import numpy as np

    from napari_sam2 import ImagePredictor

    cfg = dataclasses.replace(get_config("test_tiny_256"), prompt_map_sigma=6.0)
    torch.manual_seed(0)
    model = SAM2Model(cfg).eval()
    pred = ImagePredictor(model)
    image = np.random.default_rng(0).random((128, 128)).astype(np.float32)
    pred.set_image(image)
    feats = pred._features
    for kwargs, coords, labels in (
        ({"points": [(30, 50)], "labels": [1]}, [[100.0, 60.0]], [1]),
        ({"box": (20, 10, 60, 70)}, [[20.0, 40.0], [140.0, 120.0]], [2, 3]),
    ):
        _, ious, low = pred.predict(multimask=True, **kwargs)
        with torch.no_grad():
            head = model.predict_masks(
                model.no_memory(feats), feats.high_res, torch.tensor([coords]),
                torch.tensor([labels], dtype=torch.int32), multimask=True,
            )
        torch.testing.assert_close(torch.from_numpy(low), head.multimask_logits[0].clamp(-32, 32))
        torch.testing.assert_close(torch.from_numpy(ious), head.ious[0])
