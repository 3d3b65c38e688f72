"""Model configurations as frozen dataclasses.

One :class:`SAM2Config` describes a whole SAM 2 / 2.1 model. Sizes that follow from others
(feature-map side = ``image_size // backbone_stride``, the FPN channel list from the Hiera
widths, the memory-attention key/value width from the memory encoder) are derived properties,
never repeated numbers, so small test configs stay consistent.

``CONFIGS`` holds the eight official configurations (keys match Meta's checkpoint file stems,
e.g. ``"sam2.1_hiera_tiny"``), the bundled ``"micro"`` model and small random-init configs for
tests (``"test_tiny_256"``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

__all__ = [
    "CONFIGS",
    "HieraConfig",
    "MaskDecoderConfig",
    "MemoryAttentionConfig",
    "MemoryEncoderConfig",
    "SAM2Config",
    "config_from_dict",
    "config_to_dict",
    "get_config",
]


@dataclass(frozen=True)
class HieraConfig:
    """Hiera trunk (hierarchical ViT with windowed attention and query pooling).

    Attributes:
        embed_dim: channels of stage 1 (doubled at each stage change by ``dim_mul``).
        num_heads: attention heads of stage 1 (multiplied by ``head_mul`` at stage changes).
        stages: number of blocks per stage (4 stages).
        global_att_blocks: indices of blocks using global instead of windowed attention.
        window_spec: window side (in tokens) per stage for windowed attention.
        window_pos_embed_bkg_spatial_size: (H, W) of the interpolated background position
            embedding.
        q_pool: number of stage changes that pool the queries (stride ``q_stride``).
        q_stride: pooling stride (y, x) at a stage change.
        dim_mul: channel multiplier at a stage change.
        head_mul: head multiplier at a stage change.
        drop_path_rate: stochastic depth (training only).
    """

    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (1, 2, 7, 2)
    global_att_blocks: tuple[int, ...] = (5, 7, 9)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (7, 7)
    q_pool: int = 3
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    drop_path_rate: float = 0.0

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Channels of each stage output, finest first (e.g. (96, 192, 384, 768))."""
        return tuple(int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages)))


@dataclass(frozen=True)
class MaskDecoderConfig:
    """Prompt encoder + two-way transformer mask decoder."""

    num_multimask_outputs: int = 3
    transformer_depth: int = 2
    transformer_mlp_dim: int = 2048
    transformer_num_heads: int = 8
    attention_downsample_rate: int = 2
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    mask_in_chans: int = 16
    # Post-processing that Meta's video predictor switches on (apply_postprocessing=True):
    # fall back to the best multimask output when the single mask is unstable.
    dynamic_multimask_via_stability: bool = True
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98


@dataclass(frozen=True)
class MemoryAttentionConfig:
    """Memory attention: self-attention + cross-attention to memories, both with 2-D RoPE."""

    num_layers: int = 4
    dim_feedforward: int = 2048
    num_heads: int = 1
    rope_theta: float = 10000.0
    dropout: float = 0.1


@dataclass(frozen=True)
class MemoryEncoderConfig:
    """Memory encoder: mask downsampler + pixel-feature projection + CXBlock fuser."""

    out_dim: int = 64
    downsampler_kernel_size: int = 3
    downsampler_stride: int = 2
    downsampler_padding: int = 1
    fuser_num_layers: int = 2
    fuser_kernel_size: int = 7
    fuser_padding: int = 3
    layer_scale_init_value: float = 1e-6


