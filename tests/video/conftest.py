"""Fixtures for the video-engine tests: a small random model whose masks are non-empty."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import load_model


def present_model(seed: int = 0):
    """test_tiny_256 with random weights and a positive object-score bias (objects present)."""
    torch.manual_seed(seed)
    model = load_model("test_tiny_256", device="cpu")
    model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.data.fill_(6.0)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return present_model()


@pytest.fixture
def movie():
    """(T=8, H=48, W=64) uint16 movie with two drifting bright blobs."""
    t, h, w = 8, 48, 64
    yy, xx = np.mgrid[:h, :w]
    rng = np.random.default_rng(1)
    out = rng.normal(300, 30, (t, h, w))
    for k in range(t):
        out[k][(yy - 14 - k) ** 2 + (xx - 16 - k) ** 2 < 64] += 2000
        out[k][(yy - 32) ** 2 + (xx - 46 + k) ** 2 < 49] += 1500
    return np.clip(out, 0, 65535).astype(np.uint16)


def clicked_zstack_labels(model, image: np.ndarray, nuclei, **propagate) -> np.ndarray:
    """(Z, Y, X) labels of a z-stack with one click at each nucleus' centre on its central
    slice, propagated along z (``propagate``: keywords of ``propagate_along_z``, e.g. ``fit``
    or ``guard``)."""
    from napari_sam2.video.session import VideoSession
    from napari_sam2.video.volumes import propagate_along_z

    session = VideoSession(model, image, axes="ZYX")
    starts = {}
    for n in nuclei:
        zc, yc, xc = (int(round(v)) for v in n.centre)
        session.add_points(zc, n.obj_id, [(yc, xc)], [1])
        starts[n.obj_id] = zc
    list(propagate_along_z(session, starts, **propagate))
    return session.labels().copy()
