"""Memory encoder, memory attention and 2-D RoPE attention against Meta's reference."""

from __future__ import annotations

import importlib
import os

import pytest
import torch

from napari_sam2.model.attention import RoPEAttention, apply_rope, axial_rope_angles, rope_phasors
from napari_sam2.model.config import CONFIGS, OFFICIAL_NAMES, SAM2Config
from napari_sam2.model.memory_attention import MemoryAttention
from napari_sam2.model.memory_encoder import MemoryEncoder
from reference import build_reference, import_sam2, random_state_dict

MA_PREFIX = "memory_attention."
ME_PREFIX = "memory_encoder."
TOL = dict(atol=1e-4, rtol=1e-4)


def _sub(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _ref_module(name: str):
    import_sam2()
    return importlib.import_module(name)


class Pair:
    """Our memory modules and the reference's, loaded with the same random weights."""

    def __init__(self, cfg: SAM2Config, seed: int) -> None:
        sd = random_state_dict(cfg, seed=seed)
        ref = build_reference(cfg, video=False)
        ref.load_state_dict(sd, strict=True)
        self.cfg = cfg
        self.sd = sd
        self.ref_ma, self.ref_me = ref.memory_attention, ref.memory_encoder
        self.ma = MemoryAttention(cfg).eval()
        self.me = MemoryEncoder(cfg).eval()
        self.ma.load_state_dict(_sub(sd, MA_PREFIX), strict=True)
        self.me.load_state_dict(_sub(sd, ME_PREFIX), strict=True)

    def attention_inputs(self, b: int, frames: int, ptr_tokens: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        hw, d, m = self.cfg.feat_size**2, self.cfg.d_model, self.cfg.mem_dim
        n_mem = frames * hw + ptr_tokens
        curr, curr_pos = torch.randn(b, hw, d, generator=g), torch.randn(b, hw, d, generator=g)
        memory = torch.randn(b, n_mem, m, generator=g)
        memory_pos = torch.randn(b, n_mem, m, generator=g)
        return curr, curr_pos, memory, memory_pos

    def run_attention(self, b: int, frames: int, ptr_tokens: int, seed: int = 0):
        curr, curr_pos, memory, memory_pos = self.attention_inputs(b, frames, ptr_tokens, seed)
        with torch.no_grad():
            ours = self.ma(curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens=ptr_tokens)
            # the reference takes and returns sequence-first (L, B, C) tensors
            ref = self.ref_ma(
                curr=curr.transpose(0, 1),
                memory=memory.transpose(0, 1),
                curr_pos=curr_pos.transpose(0, 1),
                memory_pos=memory_pos.transpose(0, 1),
                num_obj_ptr_tokens=ptr_tokens,
            ).transpose(0, 1)
        return ours, ref

    def encoder_inputs(self, b: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        cfg = self.cfg
        pix_feat = torch.randn(b, cfg.d_model, cfg.feat_size, cfg.feat_size, generator=g)
        logits = 4 * torch.randn(b, 1, cfg.image_size, cfg.image_size, generator=g)
        # what the model feeds in: sigmoid probabilities, scaled and shifted
        masks = torch.sigmoid(logits) * cfg.sigmoid_scale_for_mem_enc + cfg.sigmoid_bias_for_mem_enc
        return pix_feat, masks

    def run_encoder(self, b: int, seed: int = 0):
        pix_feat, masks = self.encoder_inputs(b, seed)
        with torch.no_grad():
            ours = self.me(pix_feat, masks)
            out = self.ref_me(pix_feat, masks, skip_mask_sigmoid=True)
        return ours, (out["vision_features"], out["vision_pos_enc"][0])


@pytest.fixture(scope="module")
def tiny() -> Pair:
    return Pair(CONFIGS["test_tiny_256"], seed=3)


# ----------------------------------------------------------------------------------------------
# Structure


def test_state_dict_keys_and_shapes_match_reference(tiny):
    ours = {MA_PREFIX + k: v.shape for k, v in tiny.ma.state_dict().items()}
    ours |= {ME_PREFIX + k: v.shape for k, v in tiny.me.state_dict().items()}
    ref = {k: v.shape for k, v in tiny.sd.items() if k.startswith((MA_PREFIX, ME_PREFIX))}
    assert ours == ref


_YAML_NAMES = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_official_configs_match_meta_yaml(name):
    """Keys + shapes equal the modules Meta instantiates from its own YAML config."""
    sam2 = import_sam2()
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    version, size = name.split("_hiera_")
    path = os.path.join(os.path.dirname(sam2.__file__), "configs", version,
                        f"{version}_hiera_{_YAML_NAMES[size]}.yaml")
    model_cfg = OmegaConf.load(path).model
    cfg = CONFIGS[name]
    with torch.device("meta"):
        ref_ma = instantiate(model_cfg.memory_attention)
        ref_me = instantiate(model_cfg.memory_encoder)
        ma, me = MemoryAttention(cfg), MemoryEncoder(cfg)
    for ref_mod, ours in ((ref_ma, ma), (ref_me, me)):
        ref_shapes = {k: v.shape for k, v in ref_mod.state_dict().items()}
        assert {k: v.shape for k, v in ours.state_dict().items()} == ref_shapes
    # hyper-parameters that leave no trace in the state dict
    layer = model_cfg.memory_attention.layer
    assert cfg.memory_attention.rope_theta == layer.self_attention.rope_theta
    assert cfg.memory_attention.dropout == layer.dropout
    assert list(layer.self_attention.feat_sizes) == [cfg.feat_size] * 2
    assert model_cfg.memory_attention.pos_enc_at_input
    assert (layer.pos_enc_at_attn, layer.pos_enc_at_cross_attn_queries) == (False, False)
    assert layer.pos_enc_at_cross_attn_keys and layer.activation == "relu"


# ----------------------------------------------------------------------------------------------
# RoPE


@pytest.mark.parametrize(("head_dim", "side"), [(32, 16), (256, 64), (16, 5)])
def test_rope_angles_match_reference(head_dim, side):
    pe = _ref_module("sam2.modeling.position_encoding")
    ref = pe.compute_axial_cis(dim=head_dim, end_x=side, end_y=side, theta=10000.0)
    ours = rope_phasors(axial_rope_angles(head_dim, side, side, 10000.0))
    assert ours.shape == (side * side, head_dim // 2)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("reps", [1, 3])
def test_apply_rope_matches_reference(reps):
    pe = _ref_module("sam2.modeling.position_encoding")
    table = pe.compute_axial_cis(dim=32, end_x=8, end_y=8)
    q = torch.randn(2, 2, 64, 32)
    k = torch.randn(2, 2, 64 * reps, 32)
    ref_q, ref_k = pe.apply_rotary_enc(q, k, freqs_cis=table, repeat_freqs_k=reps > 1)
    phasors = rope_phasors(axial_rope_angles(32, 8, 8))
    torch.testing.assert_close(apply_rope(q, phasors), ref_q, atol=1e-6, rtol=0)
    torch.testing.assert_close(apply_rope(k, phasors), ref_k, atol=1e-6, rtol=0)
    # rotations keep norms; a non-contiguous (head-split) input works too
    x = torch.randn(2, 64, 2, 32).transpose(1, 2)
    torch.testing.assert_close(apply_rope(x, phasors).norm(dim=-1), x.norm(dim=-1))
    with pytest.raises(ValueError, match="whole number"):
        apply_rope(torch.randn(1, 1, 65, 32), phasors)


def _rope_pair(heads: int, kv_dim: int | None, k_repeat: bool, side: int = 8, dim: int = 32):
    tr = _ref_module("sam2.modeling.sam.transformer")
    ref = tr.RoPEAttention(embedding_dim=dim, num_heads=heads, kv_in_dim=kv_dim, dropout=0.1,
                           rope_k_repeat=k_repeat, feat_sizes=[side, side])
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ours = RoPEAttention(dim, heads, dropout=0.1, kv_in_dim=kv_dim, rope_k_repeat=k_repeat,
                         feat_sizes=(side, side))
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours.eval(), ref.eval()


@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("b", [1, 3])
def test_rope_self_attention_matches_reference(heads, b):
    ours, ref = _rope_pair(heads, None, False)
    x = torch.randn(b, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, x, x), ref(x, x, x), **TOL)
    # a grid other than the one it was built for (angles rebuilt for 6 x 6)
    y = torch.randn(b, 36, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(y, y, y), ref(y, y, y), **TOL)


@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize(("frames", "excluded"), [(1, 0), (3, 0), (2, 5), (1, 4)])
def test_rope_cross_attention_matches_reference(heads, frames, excluded):
    ours, ref = _rope_pair(heads, 16, True)
    q = torch.randn(2, 64, 32)
    mem = torch.randn(2, 64 * frames + excluded, 16)
    k = mem + torch.randn_like(mem)
    with torch.no_grad():
        out = ours(q, k, mem, num_k_exclude_rope=excluded)
        expected = ref(q, k.clone(), mem, num_k_exclude_rope=excluded)
    torch.testing.assert_close(out, expected, **TOL)
    assert out.shape == q.shape


def test_rope_attention_rejects_unequal_lengths_without_repeat():
    ours, _ = _rope_pair(1, None, False)
    with pytest.raises(ValueError, match="rope_k_repeat"):
        ours(torch.randn(1, 64, 32), torch.randn(1, 128, 32), torch.randn(1, 128, 32))
    with pytest.raises(ValueError, match="square"):
        ours(torch.randn(1, 60, 32), torch.randn(1, 60, 32), torch.randn(1, 60, 32))


def test_rope_attention_built_on_meta_then_materialised():
    """No angle table is built at construction, so a meta-built module works once loaded."""
    ours_ref, ref = _rope_pair(1, 16, True)
    with torch.device("meta"):
        ours = RoPEAttention(32, 1, kv_in_dim=16, rope_k_repeat=True, feat_sizes=(8, 8))
    ours.load_state_dict(ours_ref.state_dict(), strict=True, assign=True)
    q, mem = torch.randn(1, 64, 32), torch.randn(1, 128, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(q, mem, mem), ref(q, mem.clone(), mem), **TOL)


def test_rope_table_from_inference_mode_serves_autograd():
    ours, _ = _rope_pair(1, 16, True)
    q, mem = torch.randn(1, 64, 32), torch.randn(1, 128, 16)
    with torch.inference_mode():
        ours(q, mem, mem)  # builds and caches the table
    ours(q, mem, mem, num_k_exclude_rope=64).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in ours.parameters())


# ----------------------------------------------------------------------------------------------
# Memory attention


@pytest.mark.parametrize("b", [1, 3])
@pytest.mark.parametrize(("frames", "ptr_tokens"), [(1, 0), (3, 0), (1, 8), (4, 16)])
def test_memory_attention_matches_reference(tiny, b, frames, ptr_tokens):
    ours, ref = tiny.run_attention(b, frames, ptr_tokens, seed=frames + ptr_tokens)
    assert ours.shape == (b, tiny.cfg.feat_size**2, tiny.cfg.d_model)
    torch.testing.assert_close(ours, ref, **TOL)


def test_memory_attention_batch_is_independent(tiny):
    """Each object of a batch gets what it would get alone."""
    curr, curr_pos, memory, memory_pos = tiny.attention_inputs(3, 2, 8, seed=7)
    with torch.no_grad():
        batched = tiny.ma(curr, curr_pos, memory, memory_pos, 8)
        single = tiny.ma(curr[1:2], curr_pos[1:2], memory[1:2], memory_pos[1:2], 8)
    torch.testing.assert_close(batched[1:2], single, **TOL)


def test_memory_attention_shares_one_frame_across_objects(tiny, monkeypatch):
    """One frame broadcast to every object (the video session's batches): the first layer's
    self-attention runs once, with the same result as on the full batch."""
    curr, curr_pos, memory, memory_pos = tiny.attention_inputs(4, 2, 8, seed=9)
    one, one_pos = curr[:1].expand(4, -1, -1), curr_pos[:1].expand(4, -1, -1)
    batches = []
    first = tiny.ma.layers[0].self_attn
    monkeypatch.setattr(first, "forward", lambda q, k, v, _f=first.forward: (
        batches.append(q.shape[0]) or _f(q, k, v)))
    with torch.no_grad():
        shared = tiny.ma(one, one_pos, memory, memory_pos, 8)
        assert batches == [1]
        full = tiny.ma(one.contiguous(), one_pos.contiguous(), memory, memory_pos, 8)
        assert batches == [1, 4]
    torch.testing.assert_close(shared, full, **TOL)
    with torch.no_grad():
        ref_one = tiny.ref_ma(
            curr=one.transpose(0, 1).contiguous(),
            memory=memory.transpose(0, 1),
            curr_pos=one_pos.transpose(0, 1).contiguous(),
            memory_pos=memory_pos.transpose(0, 1),
            num_obj_ptr_tokens=8,
        ).transpose(0, 1)
    torch.testing.assert_close(shared, ref_one, **TOL)


def test_memory_attention_dropout_only_in_training(tiny):
    inputs = tiny.attention_inputs(1, 2, 4, seed=8)
    try:
        tiny.ma.train()
        a, b = tiny.ma(*inputs, 4), tiny.ma(*inputs, 4)
        assert not torch.allclose(a, b)
        a.sum().backward()
        assert all(p.grad is not None for p in tiny.ma.parameters())
    finally:
        tiny.ma.eval().zero_grad(set_to_none=True)
    with torch.no_grad():
        torch.testing.assert_close(tiny.ma(*inputs, 4), tiny.ma(*inputs, 4), atol=0, rtol=0)


def test_memory_attention_rejects_batch_mismatch(tiny):
    curr, curr_pos, memory, memory_pos = tiny.attention_inputs(2, 1, 0)
    with pytest.raises(ValueError, match="batch"):
        tiny.ma(curr, curr_pos, memory[:1], memory_pos[:1])


# ----------------------------------------------------------------------------------------------
# Memory encoder


@pytest.mark.parametrize("b", [1, 3])
def test_memory_encoder_matches_reference(tiny, b):
    (feats, pos), (ref_feats, ref_pos) = tiny.run_encoder(b, seed=b)
    h = tiny.cfg.feat_size
    assert feats.shape == pos.shape == (b, tiny.cfg.mem_dim, h, h)
    torch.testing.assert_close(feats, ref_feats, **TOL)
    torch.testing.assert_close(pos, ref_pos, **TOL)


def test_memory_encoder_uses_the_mask(tiny):
    pix_feat, masks = tiny.encoder_inputs(1, seed=4)
    with torch.no_grad():
        a, _ = tiny.me(pix_feat, masks)
        b, _ = tiny.me(pix_feat, -masks)
    assert (a - b).abs().max() > 1e-3


# ----------------------------------------------------------------------------------------------
# Official size (1024 px)


@pytest.mark.parity
def test_parity_sam21_tiny_1024():
    pair = Pair(CONFIGS["sam2.1_hiera_tiny"], seed=5)
    # one memory frame + 4 object pointers (16 tokens): several memory frames are covered at
    # test size, and each frame costs seconds here
    ours, ref = pair.run_attention(1, 1, 16, seed=1)
    assert ours.shape == (1, 64 * 64, 256)
    torch.testing.assert_close(ours, ref, **TOL)
    (feats, pos), (ref_feats, ref_pos) = pair.run_encoder(1, seed=2)
    assert feats.shape == (1, 64, 64, 64)
    torch.testing.assert_close(feats, ref_feats, **TOL)
    torch.testing.assert_close(pos, ref_pos, **TOL)
