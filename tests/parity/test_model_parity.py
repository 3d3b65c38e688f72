"""Whole-model parity with Meta's reference: checkpoint layout and the single-frame path.

* The full state dict (every key and shape) of ``SAM2Model`` equals that of Meta's ``SAM2Base``
  for all eight official configurations. Ours is built on the ``meta`` device; Meta's model
  cannot be (its Hiera calls ``.item()`` while building), so it is built on the CPU with weight
  initialisation switched off (only the shapes are compared), which keeps the 8 builds to ~2 s.
* The key list of each official config is also frozen here (count, parameter count, digest), so
  a renamed attribute fails even where the reference package is not installed.
* A random official-layout state dict for ``sam2.1_hiera_tiny``, made by Meta's module, loads
  strictly through ``load_model(path)``.
* One frame of tracking on a small config (``track_step`` on a prompted first frame: memory-free
  features, prompt encoder, mask decoder, object pointer, memory encoder) gives the same tensors.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from napari_sam2 import load_model
from napari_sam2.model.config import CONFIGS, OFFICIAL_NAMES
from napari_sam2.model.sam2 import SAM2Model
from reference import build_reference, no_weight_init, random_state_dict

pytestmark = pytest.mark.parity

# name: (number of tensors, number of values, sha256 of the sorted "key:shape" lines, 16 hex)
FROZEN = {
    "sam2.1_hiera_tiny": (471, 38962754, "d7c6c10fa7dcd561"),
    "sam2_hiera_tiny": (468, 38946242, "43998f47a59c55f8"),
    "sam2.1_hiera_small": (519, 46060610, "aa898d5b95c36f51"),
    "sam2_hiera_small": (516, 46044098, "f32634a05353c0c0"),
    "sam2.1_hiera_base_plus": (615, 80850434, "f100c32004f4d896"),
    "sam2_hiera_base_plus": (612, 80833922, "c133dbd88634d603"),
    "sam2.1_hiera_large": (903, 224446898, "26748f7c2bfb43cb"),
    "sam2_hiera_large": (900, 224430386, "b76f0a498495a24d"),
}


def _layout(sd: dict[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    return {k: (tuple(v.shape), v.dtype) for k, v in sd.items()}


def _ours_on_meta(name: str) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return SAM2Model(CONFIGS[name]).state_dict()


def test_official_configs_are_the_eight_checkpoints():
    assert sorted(OFFICIAL_NAMES) == sorted(FROZEN)


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_state_dict_layout_matches_meta(name):
    ours = _layout(_ours_on_meta(name))
    with no_weight_init():
        ref_model = build_reference(CONFIGS[name], video=False)
    ref = _layout(ref_model.state_dict())
    assert sorted(set(ref) - set(ours)) == [], "missing in ours"
    assert sorted(set(ours) - set(ref)) == [], "not in Meta's checkpoints"
    wrong = {k: (ours[k], ref[k]) for k in ref if ours[k] != ref[k]}
    assert wrong == {}


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_state_dict_layout_is_frozen(name):
    sd = _ours_on_meta(name)
    text = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in sorted(sd.items()))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    assert (len(sd), sum(v.numel() for v in sd.values()), digest) == FROZEN[name]


def test_meta_made_official_checkpoint_loads_strictly(tmp_path):
    cfg = CONFIGS["sam2.1_hiera_tiny"]
    sd = random_state_dict(cfg, seed=3)  # Meta's module, Meta's key names, random values
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": sd}, path)  # the layout of Meta's download (no config inside)
    try:
        model = load_model(path, device="cpu")
        assert model.config is cfg
        got = model.state_dict()
        assert got.keys() == sd.keys()
        for k, v in sd.items():
            assert torch.equal(got[k], v), k
    finally:
        path.unlink()


# --------------------------------------------------------------------------- single frame


def _first_frame_ref(ref, image, coords, labels):
    backbone = ref.forward_image(image)
    _, feats, pos, sizes = ref._prepare_backbone_features(backbone)
    out = ref.track_step(
        frame_idx=0,
        is_init_cond_frame=True,
        current_vision_feats=feats,
        current_vision_pos_embeds=pos,
        feat_sizes=sizes,
        point_inputs={"point_coords": coords, "point_labels": labels},
        mask_inputs=None,
        output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}},
        num_frames=1,
    )
    return out


def _first_frame_ours(model, image, coords, labels):
    feats = model.encode_image(image)
    multimask = model.use_multimask(True, coords.shape[1])
    head = model.predict_masks(
        model.no_memory(feats), feats.high_res, coords, labels, multimask=multimask
    )
    mem, mem_pos = model.encode_memory(
        feats, head.mask_logits_hr, head.object_score_logits, binarize=True
    )
    return head, mem, mem_pos


@pytest.mark.parametrize("cfg_name", ["test_tiny_256", "test_tiny_256_v20"])
@pytest.mark.parametrize(
    "coords, labels",
    [
        ([[120.0, 100.0]], [1]),  # one click: multimask, best candidate chosen
        ([[60.0, 50.0], [180.0, 170.0], [120.0, 100.0]], [2, 3, 1]),  # box + click
    ],
    ids=["click", "box_and_click"],
)
def test_first_frame_track_step_matches_meta(cfg_name, coords, labels):
    cfg = CONFIGS[cfg_name]
    sd = random_state_dict(cfg, seed=1, object_bias=6.0)
    ref = build_reference(cfg, video=False)
    ref.load_state_dict(sd, strict=True)
    ours = SAM2Model(cfg).eval()
    ours.load_state_dict(sd, strict=True)
    g = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, cfg.image_size, cfg.image_size, generator=g)
    c = torch.tensor([coords])
    lab = torch.tensor([labels], dtype=torch.int32)
    with torch.inference_mode():
        r = _first_frame_ref(ref, image, c, lab)
        head, mem, mem_pos = _first_frame_ours(ours, image, c, lab)
    assert (head.mask_logits_hr > 0).any(), "vacuous: empty mask"
    close = dict(atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(head.mask_logits, r["pred_masks"], **close)
    torch.testing.assert_close(head.mask_logits_hr, r["pred_masks_high_res"], **close)
    torch.testing.assert_close(head.obj_ptr, r["obj_ptr"], **close)
    torch.testing.assert_close(head.object_score_logits, r["object_score_logits"], **close)
    torch.testing.assert_close(mem, r["maskmem_features"], **close)
    torch.testing.assert_close(mem_pos, r["maskmem_pos_enc"][-1], **close)
