"""Prompt encoder + two-way transformer + mask decoder against Meta's reference implementation."""

from __future__ import annotations

import dataclasses
import importlib
import os

import pytest
import torch
from torch import nn

from napari_sam2.model.config import CONFIGS, OFFICIAL_NAMES, SAM2Config
from napari_sam2.model.mask_decoder import MaskDecoder, stability_scores
from napari_sam2.model.prompt_encoder import PromptEncoder
from reference import build_reference, import_sam2, random_state_dict

PE_PREFIX = "sam_prompt_encoder."
MD_PREFIX = "sam_mask_decoder."
TOL = dict(atol=1e-4, rtol=1e-4)


def _sub(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _no_stability(cfg: SAM2Config) -> SAM2Config:
    return dataclasses.replace(
        cfg, decoder=dataclasses.replace(cfg.decoder, dynamic_multimask_via_stability=False)
    )


class Pair:
    """Our prompt encoder + decoder and the reference twin, loaded with the same weights."""

    def __init__(self, cfg: SAM2Config, stability: bool, sd: dict[str, torch.Tensor]) -> None:
        self.cfg = cfg if stability else _no_stability(cfg)
        self.ref = build_reference(cfg, video=False, apply_postprocessing=stability)
        self.ref.load_state_dict(sd, strict=True)
        self.pe = PromptEncoder(self.cfg).eval()
        self.md = MaskDecoder(self.cfg).eval()
        self.pe.load_state_dict(_sub(sd, PE_PREFIX), strict=True)
        self.md.load_state_dict(_sub(sd, MD_PREFIX), strict=True)

    def run_both(self, prompts: dict, image: torch.Tensor, hr: list[torch.Tensor], multimask: bool):
        with torch.no_grad():
            r_sparse, r_dense = self.ref.sam_prompt_encoder(
                points=prompts.get("points"), boxes=prompts.get("boxes"),
                masks=prompts.get("masks"),
            )
            r_out = self.ref.sam_mask_decoder(
                image_embeddings=image, image_pe=self.ref.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=r_sparse, dense_prompt_embeddings=r_dense,
                multimask_output=multimask, repeat_image=False, high_res_features=hr,
            )
            sparse, dense = self.pe(**prompts)
            out = self.md(image, self.pe.get_dense_pe(), sparse, dense, multimask, hr)
        return (r_sparse, r_dense, *r_out), (sparse, dense, *out)


@pytest.fixture(scope="module")
def tiny_sd() -> dict[str, torch.Tensor]:
    return random_state_dict(CONFIGS["test_tiny_256"], seed=1)


@pytest.fixture(scope="module", params=[True, False], ids=["stability_on", "stability_off"])
def tiny_pair(request, tiny_sd) -> Pair:
    torch.manual_seed(0)
    return Pair(CONFIGS["test_tiny_256"], request.param, tiny_sd)


def _features(cfg: SAM2Config, b: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    d, h = cfg.d_model, cfg.feat_size
    image = torch.randn(b, d, h, h, generator=g)
    hr = [torch.randn(b, d // 8, 4 * h, 4 * h, generator=g),
          torch.randn(b, d // 4, 2 * h, 2 * h, generator=g)]
    return image, hr


def _prompts(kind: str, cfg: SAM2Config, seed: int = 0) -> dict:
    """Batch-2 prompts (different per item) of a given kind, in model-input pixels."""
    g = torch.Generator().manual_seed(seed)
    s = cfg.image_size
    points = (
        torch.rand(2, 3, 2, generator=g) * s,
        torch.tensor([[1, 0, 1], [0, 1, -1]], dtype=torch.int32),  # item 1 padded
    )
    boxes = torch.tensor([[0.1, 0.2, 0.6, 0.7], [0.4, 0.3, 0.95, 0.8]]) * s
    masks = 4 * torch.randn(2, 1, 4 * cfg.feat_size, 4 * cfg.feat_size, generator=g)
    return {
        "points": {"points": points},
        "box": {"boxes": boxes},
        "box+points": {"points": points, "boxes": boxes},
        "mask": {"masks": masks},
        "mask+points": {"points": points, "masks": masks},
        "pad_point": {"points": (torch.zeros(2, 1, 2), -torch.ones(2, 1, dtype=torch.int32))},
        "none": {},
    }[kind]


def _assert_all_close(ref_out, out):
    names = ["sparse", "dense", "masks", "iou", "sam_tokens", "object_score_logits"]
    for name, r, o in zip(names, ref_out, out, strict=True):
        assert o.shape == r.shape, name
        torch.testing.assert_close(o, r, **TOL, msg=lambda m, n=name: f"{n}: {m}")


# ----------------------------------------------------------------------------------------------
# Structure


def test_state_dict_keys_and_shapes_match_reference(tiny_sd):
    cfg = CONFIGS["test_tiny_256"]
    ours = {PE_PREFIX + k: v.shape for k, v in PromptEncoder(cfg).state_dict().items()}
    ours |= {MD_PREFIX + k: v.shape for k, v in MaskDecoder(cfg).state_dict().items()}
    ref = {k: v.shape for k, v in tiny_sd.items() if k.startswith((PE_PREFIX, MD_PREFIX))}
    assert ours == ref


_YAML_NAMES = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_official_configs_match_meta_heads(name):
    """Keys + shapes equal those Meta's own ``_build_sam_heads`` makes from its YAML config."""
    import yaml

    sam2 = import_sam2()
    version, size = name.split("_hiera_")
    path = os.path.join(os.path.dirname(sam2.__file__), "configs", version,
                        f"{version}_hiera_{_YAML_NAMES[size]}.yaml")
    with open(path) as f:
        model_cfg = yaml.safe_load(f)["model"]
    base = importlib.import_module("sam2.modeling.sam2_base")

    class Heads(nn.Module):
        pass

    heads = Heads()
    for attr in ("use_high_res_features_in_sam", "iou_prediction_use_sigmoid", "pred_obj_scores",
                 "pred_obj_scores_mlp", "use_multimask_token_for_obj_ptr",
                 "use_obj_ptrs_in_encoder", "use_mlp_for_obj_ptr_proj",
                 "proj_tpos_enc_in_obj_ptrs"):
        setattr(heads, attr, model_cfg.get(attr, False))
    heads.hidden_dim = model_cfg["image_encoder"]["neck"]["d_model"]
    heads.mem_dim = model_cfg["memory_encoder"]["out_dim"]
    heads.image_size = model_cfg["image_size"]
    heads.backbone_stride = 16
    heads.sam_mask_decoder_extra_args = None
    cfg = CONFIGS[name]
    with torch.device("meta"):
        base.SAM2Base._build_sam_heads(heads)
        pe, md = PromptEncoder(cfg), MaskDecoder(cfg)
    for ref_mod, ours in ((heads.sam_prompt_encoder, pe), (heads.sam_mask_decoder, md)):
        ref_shapes = {k: v.shape for k, v in ref_mod.state_dict().items()}
        assert {k: v.shape for k, v in ours.state_dict().items()} == ref_shapes


# ----------------------------------------------------------------------------------------------
# Numerical parity (test_tiny_256)


@pytest.mark.parametrize("multimask", [True, False], ids=["multi", "single"])
@pytest.mark.parametrize("kind", ["points", "box", "box+points", "mask", "mask+points",
                                  "pad_point"])
def test_parity_batch2(tiny_pair, kind, multimask):
    cfg = tiny_pair.cfg
    prompts = _prompts(kind, cfg)
    image, hr = _features(cfg, 2)
    ref_out, out = tiny_pair.run_both(prompts, image, hr, multimask)
    _assert_all_close(ref_out, out)
    m = 3 if multimask else 1
    h = cfg.feat_size
    assert out[2].shape == (2, m, 4 * h, 4 * h)
    assert out[3].shape == (2, m)
    assert out[4].shape == (2, m, cfg.d_model)
    assert out[5].shape == (2, 1)
    assert ((out[3] >= 0) & (out[3] <= 1)).all()
    # The two items got different prompts, so their outputs differ.
    assert not torch.allclose(out[2][0], out[2][1])


@pytest.mark.parametrize("multimask", [True, False], ids=["multi", "single"])
def test_parity_no_prompt(tiny_pair, multimask):
    cfg = tiny_pair.cfg
    image, hr = _features(cfg, 1, seed=3)
    ref_out, out = tiny_pair.run_both({}, image, hr, multimask)
    _assert_all_close(ref_out, out)
    assert out[0].shape == (1, 0, cfg.d_model)
    assert out[1].shape == (1, cfg.d_model, cfg.feat_size, cfg.feat_size)


def test_points_padding_rules(tiny_pair):
    """A not-a-point token is appended to points only when there is no box."""
    cfg = tiny_pair.cfg
    p = _prompts("box+points", cfg)
    pe = tiny_pair.pe
    with torch.no_grad():
        alone, _ = pe(points=p["points"])
        with_box, _ = pe(points=p["points"], boxes=p["boxes"])
        box_only, _ = pe(boxes=p["boxes"])
    assert alone.shape == (2, 4, cfg.d_model)
    assert with_box.shape == (2, 5, cfg.d_model)
    assert box_only.shape == (2, 2, cfg.d_model)
    torch.testing.assert_close(alone[:, -1], pe.not_a_point_embed.weight.expand(2, -1))
    torch.testing.assert_close(alone[1, 2], pe.not_a_point_embed.weight[0])  # label -1 input
    torch.testing.assert_close(with_box[:, 3:], box_only)
    # A box equals the same corners given as points with labels 2 and 3.
    corners = (p["boxes"].reshape(2, 2, 2), torch.tensor([[2, 3], [2, 3]]))
    with torch.no_grad():
        as_points, _ = pe(points=corners)
    torch.testing.assert_close(as_points[:, :2], box_only)


def test_stable_single_mask_kept_and_unstable_falls_back(tiny_pair):
    """Synthetic logits: item 0 has a stable single mask, item 1 an unstable one."""
    md = tiny_pair.md
    ref_md = tiny_pair.ref.sam_mask_decoder
    g = torch.Generator().manual_seed(0)
    masks = 0.02 * torch.randn(2, 4, 16, 16, generator=g)  # |logit| < delta: unstable
    masks[0, 0] = torch.where(torch.rand(16, 16, generator=g) > 0.5, 5.0, -5.0)  # stable
    iou = torch.tensor([[0.1, 0.2, 0.9, 0.3], [0.1, 0.3, 0.2, 0.8]])
    scores = stability_scores(masks[:, :1], 0.05)
    assert scores[0, 0] == 1.0 and scores[1, 0] < 0.98
    out_masks, out_iou = md.select_stable_single_mask(masks, iou)
    torch.testing.assert_close(out_masks[0, 0], masks[0, 0])
    torch.testing.assert_close(out_masks[1, 0], masks[1, 3])
    torch.testing.assert_close(out_iou, torch.tensor([[0.1], [0.8]]))
    ref_masks, ref_iou = ref_md._dynamic_multimask_via_stability(masks, iou)
    torch.testing.assert_close(out_masks, ref_masks)
    torch.testing.assert_close(out_iou, ref_iou)
    # An all-empty mask (no pixel above -delta) counts as stable, as in the reference.
    assert stability_scores(torch.full((1, 4, 4), -1.0), 0.05).item() == 1.0


def test_stable_branch_through_full_forward(tiny_sd):
    """Scale up the single-mask token's MLP so its mask is stable: the decoder keeps token 0."""
    sd = dict(tiny_sd)
    key = MD_PREFIX + "output_hypernetworks_mlps.0.layers.2.weight"
    sd[key] = sd[key] * 1000.0
    pair = Pair(CONFIGS["test_tiny_256"], True, sd)
    image, hr = _features(pair.cfg, 2)
    ref_out, out = pair.run_both(_prompts("points", pair.cfg), image, hr, multimask=False)
    _assert_all_close(ref_out, out)
    with torch.no_grad():
        sparse, dense = pair.pe(**_prompts("points", pair.cfg))
        all_masks, all_iou, _, _ = pair.md.predict_masks(
            image, pair.pe.get_dense_pe(), sparse, dense, hr)
    assert (stability_scores(all_masks[:, :1], 0.05) >= 0.98).all()
    torch.testing.assert_close(out[2], all_masks[:, :1])
    torch.testing.assert_close(out[3], all_iou[:, :1])


def test_training_mode_skips_stability_fallback(tiny_sd):
    pair = Pair(CONFIGS["test_tiny_256"], True, tiny_sd)
    image, hr = _features(pair.cfg, 2)
    sparse, dense = pair.pe(**_prompts("points", pair.cfg))
    pair.md.train()
    masks, iou, tokens, _ = pair.md(image, pair.pe.get_dense_pe(), sparse, dense, False, hr)
    all_masks, all_iou, all_tokens, _ = pair.md.predict_masks(
        image, pair.pe.get_dense_pe(), sparse, dense, hr)
    torch.testing.assert_close(masks, all_masks[:, :1])
    torch.testing.assert_close(iou, all_iou[:, :1])
    torch.testing.assert_close(tokens, all_tokens[:, :1])
    masks.sum().backward()
    assert pair.md.mask_tokens.weight.grad is not None
    assert pair.pe.point_embeddings[1].weight.grad is not None


def test_dense_pe_cache_follows_weights(tiny_pair):
    pe = tiny_pair.pe
    first = pe.get_dense_pe()
    assert pe.get_dense_pe() is first  # cached
    torch.testing.assert_close(first, tiny_pair.ref.sam_prompt_encoder.get_dense_pe(), **TOL)
    gauss = pe.pe_layer.positional_encoding_gaussian_matrix
    saved = gauss.clone()
    try:
        with torch.no_grad():
            gauss.mul_(2.0)  # in-place change (as load_state_dict does)
        changed = pe.get_dense_pe()
        assert not torch.allclose(changed, first)
        ref_pe = PromptEncoder(tiny_pair.cfg)
        ref_pe.load_state_dict(pe.state_dict())
        torch.testing.assert_close(changed, ref_pe.get_dense_pe())
        with torch.inference_mode():
            in_inf = pe.get_dense_pe()
        torch.testing.assert_close(in_inf, changed)
    finally:
        pe.pe_layer.positional_encoding_gaussian_matrix.data.copy_(saved)
    torch.testing.assert_close(pe.get_dense_pe(), first)


def test_image_batch_mismatch_raises(tiny_pair):
    cfg = tiny_pair.cfg
    image, hr = _features(cfg, 1)
    sparse, dense = tiny_pair.pe(**_prompts("points", cfg))
    with pytest.raises(ValueError, match="batch"):
        tiny_pair.md(image, tiny_pair.pe.get_dense_pe(), sparse, dense, True, hr)


# ----------------------------------------------------------------------------------------------
# Official size (1024 px)


@pytest.mark.parity
def test_parity_sam21_tiny_1024():
    cfg = CONFIGS["sam2.1_hiera_tiny"]
    sd = random_state_dict(cfg, seed=2)
    pair = Pair(cfg, True, sd)
    image, hr = _features(cfg, 2, seed=5)
    ref_out, out = pair.run_both(_prompts("box+points", cfg), image, hr, multimask=False)
    _assert_all_close(ref_out, out)
    ref_out, out = pair.run_both(_prompts("mask+points", cfg), image, hr, multimask=True)
    _assert_all_close(ref_out, out)
    assert out[2].shape == (2, 3, 256, 256)
