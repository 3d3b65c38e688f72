"""Every hyper-parameter of our eight official configs against Meta's own YAML files.

Meta builds its models from Hydra YAML files shipped inside the ``sam2`` package; values the YAML
leaves out come from the defaults of the class it names (``_target_``), and the mask-decoder
sizes are hard-coded in ``SAM2Base``. :func:`_meta_values` reads all three sources (the YAML,
the class defaults, the model that ``build_sam2_video_predictor`` builds, initialisation
skipped); :func:`_our_values` lists the same quantities from our :class:`SAM2Config`. A wrong
value that leaves every tensor shape unchanged (a window size, a global-attention block, a head
count, a RoPE base, a 2.0/2.1 switch) fails here, where the state-dict layout tests cannot see it.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest

from napari_sam2.model.config import CONFIGS, OFFICIAL_NAMES, SAM2Config
from reference import META_YAML, import_sam2, meta_video_predictor, meta_yaml

pytestmark = pytest.mark.parity

#: Switches our model implements with one fixed value (Meta's YAML must agree with it).
FIXED = {
    "use_mask_input_as_output_without_sam": True,
    "directly_add_no_mem_embed": True,
    "use_high_res_features_in_sam": True,
    "multimask_output_in_sam": True,
    "iou_prediction_use_sigmoid": True,
    "use_obj_ptrs_in_encoder": True,
    "only_obj_ptrs_in_the_past_for_eval": True,
    "pred_obj_scores": True,
    "pred_obj_scores_mlp": True,
    "fixed_no_obj_ptr": True,
    "soft_no_obj_ptr": False,
    "multimask_output_for_tracking": True,
    "use_multimask_token_for_obj_ptr": True,
    "multimask_min_pt_num": 0,
    "multimask_max_pt_num": 1,
    "use_mlp_for_obj_ptr_proj": True,
    "max_cond_frames_in_attn": -1,
    "memory_temporal_stride_for_eval": 1,
    "non_overlap_masks_for_mem_enc": False,
    "image_encoder.scalp": 1,
    "neck.fpn_interp_model": "nearest",
    "neck.position_encoding.normalize": True,
    "neck.position_encoding.temperature": 10000,
    "memory_encoder.position_encoding.temperature": 10000,
    "memory_attention.pos_enc_at_input": True,
    "layer.activation": "relu",
    "layer.pos_enc_at_attn": False,
    "layer.pos_enc_at_cross_attn_keys": True,
    "layer.pos_enc_at_cross_attn_queries": False,
    "cross_attention.rope_k_repeat": True,
    "self_attention.downsample_rate": 1,
    "cross_attention.downsample_rate": 1,
    "fuser.layer.use_dwconv": True,
}

#: Fields of ours that Meta's configs do not have (our additions, training-only settings).
OURS_ONLY = {
    "name",
    "prompt_map_sigma",
    "track_mask_prior",
    "object_size_range",  # automatic zoom (video/windows.py)
    "hiera.drop_path_rate",
}


def _node_get(node, key: str, target_default_of=None):
    """``node[key]``, else the default of ``key`` in the constructor of ``node._target_``."""
    if key in node:
        value = node[key]
    else:
        module, _, cls = node["_target_"].rpartition(".")
        params = inspect.signature(getattr(importlib.import_module(module), cls)).parameters
        value = params[key].default
    if hasattr(value, "__iter__") and not isinstance(value, str):
        value = tuple(value)
    return value


def _meta_values(name: str) -> dict[str, object]:
    """The hyper-parameters of Meta's model ``name``, from its YAML, defaults and built model."""
    import_sam2()
    m = meta_yaml(name).model
    trunk, neck = m.image_encoder.trunk, m.image_encoder.neck
    att, enc = m.memory_attention, m.memory_encoder
    layer, sa, ca = att.layer, att.layer.self_attention, att.layer.cross_attention
    v: dict[str, object] = {}
    for key in (
        "embed_dim", "num_heads", "stages", "global_att_blocks", "window_spec",
        "window_pos_embed_bkg_spatial_size", "q_pool", "q_stride", "dim_mul", "head_mul",
    ):  # fmt: skip
        v[f"hiera.{key}"] = _node_get(trunk, key)
    for key in (
        "num_maskmem", "image_size", "backbone_stride", "sigmoid_scale_for_mem_enc",
        "sigmoid_bias_for_mem_enc", "max_obj_ptrs_in_encoder", "no_obj_embed_spatial",
        "add_tpos_enc_to_obj_ptrs", "proj_tpos_enc_in_obj_ptrs",
        "use_signed_tpos_enc_to_obj_ptrs",
    ):  # fmt: skip
        v[key] = _node_get(m, key)
    v["d_model"] = neck.d_model
    v["neck.position_encoding.num_pos_feats"] = neck.position_encoding.num_pos_feats
    v["backbone_channel_list"] = tuple(neck.backbone_channel_list)
    v["fpn_top_down_levels"] = tuple(neck.fpn_top_down_levels)
    v["memory_attention.d_model"] = att.d_model
    v["layer.d_model"] = layer.d_model
    v["memory_attention.num_layers"] = att.num_layers
    v["memory_attention.dim_feedforward"] = layer.dim_feedforward
    v["memory_attention.dropout"] = layer.dropout
    for tag, node in (("self_attention", sa), ("cross_attention", ca)):
        v[f"{tag}.embedding_dim"] = node.embedding_dim
        v[f"{tag}.num_heads"] = node.num_heads
        v[f"{tag}.rope_theta"] = node.rope_theta
        v[f"{tag}.dropout"] = node.dropout
        v[f"{tag}.feat_sizes"] = tuple(node.feat_sizes)
    v["cross_attention.kv_in_dim"] = ca.kv_in_dim
    v["memory_encoder.out_dim"] = enc.out_dim
    v["memory_encoder.position_encoding.num_pos_feats"] = enc.position_encoding.num_pos_feats
    for key in ("kernel_size", "stride", "padding"):
        v[f"memory_encoder.downsampler_{key}"] = _node_get(enc.mask_downsampler, key)
    v["memory_encoder.fuser_num_layers"] = enc.fuser.num_layers
    v["fuser.layer.dim"] = enc.fuser.layer.dim
    v["memory_encoder.fuser_kernel_size"] = enc.fuser.layer.kernel_size
    v["memory_encoder.fuser_padding"] = enc.fuser.layer.padding
    v["memory_encoder.layer_scale_init_value"] = float(enc.fuser.layer.layer_scale_init_value)

    fixed_sources = {
        "image_encoder": m.image_encoder, "neck": neck, "memory_attention": att, "layer": layer,
        "self_attention": sa, "cross_attention": ca, "memory_encoder": enc,
        "fuser.layer": enc.fuser.layer,
    }  # fmt: skip
    for key in FIXED:
        owner, _, leaf = key.rpartition(".")
        node = m if not owner else fixed_sources.get(owner)
        if node is None:  # e.g. "neck.position_encoding.normalize"
            head, _, rest = owner.partition(".")
            node = fixed_sources[head][rest]
        v[key] = _node_get(node, leaf)

    # What Meta hard-codes in Python: decoder sizes and the video predictor's post-processing.
    built = meta_video_predictor(name, None)
    dec, tr = built.sam_mask_decoder, built.sam_mask_decoder.transformer
    v["decoder.num_multimask_outputs"] = dec.num_multimask_outputs
    v["decoder.transformer_depth"] = len(tr.layers)
    v["decoder.transformer_mlp_dim"] = tr.layers[0].mlp.layers[0].out_features
    v["decoder.transformer_num_heads"] = tr.layers[0].self_attn.num_heads
    v["decoder.attention_downsample_rate"] = (
        tr.layers[0].self_attn.embedding_dim // tr.layers[0].cross_attn_token_to_image.internal_dim
    )
    v["decoder.iou_head_depth"] = dec.iou_prediction_head.num_layers
    v["decoder.iou_head_hidden_dim"] = dec.iou_prediction_head.layers[0].out_features
    v["decoder.mask_in_chans"] = built.sam_prompt_encoder.mask_downscaling[3].out_channels
    v["decoder.dynamic_multimask_via_stability"] = dec.dynamic_multimask_via_stability
    v["decoder.dynamic_multimask_stability_delta"] = dec.dynamic_multimask_stability_delta
    v["decoder.dynamic_multimask_stability_thresh"] = dec.dynamic_multimask_stability_thresh
    v["binarize_mask_from_pts_for_mem_enc"] = built.binarize_mask_from_pts_for_mem_enc
    v["fill_hole_area"] = built.fill_hole_area
    frames = inspect.signature(importlib.import_module("sam2.utils.misc").load_video_frames)
    v["pixel_mean"] = tuple(frames.parameters["img_mean"].default)
    v["pixel_std"] = tuple(frames.parameters["img_std"].default)
    return v


