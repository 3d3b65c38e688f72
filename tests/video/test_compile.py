"""torch.compile of the per-frame networks (``SAM2Model.compile_for_inference``) on a CPU."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from conftest import present_model
from napari_sam2 import VideoSession
from napari_sam2.model.compile_check import check_compiler
from napari_sam2.model.sam2 import SAM2Model


def _can_compile() -> bool:
    try:
        check_compiler(torch.device("cpu"))
    except RuntimeError:
        return False
    return True


#: TorchInductor runs here: in CI (CI=true) scripts/test.sh installs g++ and the Python
#: headers (no skip there), elsewhere where a C++ compiler and Python.h are found
_INDUCTOR = os.environ.get("CI", "").lower() == "true" or _can_compile()
needs_cxx = pytest.mark.skipif(
    not _INDUCTOR,
    reason="TorchInductor needs a C++ compiler and Python.h on a CPU",
)


def _track(model: SAM2Model, movie: np.ndarray) -> list:
    session = VideoSession(model, movie, axes="TYX", workers=2)  # compiled code in two threads
    session.add_points(0, 1, [(14, 16)], [1])
    session.add_points(0, 2, [(32, 46)], [1])
    return list(session.propagate())


@pytest.mark.parametrize(
    "backend",
    [
        # graph capture only: guards, recompiles for new memory lengths, caches read from
        # two threads; the inductor case below goes through the same capture, so this one
        # runs only where inductor cannot
        pytest.param(
            "aot_eager",
            marks=pytest.mark.skipif(_INDUCTOR, reason="the inductor case covers graph capture"),
        ),
        # TorchInductor's generated C++ kernels (about 3 minutes of compiling on 2 cores)
        pytest.param("inductor", marks=needs_cxx),
    ],
)
def test_compiled_model_tracks_like_the_eager_one(movie, backend):
    eager = present_model()
    compiled = present_model()
    keys = list(compiled.state_dict())
    assert compiled.compile_for_inference(backend=backend) is compiled and compiled.compiled
    assert compiled.compile_for_inference() is compiled  # idempotent
    assert list(compiled.state_dict()) == keys  # checkpoints keep Meta's parameter names

    from torch._dynamo.utils import counters

    counters.clear()
    movie = movie[:4]  # (every new memory length compiles anew: keep the test short)
    want, got = _track(eager, movie), _track(compiled, movie)
    assert counters["stats"]["unique_graphs"] >= 4  # the four networks really were compiled
    assert not counters["graph_break"], dict(counters["graph_break"])  # each traced whole
    assert [r.frame for r in got] == [r.frame for r in want] == list(range(len(movie)))
    for a, b in zip(want, got):
        assert a.obj_ids == b.obj_ids == [1, 2]
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-3)
        for k in range(2):
            ma, mb = a.mask(k), b.mask(k)
            # float rounding may flip a pixel on the mask's edge, nothing more
            assert np.count_nonzero(ma != mb) <= max(2, 0.01 * ma.sum())


def test_compile_without_a_compiler_names_the_fix(monkeypatch):
    model = present_model()
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="C\\+\\+ compiler.*g\\+\\+"):
        model.compile_for_inference()
    assert not model.compiled
    assert model.memory_attention._compiled_call_impl is None


def test_load_model_can_compile():
    from napari_sam2 import load_model

    if not _INDUCTOR:
        pytest.skip("TorchInductor needs a C++ compiler and Python.h on a CPU")
    model = load_model("test_tiny_256", device="cpu", compile=True)
    assert model.compiled and not model.training
    plain = SAM2Model(model.config)
    plain.load_state_dict(model.state_dict(), strict=True)  # same names as an eager model