@dataclass(frozen=True)
class SAM2Config:
    """A complete SAM 2 / 2.1 model.

    Attributes:
        name: registry key (e.g. ``"sam2.1_hiera_tiny"``).
        image_size: side of the square model input in pixels (1024 for official models).
        d_model: width of the neck, prompt encoder, decoder and memory attention.
        num_maskmem: memory slots (1 conditioning + ``num_maskmem - 1`` recent frames).
        no_obj_embed_spatial / add_tpos_enc_to_obj_ptrs / proj_tpos_enc_in_obj_ptrs /
        use_signed_tpos_enc_to_obj_ptrs: the four switches that differ between SAM 2.0 and 2.1.
        prompt_map_sigma: when > 0, clicks and boxes are also drawn into the mask prompt as
            "prompt maps" (Gaussian bumps of this width in model-input pixels around clicks,
            positive or negative, and a filled box); see :meth:`SAM2Model.predict_masks`. Our
            micro model is trained this way; 0 (Meta's behaviour) for official models.
        track_mask_prior: when True, an unprompted frame also gets the object's mask logits
            from the adjacent frame (the one just before it in the direction of tracking) as its
            mask prompt, on top of the memory; our micro model is trained this way (a small model
            learns this mask-propagation cue far faster than memory attention alone). False
            (Meta's behaviour) for official models.
        object_size_range: (lo, hi) object diameters the model segments well, as fractions of
            ``image_size``; smaller objects run in zoomed windows (``video/windows.py``) sized
            so that the object spans the range's geometric middle. Micro: 0.11-0.5. The low
            end is the smallest diameter it was trained on (radius 14 px at its 256-px
            input), so nuclei 28-48 px wide on a 256-px frame run on the whole frame, as
            without zoom; the middle, 0.235, is where its one-click IoU was best (objects
            spanning 0.22-0.27 of the input, synthetic nuclei on 512- and 1024-px frames).
            Official models: 64-384 px at their 1024-px input (not measured).
    """

    name: str = "sam2.1_hiera_tiny"
    hiera: HieraConfig = field(default_factory=HieraConfig)
    decoder: MaskDecoderConfig = field(default_factory=MaskDecoderConfig)
    memory_attention: MemoryAttentionConfig = field(default_factory=MemoryAttentionConfig)
    memory_encoder: MemoryEncoderConfig = field(default_factory=MemoryEncoderConfig)
    image_size: int = 1024
    backbone_stride: int = 16
    d_model: int = 256
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    num_maskmem: int = 7
    max_obj_ptrs_in_encoder: int = 16
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    binarize_mask_from_pts_for_mem_enc: bool = True
    fill_hole_area: int = 8
    # SAM 2.0 vs 2.1 switches
    no_obj_embed_spatial: bool = True
    add_tpos_enc_to_obj_ptrs: bool = True
    proj_tpos_enc_in_obj_ptrs: bool = True
    use_signed_tpos_enc_to_obj_ptrs: bool = True
    # Image normalisation (ImageNet statistics, applied to [0, 1] RGB)
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    prompt_map_sigma: float = 0.0
    track_mask_prior: bool = False
    object_size_range: tuple[float, float] = (0.0625, 0.375)

    @property
    def feat_size(self) -> int:
        """Side of the lowest-resolution feature map (64 for 1024-px input)."""
        return self.image_size // self.backbone_stride

    @property
    def backbone_channel_list(self) -> tuple[int, ...]:
        """Hiera stage widths, coarsest first, as the FPN neck consumes them."""
        return tuple(reversed(self.hiera.stage_dims))

    @property
    def mem_dim(self) -> int:
        """Channels of a memory feature (keys/values of the cross-attention)."""
        return self.memory_encoder.out_dim

    @property
    def version(self) -> str:
        """ "2.1" when the SAM 2.1 switches are on, else "2.0"."""
        return "2.1" if self.no_obj_embed_spatial else "2.0"

    def with_(self, **changes) -> SAM2Config:
        """Return a copy with some fields replaced."""
        return replace(self, **changes)


_V20 = dict(
    no_obj_embed_spatial=False,
    add_tpos_enc_to_obj_ptrs=False,
    proj_tpos_enc_in_obj_ptrs=False,
    use_signed_tpos_enc_to_obj_ptrs=False,
)

_TRUNKS = {
    "tiny": HieraConfig(
        embed_dim=96,
        num_heads=1,
        stages=(1, 2, 7, 2),
        global_att_blocks=(5, 7, 9),
        window_pos_embed_bkg_spatial_size=(7, 7),
    ),
    "small": HieraConfig(
        embed_dim=96,
        num_heads=1,
        stages=(1, 2, 11, 2),
        global_att_blocks=(7, 10, 13),
        window_pos_embed_bkg_spatial_size=(7, 7),
    ),
    "base_plus": HieraConfig(
        embed_dim=112,
        num_heads=2,
        stages=(2, 3, 16, 3),
        global_att_blocks=(12, 16, 20),
        window_pos_embed_bkg_spatial_size=(14, 14),
    ),
    "large": HieraConfig(
        embed_dim=144,
        num_heads=2,
        stages=(2, 6, 36, 4),
        global_att_blocks=(23, 33, 43),
        window_spec=(8, 4, 16, 8),
        window_pos_embed_bkg_spatial_size=(7, 7),
    ),
}


