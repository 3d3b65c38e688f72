"""Video parity: our VideoSession against Meta's SAM2VideoPredictor on the same weights/frames.

Both read the same decoded JPEG frames (Meta's predictor only reads JPEG folders); ours gets the
decoded uint8 RGB array with ``contrast_limits=(0, 255)``, which reproduces Meta's preprocessing.
Hole filling is off on our side: Meta's needs a compiled CUDA extension and silently skips it on
a CPU-only install.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from napari_sam2 import MemorySettings, VideoSession
from napari_sam2.model.config import CONFIGS
from napari_sam2.model.sam2 import SAM2Model
from reference import build_reference, random_state_dict

pytestmark = pytest.mark.parity


def _movie(tmp_path, n=8, h=96, w=128, seed=0):
    """A moving-blob RGB movie written as JPEGs, and its decoded frames."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    frames = []
    folder = tmp_path / "jpg"
    folder.mkdir()
    for t in range(n):
        img = rng.normal(40, 10, (h, w))
        for cy, cx, r in ((30 + 2 * t, 40 + 3 * t, 14), (60 - t, 90 - 2 * t, 11)):
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += 150
        rgb = np.clip(np.stack([img, img * 0.8, img * 0.6], -1), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"{t:05d}.jpg", quality=95)
    for t in range(n):
        frames.append(np.array(Image.open(folder / f"{t:05d}.jpg").convert("RGB")))
    return folder, np.stack(frames)


def _pair(cfg_name="test_tiny_256", seed=0, corrections_as_prompts=True):
    cfg = CONFIGS[cfg_name]
    sd = random_state_dict(cfg, seed=seed, object_bias=6.0)
    ref = build_reference(cfg, video=True)
    ref.load_state_dict(sd)
    ref.add_all_frames_to_correct_as_cond = corrections_as_prompts
    ours = SAM2Model(cfg)
    ours.load_state_dict(sd, strict=True)
    return ref.eval(), ours.eval()


def _ref_run(ref, folder, actions, propagate_calls):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = ref.init_state(str(folder))
        for kind, frame, obj, payload in actions:
            if kind == "points":
                pts, labels = payload
                xy = np.asarray(pts, np.float32)[:, ::-1].copy()  # (y, x) -> (x, y)
                ref.add_new_points_or_box(
                    state, frame, obj, points=xy, labels=np.asarray(labels), clear_old_points=False
                )
            elif kind == "box":
                y0, x0, y1, x1 = payload
                ref.add_new_points_or_box(
                    state, frame, obj, box=np.array([x0, y0, x1, y1], np.float32)
                )
        results = {}
        for start, reverse in propagate_calls:
            for t, ids, masks in ref.propagate_in_video(
                state, start_frame_idx=start, reverse=reverse
            ):
                results[t] = (list(ids), masks[:, 0].float().numpy())
    return results, state


def _ours_run(ours, frames, actions, propagate_calls, corrections_as_prompts=True):
    settings = MemorySettings(fill_holes_area=0, corrections_as_prompts=corrections_as_prompts)
    sess = VideoSession(ours, frames, axes="TYXC", contrast_limits=(0, 255), settings=settings)
    for kind, frame, obj, payload in actions:
        if kind == "points":
            sess.add_points(frame, obj, *payload)
        elif kind == "box":
            sess.add_box(frame, obj, payload)
    results = {}
    for start, reverse in propagate_calls:
        for r in sess.propagate(start=start, direction="backward" if reverse else "forward"):
            results[r.frame] = (r.obj_ids, r.masks)
    return results, sess


def _compare(ref_res, our_res, min_iou=0.99):
    assert sorted(ref_res) == sorted(our_res)
    nonempty = 0
    for t in ref_res:
        ref_ids, ref_logits = ref_res[t]
        ids, masks = our_res[t]
        assert ids == ref_ids
        for k in range(len(ids)):
            a, b = ref_logits[k] > 0, masks[k]
            union = (a | b).sum()
            if union == 0:
                continue
            nonempty += 1
            iou = (a & b).sum() / union
            assert iou >= min_iou, f"frame {t} object {ids[k]}: IoU {iou:.4f}"
    return nonempty


@pytest.mark.parametrize("seed", [0, 3])
def test_two_objects_forward(tmp_path, seed):
    folder, frames = _movie(tmp_path)
    ref, ours = _pair(seed=seed)
    actions = [
        ("points", 0, 1, ([[30, 40]], [1])),
        ("points", 0, 2, ([[60, 90], [20, 20]], [1, 0])),
    ]
    ref_res, _ = _ref_run(ref, folder, actions, [(None, False)])
    our_res, _ = _ours_run(ours, frames, actions, [(None, False)])
    assert _compare(ref_res, our_res) > 0


def test_box_and_backward_from_later_frame(tmp_path):
    folder, frames = _movie(tmp_path)
    ref, ours = _pair(seed=1)
    actions = [("box", 5, 1, (28, 45, 60, 80)), ("points", 5, 2, ([[55, 80]], [1]))]
    ref_res, _ = _ref_run(ref, folder, actions, [(5, True)])
    our_res, _ = _ours_run(ours, frames, actions, [(5, True)])
    assert _compare(ref_res, our_res) > 0


@pytest.mark.parametrize("as_prompts", [True, False])
def test_correction_and_repropagation(tmp_path, as_prompts):
    folder, frames = _movie(tmp_path)
    ref, ours = _pair(seed=2, corrections_as_prompts=as_prompts)
    first = [("points", 0, 1, ([[30, 40]], [1])), ("points", 0, 2, ([[60, 90]], [1]))]
    ref_res, ref_state = _ref_run(ref, folder, first, [(None, False)])
    our_res, sess = _ours_run(ours, frames, first, [(None, False)], as_prompts)
    assert _compare(ref_res, our_res) > 0
    # correction click on frame 4 for object 1, then propagate again from frame 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.add_new_points_or_box(
            ref_state,
            4,
            1,
            points=np.array([[52.0, 36.0]], np.float32),
            labels=np.array([0]),
            clear_old_points=False,
        )
        ref2 = {
            t: (list(ids), m[:, 0].float().numpy())
            for t, ids, m in ref.propagate_in_video(ref_state, start_frame_idx=4)
        }
    sess.add_points(4, 1, [[36, 52]], [0])
    ours2 = {r.frame: (r.obj_ids, r.masks) for r in sess.propagate(start=4)}
    assert _compare(ref2, ours2) > 0


def test_official_tiny_one_frame(tmp_path):
    """One frame with the official tiny config at 1024 px (the full-size code path)."""
    folder, frames = _movie(tmp_path, n=2)
    ref, ours = _pair("sam2.1_hiera_tiny", seed=0)
    actions = [("points", 0, 1, ([[30, 40]], [1]))]
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    ref_res, _ = _ref_run(ref, folder, actions, [(0, False)])
    our_res, _ = _ours_run(ours, frames, actions, [(0, False)])
    ref_res = {0: ref_res[0]}
    our_res = {0: our_res[0]}
    assert _compare(ref_res, our_res) > 0
