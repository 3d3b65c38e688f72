"""ImagePredictor: single-image promptable segmentation, against Meta's SAM2ImagePredictor.

Both predictors hold the same random weights (``random_state_dict(cfg, object_bias=6.0)``, so the
object-score head keeps objects present and masks have content).

Input preprocessing differs on purpose: Meta's image predictor resizes the float image with
torchvision (bilinear + antialias; a torch stand-in in ``tests/reference.py``), while our
``FrameSource`` resizes uint8 RGB with PIL bicubic (Meta's *video* loader). To compare the model
maths exactly, the parity tests give both predictors the same model input: Meta's predictor runs
its own ``set_image`` and ours gets that very tensor through ``set_image_tensor(x, (H, W))``.
Our full ``set_image`` path is compared exactly on an image already at the model's input size
(no resize on either side), and loosely (IoU) on a non-square image where the filters differ.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import ImagePredictor
from napari_sam2.model.config import CONFIGS
from napari_sam2.model.sam2 import SAM2Model
from reference import build_reference, import_sam2, random_state_dict

CFG = "test_tiny_256"
H, W = 180, 240  # non-square, smaller than the 256-px model input


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(h, w, 3) uint8 RGB: noisy background and two bright discs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = rng.normal(40, 10, (h, w))
    img[(yy - 0.4 * h) ** 2 + (xx - 0.37 * w) ** 2 < (0.17 * h) ** 2] += 150
    img[(yy - 0.75 * h) ** 2 + (xx - 0.75 * w) ** 2 < (0.1 * h) ** 2] += 100
    return np.clip(np.stack([img, img * 0.8, img * 0.6], -1), 0, 255).astype(np.uint8)


def _models(cfg_name: str = CFG, scale_hyper: float | None = None):
    cfg = CONFIGS[cfg_name]
    sd = random_state_dict(cfg, object_bias=6.0)
    if scale_hyper is not None:
        # blow up the mask logits (hypernetwork output layers) to exercise the logit clamp
        for k in sd:
            if k.startswith("sam_mask_decoder.output_hypernetworks_mlps.") and "layers.2" in k:
                sd[k] = sd[k] * scale_hyper
    ref = build_reference(cfg, video=False)
    ref.load_state_dict(sd, strict=True)
    ours = SAM2Model(cfg)
    ours.load_state_dict(sd, strict=True)
    return ref.eval(), ours.eval()


def _ref_predictor(ref):
    import_sam2()
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    pred = SAM2ImagePredictor(ref)
    fs = ref.image_size // ref.backbone_stride
    # Meta hard-codes the feature sizes of 1024-px models; set those of the test config.
    pred._bb_feat_sizes = [(4 * fs, 4 * fs), (2 * fs, 2 * fs), (fs, fs)]
    return pred


@pytest.fixture(scope="module")
def pair():
    """(Meta's predictor, ours) on the same image and the same model input tensor."""
    torch.manual_seed(0)
    ref, ours = _models()
    rp = _ref_predictor(ref)
    img = _rgb(H, W)
    with torch.no_grad():
        rp.set_image(img)
        x = rp._transforms(img)[None]  # (1, 3, S, S): exactly what Meta's predictor encoded
    op = ImagePredictor(ours)
    op.set_image_tensor(x, (H, W))
    return rp, op


def _yx_to_xy(points) -> np.ndarray:
    return np.asarray(points, dtype=np.float64)[:, ::-1].copy()


def _box_to_xyxy(box) -> np.ndarray:
    y0, x0, y1, x1 = box
    return np.array([x0, y0, x1, y1], dtype=np.float64)


def _run_both(rp, op, points=None, labels=None, box=None, mask=None, ref_mask=None, multimask=True):
    ours = op.predict(points=points, labels=labels, box=box, mask=mask, multimask=multimask)
    ref = rp.predict(
        point_coords=None if points is None else _yx_to_xy(points),
        point_labels=None if labels is None else np.asarray(labels),
        box=None if box is None else _box_to_xyxy(box),
        mask_input=ref_mask,
        multimask_output=multimask,
    )
    return ours, ref


def _assert_same(ours, ref, n_masks: int) -> None:
    (om, os_, ol), (rm, rs, rl) = ours, ref
    rm = rm.astype(bool)
    assert om.dtype == bool and om.shape == rm.shape == (n_masks, H, W)
    assert os_.shape == rs.shape == (n_masks,)
    assert ol.shape == rl.shape == (n_masks, 64, 64)
    assert om.any(), "vacuous comparison: every mask is empty"
    for a, b in zip(om, rm):
        union = (a | b).sum()
        iou = (a & b).sum() / union if union else 1.0
        assert iou >= 0.99
    np.testing.assert_allclose(os_, rs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(ol, rl, atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- parity

PROMPTS = {
    "point": dict(points=[[72, 89]], labels=[1]),
    "pos_neg_points": dict(points=[[72, 89], [135, 180]], labels=[1, 0]),
    "box": dict(box=(45, 50, 105, 135)),
    "box_and_points": dict(box=(45, 50, 105, 135), points=[[72, 89], [100, 60]], labels=[1, 0]),
}


@pytest.mark.parity
@pytest.mark.parametrize("multimask", [True, False], ids=["multimask", "single"])
@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_prompts_match_meta(pair, prompt, multimask):
    rp, op = pair
    ours, ref = _run_both(rp, op, multimask=multimask, **PROMPTS[prompt])
    _assert_same(ours, ref, 3 if multimask else 1)


@pytest.mark.parity
@pytest.mark.parametrize("with_point", [False, True], ids=["mask_only", "mask_and_point"])
def test_mask_from_previous_logits_matches_meta(pair, with_point):
    rp, op = pair
    first_ours, first_ref = _run_both(rp, op, **PROMPTS["point"])
    _assert_same(first_ours, first_ref, 3)
    best = int(np.argmax(first_ours[1]))
    extra = PROMPTS["point"] if with_point else {}
    ours, ref = _run_both(
        rp,
        op,
        mask=first_ours[2][best],
        ref_mask=first_ref[2][best : best + 1],
        multimask=False,
        **extra,
    )
    _assert_same(ours, ref, 1)
    # the mask prompt changes the answer (it is not ignored)
    alone = op.predict(**PROMPTS["point"], multimask=False) if with_point else None
    if alone is not None:
        assert not np.allclose(alone[2], ours[2], atol=1e-3)


@pytest.mark.parity
def test_large_logits_are_clamped_like_meta():
    ref, ours = _models(scale_hyper=200.0)
    rp = _ref_predictor(ref)
    img = _rgb(H, W, seed=1)
    with torch.no_grad():
        rp.set_image(img)
        x = rp._transforms(img)[None]
    op = ImagePredictor(ours)
    op.set_image_tensor(x, (H, W))
    ours_out, ref_out = _run_both(rp, op, **PROMPTS["point"])
    assert np.abs(ours_out[2]).max() == 32.0  # the clamp was hit...
    _assert_same(ours_out, ref_out, 3)  # ...and full-size masks use the unclamped logits
    best = int(np.argmax(ours_out[1]))
    again = _run_both(
        rp, op, mask=ours_out[2][best], ref_mask=ref_out[2][best : best + 1], multimask=False
    )
    _assert_same(*again, 1)


@pytest.mark.parity
def test_set_image_matches_meta_exactly_without_resize():
    """An image already at the model input size is not resized by either side, so our whole
    ``set_image`` path (uint8 RGB, window (0, 255), ImageNet normalisation) must match."""
    ref, ours = _models()
    rp = _ref_predictor(ref)
    s = ref.image_size
    img = _rgb(s, s, seed=2)
    with torch.no_grad():
        rp.set_image(img)
    op = ImagePredictor(ours)
    op.set_image(img, contrast_limits=(0, 255))
    (om, os_, ol) = op.predict(points=[[100, 90]], labels=[1])
    (rm, rs, rl) = rp.predict(point_coords=np.array([[90.0, 100.0]]), point_labels=np.array([1]))
    assert om.any()
    np.testing.assert_array_equal(om, rm.astype(bool))
    np.testing.assert_allclose(os_, rs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(ol, rl, atol=1e-4, rtol=0)


@pytest.mark.parity
def test_set_image_with_our_resize_is_close_to_meta(pair):
    """Non-square image: our PIL-bicubic resize vs Meta's antialiased bilinear one. The inputs
    differ slightly, so only the masks are compared, loosely."""
    rp, same_weights = pair
    op = ImagePredictor(same_weights.model)
    op.set_image(_rgb(H, W), contrast_limits=(0, 255))
    (om, _, _), (rm, _, _) = _run_both(rp, op, **PROMPTS["point"])
    for a, b in zip(om, rm.astype(bool)):
        assert (a & b).sum() / (a | b).sum() >= 0.9


# --------------------------------------------------------------------------- behaviour


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return SAM2Model(CONFIGS[CFG]).eval()


def test_grey_image_outputs(tiny):
    pred = ImagePredictor(tiny)
    grey = np.random.default_rng(0).integers(0, 4000, (70, 90), dtype=np.uint16)
    pred.set_image(grey)
    masks, scores, logits = pred.predict(points=[[10, 20]], labels=[1])
    assert masks.shape == (3, 70, 90) and masks.dtype == bool
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert logits.shape == (3, 64, 64) and logits.dtype == np.float32
    assert np.abs(logits).max() <= 32.0
    one = pred.predict(box=(5, 5, 60, 80), multimask=False)
    assert one[0].shape == (1, 70, 90) and one[1].shape == (1,) and one[2].shape == (1, 64, 64)
    # a binary full-size mask is accepted as a prompt too
    binary = np.zeros((70, 90), bool)
    binary[20:40, 30:60] = True
    assert pred.predict(mask=binary, multimask=False)[0].shape == (1, 70, 90)


def test_predict_before_set_image(tiny):
    with pytest.raises(RuntimeError, match="no image set"):
        ImagePredictor(tiny).predict(points=[[1, 1]], labels=[1])


@pytest.fixture
def ready(tiny):
    pred = ImagePredictor(tiny)
    pred.set_image(_rgb(60, 80))
    return pred


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "empty prompt"),
        (dict(points=[[70, 10]], labels=[1]), r"outside the image \(60 x 80"),
        (dict(points=[[10, -1]], labels=[1]), "outside the image"),
        (dict(points=[[10, 10]]), "need labels"),
        (dict(labels=[1]), "without points"),
        (dict(points=[[10, 10], [20, 20]], labels=[1]), "2 points but 1 labels"),
        (dict(points=[[10, 10]], labels=[2]), "1 .positive"),
        (dict(box=(10, 10, 5, 40)), "empty box"),
        (dict(box=(100, 100, 120, 140)), "outside the image"),
        (dict(mask=np.ones((10, 10), bool)), "mask must be the image's shape"),
    ],
)
def test_error_messages(ready, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ready.predict(**kwargs)


def test_bad_image_shape(tiny):
    with pytest.raises(ValueError, match="must be .H, W. or .H, W, 3.*VideoSession"):
        ImagePredictor(tiny).set_image(np.zeros((4, 30, 30), np.uint8))