def _official() -> dict[str, SAM2Config]:
    out: dict[str, SAM2Config] = {}
    for size, trunk in _TRUNKS.items():
        out[f"sam2.1_hiera_{size}"] = SAM2Config(name=f"sam2.1_hiera_{size}", hiera=trunk)
        out[f"sam2_hiera_{size}"] = SAM2Config(name=f"sam2_hiera_{size}", hiera=trunk, **_V20)
    return out


OFFICIAL_NAMES: tuple[str, ...] = tuple(_official())

CONFIGS: dict[str, SAM2Config] = {
    **_official(),
    # Small random-init configs for tests: same architecture, 256-px input, narrow widths.
    # (Global attention must not fall on a stage's first, query-pooling block: Meta's Hiera
    # only supports windowed attention there.)
    "test_tiny_256": SAM2Config(
        name="test_tiny_256",
        hiera=HieraConfig(
            embed_dim=16,
            num_heads=1,
            stages=(1, 1, 2, 1),
            global_att_blocks=(3,),
            window_spec=(8, 4, 4, 4),
            window_pos_embed_bkg_spatial_size=(4, 4),
        ),
        decoder=MaskDecoderConfig(transformer_mlp_dim=64, iou_head_hidden_dim=32, mask_in_chans=4),
        memory_attention=MemoryAttentionConfig(num_layers=2, dim_feedforward=64),
        memory_encoder=MemoryEncoderConfig(out_dim=16),
        image_size=256,
        d_model=32,
    ),
    # The bundled micro model (issue 7): ~2.5 M parameters, 256-px input.
    "micro": SAM2Config(
        name="micro",
        hiera=HieraConfig(
            embed_dim=32,
            num_heads=1,
            stages=(1, 1, 3, 1),
            global_att_blocks=(3, 4),
            window_spec=(8, 4, 8, 4),
            window_pos_embed_bkg_spatial_size=(4, 4),
        ),
        decoder=MaskDecoderConfig(
            transformer_mlp_dim=256,
            transformer_num_heads=4,
            iou_head_hidden_dim=64,
            mask_in_chans=16,
        ),
        memory_attention=MemoryAttentionConfig(num_layers=2, dim_feedforward=256),
        memory_encoder=MemoryEncoderConfig(out_dim=32),
        image_size=256,
        d_model=64,
        prompt_map_sigma=6.0,
        track_mask_prior=True,
        object_size_range=(0.11, 0.5),
    ),
}


# The SAM 2.0 twin of the small test config (same sizes, 2.0 switches).
CONFIGS["test_tiny_256_v20"] = replace(CONFIGS["test_tiny_256"], name="test_tiny_256_v20", **_V20)


def get_config(name: str) -> SAM2Config:
    """Look up a configuration by name, with a clear error listing the known names."""
    try:
        return CONFIGS[name]
    except KeyError:
        known = ", ".join(sorted(CONFIGS))
        raise KeyError(f"unknown model config {name!r}; known configs: {known}") from None


def config_to_dict(config: SAM2Config) -> dict:
    """Plain nested dict of a config (stored inside our checkpoints; loads with weights_only).

    ``object_size_range`` is left out when it equals the registered config's: it tunes the
    automatic zoom rather than describing the weights, so a checkpoint follows the registry's
    current value instead of freezing the one of the day it was written.
    """
    data = asdict(config)
    known = CONFIGS.get(config.name)
    if known is not None and config.object_size_range == known.object_size_range:
        data.pop("object_size_range")
    return data


def config_from_dict(data: dict) -> SAM2Config:
    """Inverse of :func:`config_to_dict`; unknown keys raise ``ValueError``; fields missing
    from a known config's dict take the registered config's values."""
    parts = {
        "hiera": HieraConfig,
        "decoder": MaskDecoderConfig,
        "memory_attention": MemoryAttentionConfig,
        "memory_encoder": MemoryEncoderConfig,
    }
    kwargs = {}
    top = {f.name for f in fields(SAM2Config)}
    for key, value in data.items():
        if key not in top:
            raise ValueError(f"unknown config field {key!r}")
        if key in parts:
            sub = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
            kwargs[key] = parts[key](**sub)
        else:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    known = CONFIGS.get(str(kwargs.get("name", "")))
    if known is not None:  # a file written before a field existed: the registered value
        for f in fields(SAM2Config):
            kwargs.setdefault(f.name, getattr(known, f.name))
    return SAM2Config(**kwargs)
