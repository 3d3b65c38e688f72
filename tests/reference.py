"""Test-only access to Meta's reference implementation (the PyPI package ``sam2==1.1.0``).

The plugin never imports ``sam2``; the tests use it as an oracle. Two things make that work here:

* PyPI's torchvision wheel does not load beside the CPU torch used on this machine, and ``sam2``
  imports torchvision only for three image transforms of its image predictor. When torchvision
  cannot be imported we register a small stand-in built on torch (same maths: bilinear resize with
  antialiasing, ToTensor, Normalize) before ``sam2`` is imported.
* Meta builds models from Hydra YAML. :func:`build_reference` instantiates the same classes
  directly from one of our :class:`~napari_sam2.model.config.SAM2Config`, so any config, including
  the small test ones, has a reference twin.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types

import pytest
import torch
import torch.nn.functional as F

from napari_sam2.model.config import SAM2Config


def _install_torchvision_stub() -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]

    class ToTensor:
        def __call__(self, pic):
            t = torch.as_tensor(pic)
            if t.ndim == 2:
                t = t[:, :, None]
            t = t.permute(2, 0, 1).contiguous()
            return t.float().div(255) if t.dtype == torch.uint8 else t.float()

    class Resize(torch.nn.Module):
        def __init__(self, size, antialias=True):
            super().__init__()
            self.size = tuple(size) if not isinstance(size, int) else (size, size)
            self.antialias = antialias

        def forward(self, x):
            squeeze = x.ndim == 3
            x = x[None] if squeeze else x
            x = F.interpolate(
                x, self.size, mode="bilinear", align_corners=False, antialias=self.antialias
            )
            return x[0] if squeeze else x

    class Normalize(torch.nn.Module):
        def __init__(self, mean, std):
            super().__init__()
            self.mean = torch.tensor(mean)[:, None, None]
            self.std = torch.tensor(std)[:, None, None]

        def forward(self, x):
            return (x - self.mean.to(x)) / self.std.to(x)

    tv = types.ModuleType("torchvision")
    tr = types.ModuleType("torchvision.transforms")
    tr.ToTensor, tr.Resize, tr.Normalize = ToTensor, Resize, Normalize
    tv.transforms = tr
    sys.modules["torchvision"] = tv
    sys.modules["torchvision.transforms"] = tr


def import_sam2():
    """Import the reference package.

    Where it is not installed the test is skipped, except in CI (``CI=true``), where a missing
    oracle fails the test: ``scripts/setup_env.sh --test`` installs it there.
    """
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken wheel raises RuntimeError, not ImportError
        _install_torchvision_stub()
    if os.environ.get("CI", "").lower() == "true":
        try:
            return importlib.import_module("sam2")
        except ImportError as exc:
            pytest.fail(
                f"Meta's sam2 (the parity oracle) is not installed ({exc}); in CI it must be: "
                "run `bash scripts/setup_env.sh --test`",
                pytrace=False,
            )
    return pytest.importorskip("sam2")


def build_reference(cfg: SAM2Config, *, video: bool = True, apply_postprocessing: bool = True):
    """Instantiate Meta's model classes with the hyper-parameters of ``cfg``.

    Args:
        cfg: our configuration.
        video: build a ``SAM2VideoPredictor`` (else a bare ``SAM2Base``).
        apply_postprocessing: the settings Meta's ``build_sam2_video_predictor`` adds by default
            (dynamic multimask via stability, binarised click masks for the memory, hole filling).

    Returns:
        The reference model in eval mode on the CPU, with random weights.
    """
    import_sam2()
    hieradet = importlib.import_module("sam2.modeling.backbones.hieradet")
    image_encoder = importlib.import_module("sam2.modeling.backbones.image_encoder")
    pe = importlib.import_module("sam2.modeling.position_encoding")
    ma = importlib.import_module("sam2.modeling.memory_attention")
    me = importlib.import_module("sam2.modeling.memory_encoder")
    tr = importlib.import_module("sam2.modeling.sam.transformer")
    md = importlib.import_module("sam2.modeling.sam.mask_decoder")
    pr = importlib.import_module("sam2.modeling.sam.prompt_encoder")
    base = importlib.import_module("sam2.modeling.sam2_base")
    vp = importlib.import_module("sam2.sam2_video_predictor")

    h = cfg.hiera
    d = cfg.d_model
    fs = cfg.feat_size
    trunk = hieradet.Hiera(
        embed_dim=h.embed_dim,
        num_heads=h.num_heads,
        stages=h.stages,
        global_att_blocks=h.global_att_blocks,
        window_spec=h.window_spec,
        window_pos_embed_bkg_spatial_size=h.window_pos_embed_bkg_spatial_size,
        q_pool=h.q_pool,
        q_stride=h.q_stride,
        dim_mul=h.dim_mul,
        head_mul=h.head_mul,
    )
    neck = image_encoder.FpnNeck(
        position_encoding=pe.PositionEmbeddingSine(
            num_pos_feats=d, normalize=True, temperature=10000, image_size=cfg.image_size
        ),
        d_model=d,
        backbone_channel_list=list(cfg.backbone_channel_list),
        fpn_top_down_levels=list(cfg.fpn_top_down_levels),
        fpn_interp_model="nearest",
    )
    encoder = image_encoder.ImageEncoder(trunk=trunk, neck=neck, scalp=1)

    m = cfg.memory_attention

    def rope(**kw):
        return tr.RoPEAttention(
            rope_theta=m.rope_theta,
            feat_sizes=[fs, fs],
            embedding_dim=d,
            num_heads=m.num_heads,
            downsample_rate=1,
            dropout=m.dropout,
            **kw,
        )

    layer = ma.MemoryAttentionLayer(
        activation="relu",
        cross_attention=rope(rope_k_repeat=True, kv_in_dim=cfg.mem_dim),
        d_model=d,
        dim_feedforward=m.dim_feedforward,
        dropout=m.dropout,
        pos_enc_at_attn=False,
        pos_enc_at_cross_attn_keys=True,
        pos_enc_at_cross_attn_queries=False,
        self_attention=rope(),
    )
    mem_attn = ma.MemoryAttention(
        d_model=d, pos_enc_at_input=True, layer=layer, num_layers=m.num_layers
    )

    e = cfg.memory_encoder
    mem_enc = me.MemoryEncoder(
        out_dim=e.out_dim,
        mask_downsampler=me.MaskDownSampler(
            embed_dim=d,
            kernel_size=e.downsampler_kernel_size,
            stride=e.downsampler_stride,
            padding=e.downsampler_padding,
        ),
        fuser=me.Fuser(
            me.CXBlock(
                dim=d,
                kernel_size=e.fuser_kernel_size,
                padding=e.fuser_padding,
                layer_scale_init_value=e.layer_scale_init_value,
                use_dwconv=True,
            ),
            num_layers=e.fuser_num_layers,
        ),
        position_encoding=pe.PositionEmbeddingSine(
            num_pos_feats=e.out_dim, normalize=True, temperature=10000, image_size=cfg.image_size
        ),
        in_dim=d,
    )
    dec = cfg.decoder
    extra = None
    if apply_postprocessing:
        extra = dict(
            dynamic_multimask_via_stability=dec.dynamic_multimask_via_stability,
            dynamic_multimask_stability_delta=dec.dynamic_multimask_stability_delta,
            dynamic_multimask_stability_thresh=dec.dynamic_multimask_stability_thresh,
        )
    kwargs = dict(
        image_encoder=encoder,
        memory_attention=mem_attn,
        memory_encoder=mem_enc,
        num_maskmem=cfg.num_maskmem,
        image_size=cfg.image_size,
        backbone_stride=cfg.backbone_stride,
        sigmoid_scale_for_mem_enc=cfg.sigmoid_scale_for_mem_enc,
        sigmoid_bias_for_mem_enc=cfg.sigmoid_bias_for_mem_enc,
        binarize_mask_from_pts_for_mem_enc=apply_postprocessing
        and cfg.binarize_mask_from_pts_for_mem_enc,
        use_mask_input_as_output_without_sam=True,
        directly_add_no_mem_embed=True,
        no_obj_embed_spatial=cfg.no_obj_embed_spatial,
        use_high_res_features_in_sam=True,
        multimask_output_in_sam=True,
        iou_prediction_use_sigmoid=True,
        use_obj_ptrs_in_encoder=True,
        max_obj_ptrs_in_encoder=cfg.max_obj_ptrs_in_encoder,
        add_tpos_enc_to_obj_ptrs=cfg.add_tpos_enc_to_obj_ptrs,
        proj_tpos_enc_in_obj_ptrs=cfg.proj_tpos_enc_in_obj_ptrs,
        use_signed_tpos_enc_to_obj_ptrs=cfg.use_signed_tpos_enc_to_obj_ptrs,
        only_obj_ptrs_in_the_past_for_eval=True,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
        fixed_no_obj_ptr=True,
        multimask_output_for_tracking=True,
        use_multimask_token_for_obj_ptr=True,
        multimask_min_pt_num=0,
        multimask_max_pt_num=1,
        use_mlp_for_obj_ptr_proj=True,
        sam_mask_decoder_extra_args=extra,
    )

    def build_heads(self):
        # Meta hard-codes the decoder sizes of the official models; use ours instead.
        self.sam_prompt_embed_dim = self.hidden_dim
        self.sam_image_embedding_size = self.image_size // self.backbone_stride
        self.sam_prompt_encoder = pr.PromptEncoder(
            embed_dim=d,
            image_embedding_size=(fs, fs),
            input_image_size=(cfg.image_size, cfg.image_size),
            mask_in_chans=dec.mask_in_chans,
        )
        self.sam_mask_decoder = md.MaskDecoder(
            num_multimask_outputs=dec.num_multimask_outputs,
            transformer=tr.TwoWayTransformer(
                depth=dec.transformer_depth,
                embedding_dim=d,
                mlp_dim=dec.transformer_mlp_dim,
                num_heads=dec.transformer_num_heads,
                attention_downsample_rate=dec.attention_downsample_rate,
            ),
            transformer_dim=d,
            iou_head_depth=dec.iou_head_depth,
            iou_head_hidden_dim=dec.iou_head_hidden_dim,
            use_high_res_features=True,
            iou_prediction_use_sigmoid=True,
            pred_obj_scores=True,
            pred_obj_scores_mlp=True,
            use_multimask_token_for_obj_ptr=True,
            **(extra or {}),
        )
        mlp = importlib.import_module("sam2.modeling.sam2_utils").MLP
        self.obj_ptr_proj = mlp(d, d, d, 3)
        self.obj_ptr_tpos_proj = (
            torch.nn.Linear(d, cfg.mem_dim)
            if cfg.proj_tpos_enc_in_obj_ptrs
            else torch.nn.Identity()
        )

    if video:
        cls = type("RefVideoPredictor", (vp.SAM2VideoPredictor,), {"_build_sam_heads": build_heads})
        model = cls(fill_hole_area=cfg.fill_hole_area if apply_postprocessing else 0, **kwargs)
    else:
        cls = type("RefSAM2Base", (base.SAM2Base,), {"_build_sam_heads": build_heads})
        model = cls(**kwargs)
    return model.eval()


def random_state_dict(
    cfg: SAM2Config, seed: int = 0, object_bias: float | None = None
) -> dict[str, torch.Tensor]:
    """Random weights in Meta's checkpoint layout for ``cfg`` (from the reference model).

    The reference's own initialisation plus Gaussian noise (std 0.02) on every float tensor, so
    zero-initialised parameters (position embeddings, no-memory embeddings) are exercised too.

    ``object_bias`` sets the bias of the object-score head's last layer: random weights usually
    declare every object absent (all-background masks), which makes mask comparisons vacuous; a
    positive bias keeps objects present so masks have real content.
    """
    torch.manual_seed(seed)
    ref = build_reference(cfg, video=False)
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in ref.state_dict().items():
        if v.dtype.is_floating_point:
            sd[k] = v + 0.02 * torch.randn(v.shape, generator=g)
        else:
            sd[k] = v.clone()
    if object_bias is not None:
        key = [k for k in sd if k.startswith("sam_mask_decoder.pred_obj_score_head.layers.")][-1]
        sd[key] = torch.full_like(sd[key], float(object_bias))
    return sd


# --------------------------------------------------------------------------- Meta's YAML configs

#: Our config name -> Meta's Hydra config file (shipped inside the installed ``sam2`` package).
META_YAML = {
    f"{prefix}_hiera_{size}": f"configs/{folder}/{prefix}_hiera_{short}.yaml"
    for prefix, folder in (("sam2.1", "sam2.1"), ("sam2", "sam2"))
    for size, short in (("tiny", "t"), ("small", "s"), ("base_plus", "b+"), ("large", "l"))
}


@contextlib.contextmanager
def no_weight_init():
    """Skip random initialisation while Meta's modules are built (their values get replaced)."""
    import_sam2()
    sam2_base = importlib.import_module("sam2.modeling.sam2_base")
    targets = [(torch.nn.init, n) for n in dir(torch.nn.init) if n.endswith("_") and n[0] != "_"]
    targets.append((sam2_base, "trunc_normal_"))
    saved = [(mod, n, getattr(mod, n)) for mod, n in targets]
    try:
        for mod, n in targets:
            setattr(mod, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for mod, n, fn in saved:
            setattr(mod, n, fn)


def meta_yaml(name: str, overrides: list[str] | None = None):
    """Meta's resolved Hydra config of an official model (an ``omegaconf`` node)."""
    import_sam2()
    from hydra import compose
    from omegaconf import OmegaConf

    cfg = compose(config_name=META_YAML[name], overrides=list(overrides or []))
    OmegaConf.resolve(cfg)
    return cfg


def make_official_checkpoint(
    name: str,
    path,
    seed: int = 0,
    object_bias: float | None = None,
    object_gain: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Write random weights of an official model in the layout of Meta's downloads.

    Meta's ``build_sam2`` builds the model from its YAML file with its own initialisation; every
    float tensor then gets Gaussian noise (std 0.02), so zero-initialised parameters count too.
    The file is ``{"model": state_dict}``, exactly what ``sam2.1_hiera_*.pt`` holds.

    Args:
        name: official config name (``"sam2.1_hiera_tiny"`` ...).
        path: where to write the ``.pt`` file.
        seed: seed of the initialisation and of the noise.
        object_bias: bias of the object-score head's last layer (see :func:`random_state_dict`).
        object_gain: factor on that layer's weights: random weights give object scores that vary
            little between frames and objects; a gain > 1 makes objects come and go.

    Returns:
        The state dict that was written.
    """
    import_sam2()
    from sam2.build_sam import build_sam2

    torch.manual_seed(seed)
    model = build_sam2(META_YAML[name], device="cpu")
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in model.state_dict().items():
        sd[k] = v + 0.02 * torch.randn(v.shape, generator=g) if v.dtype.is_floating_point else v
    if object_bias is not None:
        key = [k for k in sd if k.startswith("sam_mask_decoder.pred_obj_score_head.layers.")][-1]
        sd[key] = torch.full_like(sd[key], float(object_bias))
        weight = key.replace(".bias", ".weight")
        sd[weight] = sd[weight] * object_gain
    torch.save({"model": sd}, path)
    return sd


def meta_video_predictor(name: str, checkpoint, image_size: int | None = None):
    """Meta's ``build_sam2_video_predictor`` on its YAML file, loading ``checkpoint``.

    ``image_size`` overrides the YAML's 1024 px (the only change; every other hyper-parameter is
    Meta's own). Initialisation is skipped: the checkpoint replaces every value (Meta loads it
    strictly and raises on a missing or unexpected key).
    """
    import_sam2()
    from sam2.build_sam import build_sam2_video_predictor

    extra = [] if image_size is None else [f"++model.image_size={int(image_size)}"]
    with no_weight_init():
        return build_sam2_video_predictor(
            META_YAML[name],
            None if checkpoint is None else str(checkpoint),
            device="cpu",
            hydra_overrides_extra=extra,
        )


class HeadRecorder:
    """Records every mask-decoder result of one model, grouped by the event that caused it.

    Wraps Meta's ``SAM2Base._forward_sam_heads`` or our ``SAM2Model.predict_masks`` on one
    instance. Call :meth:`mark` after each user action or yielded frame; :meth:`events` then
    gives, per mark, the decoder outputs of that step concatenated over objects (in call order):
    ``mask`` (B, 1, h, w) chosen low-res logits, ``ious`` (B, M), ``score`` (B, 1) object-score
    logits and ``ptr`` (B, d) object pointers.
    """

    def __init__(self, model, meta: bool) -> None:
        self.calls: list[dict[str, torch.Tensor]] = []
        self.marks: list[tuple[object, int]] = []
        name = "_forward_sam_heads" if meta else "predict_masks"
        original = getattr(model, name)

        def recorded(*args, **kwargs):
            out = original(*args, **kwargs)
            if meta:
                rec = dict(ious=out[2], mask=out[3], ptr=out[5], score=out[6])
            else:
                rec = dict(
                    ious=out.ious, mask=out.mask_logits, ptr=out.obj_ptr,
                    score=out.object_score_logits,
                )
            self.calls.append({k: v.detach().float().clone() for k, v in rec.items()})
            return out

        setattr(model, name, recorded)

    def mark(self, label) -> None:
        """Close the current step under ``label`` (e.g. ``("click", 0, 1)`` or a frame index)."""
        self.marks.append((label, len(self.calls)))

    def events(self) -> list[tuple[object, dict[str, torch.Tensor] | None]]:
        """(label, concatenated outputs or None when the step ran no decoder) per mark."""
        out, start = [], 0
        for label, end in self.marks:
            calls = self.calls[start:end]
            joined = {k: torch.cat([c[k] for c in calls]) for k in calls[0]} if calls else None
            out.append((label, joined))
            start = end
        return out
