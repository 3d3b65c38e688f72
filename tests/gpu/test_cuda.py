"""CUDA paths: fp32 on the GPU, bf16 autocast, fused (flash / memory-efficient) attention,
``torch.compile``, and bounded GPU memory over a long movie.

Skipped without CUDA (CI has none); ``scripts/gpu_check.sh`` runs them on a lent GPU.
``NAPARI_SAM2_TEST_DEVICE=cpu`` runs the same checks on the CPU (slow in bf16: for checking the
tests themselves).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from napari_sam2 import MemorySettings, VideoSession, load_model
from napari_sam2.cli.demo import interior_points
from napari_sam2.model.config import get_config
from napari_sam2.model.sam2 import SAM2Model
from napari_sam2.train.synthetic import make_movie

DEVICE = os.environ.get("NAPARI_SAM2_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs CUDA"
)


@pytest.fixture(scope="module")
def movie():
    """12 frames of held-out synthetic nuclei (256 px, the micro model's size) and its clicks."""
    mv = make_movie(kind="nuclei", n_frames=12, shape=(256, 256), radius=(14.0, 30.0),
                    n_cells=8, seed=424242)
    return mv.movie, interior_points(mv.labels[0])


def _track(model, movie, points, **kw) -> tuple[np.ndarray, VideoSession]:
    session = VideoSession(model, movie, **kw)
    for k, p in enumerate(points.values(), 1):
        session.add_points(0, k, [p], [1])
    for _ in session.propagate():
        pass
    return session.labels(), session


def _iou_per_object(a: np.ndarray, b: np.ndarray) -> list[float]:
    ids = [i for i in np.unique(a) if i]
    return [float(((a == i) & (b == i)).sum() / max(((a == i) | (b == i)).sum(), 1)) for i in ids]


@pytest.fixture(scope="module")
def cpu_labels(movie):
    frames, points = movie
    labels, _ = _track(load_model("micro", device="cpu"), frames, points)
    return labels


def test_fp32_on_the_gpu_matches_the_cpu(movie, cpu_labels):
    frames, points = movie
    labels, session = _track(load_model("micro", device=DEVICE), frames, points)
    assert session.device.type == DEVICE
    ious = _iou_per_object(cpu_labels, labels)
    assert len(ious) == len(points) and min(ious) > 0.98, ious


def test_bf16_autocast_stays_close_to_fp32(movie, cpu_labels):
    frames, points = movie
    model = load_model("micro", device=DEVICE)
    dtypes = set()
    model.memory_attention.layers[0].cross_attn_image.register_forward_hook(
        lambda mod, args, out: dtypes.add(out.dtype)
    )
    labels, _ = _track(model, frames, points, precision="bf16")
    assert dtypes == {torch.bfloat16}  # the attention really ran in bfloat16
    ious = _iou_per_object(cpu_labels, labels)
    assert np.mean(ious) > 0.9 and min(ious) > 0.7, ious


@pytest.mark.skipif(DEVICE != "cuda", reason="fused-kernel selection is a CUDA question")
def test_attention_runs_in_fused_kernels_under_bf16(movie):
    """Official-size shapes (1024 px, 64 x 64 tokens) must fit flash / memory-efficient SDPA:
    with the math fallback disabled, any other shape or dtype raises."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    frames, points = movie
    torch.manual_seed(0)
    model = SAM2Model(get_config("sam2.1_hiera_tiny")).to(DEVICE).eval()  # random weights
    model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.data.fill_(6.0)
    big = np.repeat(np.repeat(frames[:4], 2, axis=1), 2, axis=2)  # 512 px
    pts = {k: (2 * y, 2 * x) for k, (y, x) in list(points.items())[:3]}
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        labels, _ = _track(model, big, pts, precision="bf16")
    assert labels.shape == big.shape


def test_compiled_model_matches_eager_on_the_device(movie, cpu_labels):
    frames, points = movie
    model = load_model("micro", device=DEVICE, compile=True)
    labels, _ = _track(model, frames, points)
    ious = _iou_per_object(cpu_labels, labels)
    assert min(ious) > 0.98, ious


@pytest.mark.skipif(DEVICE != "cuda", reason="CUDA memory accounting")
def test_gpu_memory_is_bounded_on_a_long_movie():
    """60 frames vs 20: the memory bank and the frame cache are bounded, so the peak barely
    grows (the label volume lives in host memory)."""
    model = load_model("micro", device=DEVICE)
    mv = make_movie(kind="nuclei", n_frames=60, shape=(256, 256), radius=(14.0, 30.0),
                    n_cells=8, seed=424243)
    points = interior_points(mv.labels[0])
    peaks = []
    for n in (20, 60):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        _track(model, mv.movie[:n], points, settings=MemorySettings())
        peaks.append(torch.cuda.max_memory_allocated())
    assert peaks[1] < 1.25 * peaks[0], peaks