def _our_values(cfg: SAM2Config) -> dict[str, object]:
    """The same quantities as :func:`_meta_values`, from our config."""
    v: dict[str, object] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            for sub in dataclasses.fields(value):
                v[f"{f.name}.{sub.name}"] = getattr(value, sub.name)
        else:
            v[f.name] = value
    for key in OURS_ONLY:
        v.pop(key)
    d, fs = cfg.d_model, cfg.feat_size
    v.pop("memory_attention.num_heads")
    v.pop("memory_attention.rope_theta")
    v.update(
        {
            "neck.position_encoding.num_pos_feats": d,
            "backbone_channel_list": cfg.backbone_channel_list,
            "memory_attention.d_model": d,
            "layer.d_model": d,
            "fuser.layer.dim": d,
            "cross_attention.kv_in_dim": cfg.mem_dim,
            "memory_encoder.position_encoding.num_pos_feats": cfg.mem_dim,
        }
    )
    for tag in ("self_attention", "cross_attention"):
        v[f"{tag}.embedding_dim"] = d
        v[f"{tag}.num_heads"] = cfg.memory_attention.num_heads
        v[f"{tag}.rope_theta"] = cfg.memory_attention.rope_theta
        v[f"{tag}.dropout"] = cfg.memory_attention.dropout
        v[f"{tag}.feat_sizes"] = (fs, fs)
    v.update(FIXED)
    return v


