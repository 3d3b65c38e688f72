"""Image encoder (Hiera trunk + FPN neck + sine position encoding) against Meta's reference."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch

from napari_sam2.model.config import OFFICIAL_NAMES, SAM2Config, get_config
from napari_sam2.model.hiera import DropPath, Hiera, to_grid
from napari_sam2.model.image_encoder import ImageEncoder
from napari_sam2.model.position_encoding import SinePositionEncoding2d
from reference import build_reference, import_sam2, random_state_dict

TOL = dict(atol=1e-4, rtol=1e-4)


def reference_compatible(cfg: SAM2Config) -> SAM2Config:
    """Drop global attention from query-pooling blocks, which Meta's Hiera cannot run.

    (Its block divides by the window size when it pools, so a global block that pools raises
    ZeroDivisionError. Ours supports such blocks; the configs should not need them.)
    """
    h = cfg.hiera
    ends = [sum(h.stages[: i + 1]) - 1 for i in range(len(h.stages))]
    pool_blocks = {e + 1 for e in ends[:-1][: h.q_pool]}
    kept = tuple(b for b in h.global_att_blocks if b not in pool_blocks)
    return cfg.with_(hiera=dataclasses.replace(h, global_att_blocks=kept))


def with_hiera(cfg: SAM2Config, **changes) -> SAM2Config:
    return cfg.with_(hiera=dataclasses.replace(cfg.hiera, **changes))


def small_cfg() -> SAM2Config:
    """``test_tiny_256`` at 128 px (token grids 32, 16, 8, 4), runnable by the reference."""
    return reference_compatible(get_config("test_tiny_256")).with_(image_size=128)


def encoder_sd(cfg: SAM2Config, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random reference weights for ``cfg``, restricted to the image encoder (prefix removed)."""
    prefix = "image_encoder."
    sd = random_state_dict(cfg, seed=seed)
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def encoder_pair(cfg: SAM2Config, seed: int = 0):
    """Our encoder and Meta's, both holding the same random weights, in eval mode."""
    sd = encoder_sd(cfg, seed)
    ref = build_reference(cfg, video=False).image_encoder
    ref.load_state_dict(sd, strict=True)
    ours = ImageEncoder(cfg)
    ours.load_state_dict(sd, strict=True)
    return ours.eval(), ref.eval()


def assert_matches_reference(ours, ref, x: torch.Tensor) -> None:
    cfg_d = ours.neck.d_model
    s = x.shape[-1]
    with torch.inference_mode():
        feats, pos = ours(x)
        expected = ref(x)
    assert len(feats) == len(pos) == 3
    for i, (f, p) in enumerate(zip(feats, pos)):
        side = s // (4 * 2**i)
        assert f.shape == p.shape == (x.shape[0], cfg_d, side, side)
        torch.testing.assert_close(f, expected["backbone_fpn"][i], **TOL)
        torch.testing.assert_close(p, expected["vision_pos_enc"][i], **TOL)
    torch.testing.assert_close(feats[-1], expected["vision_features"], **TOL)


@functools.cache
def _reference_encoder_shapes(hiera, d_model: int, levels: tuple[int, ...]) -> dict:
    cfg = SAM2Config(hiera=hiera, d_model=d_model, fpn_top_down_levels=levels)
    ref = build_reference(cfg, video=False).image_encoder
    return {k: tuple(v.shape) for k, v in ref.state_dict().items()}


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_state_dict_layout_matches_reference(name):
    cfg = get_config(name)
    with torch.device("meta"):
        ours = ImageEncoder(cfg)
    got = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert got == _reference_encoder_shapes(cfg.hiera, cfg.d_model, cfg.fpn_top_down_levels)


@pytest.mark.parametrize(
    "window_spec",
    [
        None,  # windows tile every grid: the trunk stays window-partitioned between blocks
        (8, 4, 6, 4),  # 6 does not tile 16: zero padding, also in a query-pooling block
    ],
)
def test_tiny_256_matches_reference(window_spec):
    cfg = reference_compatible(get_config("test_tiny_256"))
    if window_spec is not None:
        cfg = with_hiera(cfg, window_spec=window_spec)
    ours, ref = encoder_pair(cfg)
    x = torch.randn(2, 3, cfg.image_size, cfg.image_size)
    assert_matches_reference(ours, ref, x)


def test_cached_tables_follow_new_weights():
    """The position embedding cache must refresh when weights are loaded or changed in place."""
    cfg = small_cfg()
    ours, ref = encoder_pair(cfg, seed=0)
    x = torch.randn(1, 3, cfg.image_size, cfg.image_size)
    assert_matches_reference(ours, ref, x)
    sd = encoder_sd(cfg, seed=1)
    ours.load_state_dict(sd)
    ref.load_state_dict(sd)
    assert_matches_reference(ours, ref, x)
    with torch.no_grad():
        for m in (ours, ref):
            m.trunk.pos_embed.mul_(3.0)
            m.trunk.pos_embed_window.add_(0.5)
    assert_matches_reference(ours, ref, x)