def _normalise(values: dict[str, object]) -> dict[str, object]:
    out = {}
    for k, val in values.items():
        if isinstance(val, (list, tuple)):
            val = tuple(float(x) if isinstance(x, float) else x for x in val)
        elif isinstance(val, float) and val.is_integer() and not isinstance(val, bool):
            val = float(val)
        out[k] = val
    return out


def test_every_official_config_has_a_meta_yaml():
    assert sorted(META_YAML) == sorted(OFFICIAL_NAMES)


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_config_equals_meta_yaml(name):
    meta = _normalise(_meta_values(name))
    ours = _normalise(_our_values(CONFIGS[name]))
    assert sorted(set(ours) - set(meta)) == [], "fields of ours with no Meta counterpart pinned"
    assert sorted(set(meta) - set(ours)) == []
    wrong = {k: (ours[k], meta[k]) for k in meta if ours[k] != meta[k]}
    assert wrong == {}, f"{name}: ours != Meta's YAML (ours, Meta): {wrong}"


def test_a_wrong_global_attention_block_is_caught():
    """The comparison sees a value that changes no tensor shape."""
    cfg = CONFIGS["sam2.1_hiera_tiny"]
    broken = cfg.with_(hiera=dataclasses.replace(cfg.hiera, global_att_blocks=(5, 7, 8)))
    meta = _normalise(_meta_values(cfg.name))
    ours = _normalise(_our_values(broken))
    assert [k for k in meta if ours[k] != meta[k]] == ["hiera.global_att_blocks"]