def test_gradients_match_reference():
    cfg = small_cfg()
    ours, ref = encoder_pair(cfg)
    ours.train()
    ref.train()
    x = torch.randn(2, 3, cfg.image_size, cfg.image_size)
    weights = [torch.randn(2, cfg.d_model, s, s) for s in (32, 16, 8)]

    def loss_and_grads(model, feats):
        loss = sum((f * w).sum() for f, w in zip(feats, weights))
        loss.backward()
        return {k: p.grad for k, p in model.named_parameters()}

    got = loss_and_grads(ours, ours(x)[0])
    expected = loss_and_grads(ref, ref(x)["backbone_fpn"])
    assert got.keys() == expected.keys()
    for k in got:
        scale = expected[k].abs().max().item() + 1.0
        torch.testing.assert_close(got[k], expected[k], atol=1e-4 * scale, rtol=1e-4, msg=k)


def _trunk_on_grid(trunk: Hiera, x: torch.Tensor) -> list[torch.Tensor]:
    """Our trunk, but handing every block the plain (B, H, W, C) grid (no layout reuse)."""
    tokens = trunk.patch_embed(x)
    tokens = tokens + trunk.position_embedding(tuple(tokens.shape[1:3]))
    hw, outputs = tuple(tokens.shape[1:3]), []
    for i, blk in enumerate(trunk.blocks):
        tokens, hw, layout = blk(tokens, hw, None)
        tokens = to_grid(tokens, hw, layout)
        if i in trunk.stage_ends:
            outputs.append(tokens.permute(0, 3, 1, 2))
    return outputs


@pytest.mark.parametrize(
    ("changes", "size"),
    [
        ({"global_att_blocks": (2, 4)}, 256),  # global attention in query-pooling blocks
        ({"window_spec": (8, 4, 8, 4)}, 256),  # block 3: global attention on 2 x 2 windows
        ({"stages": (1, 2, 3, 1), "global_att_blocks": (4,), "q_stride": (2, 1)}, 256),
        # 3-token windows, then a pooling global block: too odd to pool inside the windows
        ({"stages": (1, 2, 1, 1), "global_att_blocks": (3,), "window_spec": (8, 3, 4, 4)}, 192),
    ],
)
def test_window_layout_reuse_is_exact(changes, size):
    """Keeping tokens window-partitioned between blocks must not change the result."""
    cfg = with_hiera(get_config("test_tiny_256"), **changes)
    trunk = Hiera(cfg.hiera).eval()
    with torch.no_grad():
        for p in trunk.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        got = trunk(x)
        expected = _trunk_on_grid(trunk, x)
    assert len(got) == 4
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.shape[1] == cfg.hiera.stage_dims[i]
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("hw", [(5, 7), (16, 16), (64, 48)])
def test_position_encoding_matches_reference(hw):
    pe_mod = import_sam2().modeling.position_encoding
    ref = pe_mod.PositionEmbeddingSine(num_pos_feats=32, normalize=True, temperature=10000)
    ours = SinePositionEncoding2d(32)
    x = torch.zeros(3, 8, *hw)
    got = ours(x)
    assert got.shape == (3, 32, *hw)
    torch.testing.assert_close(got, ref(x), atol=1e-6, rtol=0)
    # cached: the same table is served again, in the requested dtype
    assert ours.grid(*hw).data_ptr() == got.data_ptr()
    half = ours(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), ref(x), atol=1e-2, rtol=0)


def test_position_encoding_validates_width():
    with pytest.raises(ValueError):
        SinePositionEncoding2d(31)


def test_drop_path_drops_whole_images():
    dp = DropPath(0.5).train()
    torch.manual_seed(3)
    x = torch.ones(8, 2, 2, 3)  # 2 images x 4 windows
    seen = set()
    for _ in range(20):
        y = dp(x, num_images=2)
        for img in y.view(2, -1):
            assert img.unique().numel() == 1  # one decision per image
            seen.add(img[0].item())
    assert seen == {0.0, 2.0}
    assert torch.equal(dp.eval()(x, num_images=2), x)


def test_trunk_trains_with_drop_path():
    cfg = with_hiera(small_cfg(), drop_path_rate=0.5)
    enc = ImageEncoder(cfg).train()
    x = torch.randn(2, 3, 128, 128)
    feats, _ = enc(x)
    sum(f.square().mean() for f in feats).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())
    enc.eval()
    with torch.no_grad():
        a, b = enc(x)[0][2], enc(x)[0][2]
    assert torch.equal(a, b)  # no stochasticity in eval mode


def test_bad_input_size_raises():
    enc = ImageEncoder(small_cfg()).eval()
    with torch.no_grad(), pytest.raises(ValueError):
        enc(torch.randn(1, 3, 80, 80))  # token grid 20: no multiple of the 8-token window


@pytest.mark.parity
def test_official_tiny_1024_matches_reference():
    cfg = get_config("sam2.1_hiera_tiny")
    ours, ref = encoder_pair(cfg)
    x = torch.randn(1, 3, 1024, 1024)
    assert_matches_reference(ours, ref, x)
