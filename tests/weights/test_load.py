"""Tests for ``napari_sam2.load_model``: names, files, config inference, refusals and devices.

No network is used: downloads go to a closed port on 127.0.0.1 or to ``file://`` URLs, and the
cache (``NAPARI_SAM2_CACHE``) is a temporary folder. One test writes a random-weight checkpoint
of the official ``sam2.1_hiera_tiny`` config (~156 MB) to a temporary folder, shared by the tests
that need a real official-size file and deleted at the end of the module.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import napari_sam2
from napari_sam2 import SAM2Model, load_model
from napari_sam2.model.config import CONFIGS, OFFICIAL_NAMES
from napari_sam2.weights import download as dl
from napari_sam2.weights import registry
from napari_sam2.weights.download import DownloadError
from napari_sam2.weights.load import (
    CheckpointError,
    infer_config,
    read_checkpoint,
    save_checkpoint,
)

TINY = "test_tiny_256"
V21_ONLY_KEYS = {"no_obj_embed_spatial", "obj_ptr_tpos_proj.weight", "obj_ptr_tpos_proj.bias"}


# --------------------------------------------------------------------------- helpers


def _state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _meta_state_dict(name: str) -> dict[str, torch.Tensor]:
    """State dict of an official config on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        return SAM2Model(CONFIGS[name]).state_dict()


def _assert_same_weights(model: SAM2Model, sd: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert got.keys() == sd.keys()
    for k, v in sd.items():
        assert torch.equal(got[k], v), k


def _assert_one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _point_registry(monkeypatch, name: str, url: str, path: Path | None = None) -> None:
    """Registry entry ``name`` -> ``url``, with the size of ``path`` (or unknown) and no hash."""
    info = dataclasses.replace(
        registry.REGISTRY[name],
        url=url,
        size_bytes=None if path is None else path.stat().st_size,
        sha256=None,
    )
    monkeypatch.setitem(registry.REGISTRY, name, info)


class _Payload:
    """Unpickling this object would create the directory ``target`` (it never may)."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (os.mkdir, (self.target,))


@pytest.fixture
def tiny_sd() -> dict[str, torch.Tensor]:
    return _state_dict(SAM2Model(CONFIGS[TINY]))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv(dl.CACHE_ENV_VAR, str(folder))
    return folder


@pytest.fixture(scope="module")
def official_tiny(tmp_path_factory):
    """A random-weight ``sam2.1_hiera_tiny`` checkpoint in Meta's layout, under a neutral name."""
    folder = tmp_path_factory.mktemp("official")
    torch.manual_seed(1)
    sd = _state_dict(SAM2Model(CONFIGS["sam2.1_hiera_tiny"]))
    path = folder / "checkpoint.pt"
    torch.save({"model": sd}, path)
    yield path, sd
    shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- names and our files


def test_config_name_gives_random_weight_model():
    model = load_model(TINY, device="cpu")
    assert isinstance(model, SAM2Model)
    assert model.config is CONFIGS[TINY]
    assert not model.training
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.device == torch.device("cpu")
    assert napari_sam2.load_model is load_model


def test_dtype_argument():
    model = load_model(TINY, device="cpu", dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_save_checkpoint_round_trip_keeps_config(tmp_path: Path):
    # a config no registry knows: only the copy stored in the file can rebuild it
    cfg = dataclasses.replace(CONFIGS[TINY], name="my_finetune", num_maskmem=5)
    model = SAM2Model(cfg).eval()
    path = save_checkpoint(tmp_path / "sub" / "ft.pt", model, epoch=3)
    assert path == tmp_path / "sub" / "ft.pt"
    assert sorted(p.name for p in path.parent.iterdir()) == ["ft.pt"]  # no .part left behind
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"model", "config", "epoch"} and raw["epoch"] == 3

    loaded = load_model(path, device="cpu")
    assert loaded.config == cfg
    assert loaded.maskmem_tpos_enc.shape[0] == 5
    _assert_same_weights(loaded, model.state_dict())
    x = torch.randn(1, 3, 256, 256)
    with torch.inference_mode():
        a, b = model.encode_image(x), loaded.encode_image(x)
    assert torch.equal(a.vision, b.vision) and torch.equal(a.high_res[0], b.high_res[0])
    # the stored config is also returned by read_checkpoint
    sd, stored = read_checkpoint(path)
    assert stored == cfg and sd.keys() == model.state_dict().keys()


def test_loaded_model_has_no_meta_tensors_and_matches_plain_load(tmp_path: Path, tiny_sd):
    """The loader builds on the meta device and assigns the file's tensors: nothing may stay on
    meta (parameters, buffers or cached tensors), and results equal a classic load."""
    path = tmp_path / "test_tiny_256.pt"
    torch.save({"model": tiny_sd}, path)
    model = load_model(path, device="cpu")
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        assert not t.is_meta, name
    for module in model.modules():
        for attr, value in vars(module).items():
            assert not (isinstance(value, torch.Tensor) and value.is_meta), attr
    classic = SAM2Model(CONFIGS[TINY]).eval()
    classic.load_state_dict(tiny_sd, strict=True)
    x = torch.randn(1, 3, 256, 256)
    coords = torch.tensor([[[100.0, 120.0]]])
    labels = torch.ones(1, 1, dtype=torch.int32)
    with torch.inference_mode():
        outs = []
        for m in (model, classic):
            f = m.encode_image(x)
            head = m.predict_masks(m.no_memory(f), f.high_res, coords, labels, multimask=True)
            outs.append(head)
    torch.testing.assert_close(outs[0].multimask_logits, outs[1].multimask_logits)
    torch.testing.assert_close(outs[0].obj_ptr, outs[1].obj_ptr)
    assert all(p.requires_grad for p in model.parameters())  # trainable after loading


def test_load_model_inside_inference_mode(tmp_path: Path, tiny_sd):
    """Models loaded in inference mode still get normal (trainable) tensors, and a model built
    in inference mode still runs (no version counter to key the position-embedding cache on)."""
    path = tmp_path / "test_tiny_256.pt"
    torch.save({"model": tiny_sd}, path)
    x = torch.randn(1, 3, 256, 256)
    with torch.inference_mode():
        for model in (load_model(path, device="cpu"), load_model(TINY, device="cpu")):
            assert not any(p.is_inference() for p in model.parameters())
            assert model.encode_image(x).vision.shape == (1, 32, 16, 16)
        built = SAM2Model(CONFIGS[TINY]).eval()
        assert next(built.parameters()).is_inference()
        assert built.encode_image(x).vision.shape == (1, 32, 16, 16)
    model = load_model(path, device="cpu")
    model.encode_image(x).vision.sum().backward()  # trainable after loading
    assert model.image_encoder.trunk.pos_embed.grad is not None


# --------------------------------------------------------------------------- Meta's layout


def test_meta_layout_config_from_file_name(tmp_path: Path, tiny_sd):
    path = tmp_path / "test_tiny_256.pt"
    torch.save({"model": tiny_sd}, path)  # Meta's layout: no config stored
    model = load_model(path, device="cpu")
    assert model.config is CONFIGS[TINY]
    _assert_same_weights(model, tiny_sd)


def test_meta_layout_unknown_shapes_need_config(tmp_path: Path, tiny_sd):
    path = tmp_path / "weights.pt"
    torch.save({"model": tiny_sd}, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path, device="cpu")
    msg = _assert_one_line(err)
    assert "no known SAM 2 configuration matches" in msg
    assert "Hiera width 16, 5 blocks" in msg and "pass config=" in msg
    for config in (TINY, CONFIGS[TINY]):
        model = load_model(path, config=config, device="cpu")
        assert model.config is CONFIGS[TINY]
        _assert_same_weights(model, tiny_sd)


def test_bare_state_dict_is_accepted(tmp_path: Path, tiny_sd):
    path = tmp_path / "bare.pt"
    torch.save(tiny_sd, path)
    _assert_same_weights(load_model(path, config=TINY, device="cpu"), tiny_sd)


def test_mismatched_config(tmp_path: Path, tiny_sd):
    path = tmp_path / "tiny.pt"
    torch.save({"model": tiny_sd}, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path, config="micro", device="cpu")
    msg = _assert_one_line(err)
    assert msg.startswith("tiny.pt does not match config 'micro':")
    # micro has one more Hiera block (missing keys) and wider layers (wrong shapes)
    assert "14 missing (e.g. image_encoder.trunk.blocks.5.norm1.weight)" in msg
    assert "2 unexpected (e.g. image_encoder.trunk.blocks.4.proj." in msg
    assert "wrong shape (e.g. maskmem_tpos_enc: file (7, 1, 1, 16), model (7, 1, 1, 32))" in msg


def test_sam1_checkpoint_is_named(tmp_path: Path):
    t = torch.zeros(2, 2)
    sam1 = {
        "image_encoder.patch_embed.proj.weight": t,
        "image_encoder.blocks.0.attn.qkv.weight": t,
        "image_encoder.blocks.0.mlp.lin1.weight": t,
        "image_encoder.neck.0.weight": t,
        "prompt_encoder.point_embeddings.0.weight": t,
        "prompt_encoder.mask_downscaling.0.weight": t,
        "mask_decoder.iou_token.weight": t,
        "mask_decoder.transformer.layers.0.self_attn.q_proj.weight": t,
    }
    path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(sam1, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path, device="cpu")
    msg = _assert_one_line(err)
    assert "sam_vit_b_01ec64.pth is a SAM 1 (segment-anything) checkpoint" in msg
    assert "SAM 2 / 2.1 checkpoint such as sam2.1_hiera_tiny.pt" in msg


def test_truncated_file(tmp_path: Path, tiny_sd):
    full = tmp_path / "full.pt"
    torch.save({"model": tiny_sd}, full)
    data = full.read_bytes()
    path = tmp_path / "half.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_model(path, device="cpu")
    msg = _assert_one_line(err)
    assert f"half.pt ({len(data) // 2:,} bytes)" in msg
    assert "truncated or corrupt" in msg and "expected a SAM 2 .pt file" in msg
    assert err.value.__cause__ is None


def test_malicious_pickle_is_refused_and_never_executed(tmp_path: Path):
    # the payload is live: plain unpickling runs it
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.is_dir()

    marker = tmp_path / "pwned"
    zipped = tmp_path / "zipped.pt"  # torch.save's zip format
    torch.save({"model": {"image_encoder.trunk.x": _Payload(marker)}}, zipped)
    legacy = tmp_path / "legacy.pt"  # a plain pickle stream (torch's legacy format)
    with open(legacy, "wb") as fh:
        pickle.dump(_Payload(marker), fh, protocol=2)
    for path in (zipped, legacy):
        with pytest.raises(CheckpointError) as err:
            load_model(path, device="cpu")
        msg = _assert_one_line(err)
        assert f"cannot read {path.name}" in msg
        assert f"it refers to Python code ({os.mkdir.__module__}.mkdir), refused for safety" in msg
        assert not marker.exists()


@pytest.mark.parametrize(
    "payload, found",
    [
        ({}, "holds an empty dict"),
        ({"model": {}}, "holds an empty dict"),
        ([torch.zeros(2)], "holds a list"),
        (torch.zeros(3), "holds a Tensor"),
        ({"model": {"image_encoder.trunk.a": 1}}, "('image_encoder.trunk.a' is a int)"),
    ],
    ids=["empty", "empty_model", "list", "tensor", "non_tensor_value"],
)
def test_not_a_state_dict(tmp_path: Path, payload, found):
    path = tmp_path / "odd.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path, device="cpu")
    msg = _assert_one_line(err)
    assert msg.startswith("odd.pt holds ")
    assert found in msg
    assert 'expected Meta\'s layout {"model": {parameter name: tensor}}' in msg


def test_other_files(tmp_path: Path):
    text = tmp_path / "notes.pt"
    text.write_text("hello, not a checkpoint\n")
    with pytest.raises(CheckpointError) as err:
        load_model(text, device="cpu")
    assert "cannot read notes.pt (24 bytes) as a PyTorch checkpoint" in _assert_one_line(err)

    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 1000, np.uint8).tobytes())
    with pytest.raises(CheckpointError) as err:
        load_model(noise, device="cpu")
    assert "it is corrupt, not a PyTorch checkpoint" in _assert_one_line(err)

    other = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(1), "fc.bias": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError) as err:
        load_model(other, device="cpu")
    assert "2 tensors but none named image_encoder.trunk.*" in _assert_one_line(err)

    with pytest.raises(FileNotFoundError, match="neither a model name"):
        load_model(tmp_path / "absent.pt", device="cpu")
    with pytest.raises(FileNotFoundError, match=r"sam2\.1_hiera_tiny"):
        load_model("sam3_hiera_huge", device="cpu")


# --------------------------------------------------------------------------- config inference


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_infer_official_config_from_shapes(name):
    sd = _meta_state_dict(name)
    assert infer_config(sd) is CONFIGS[name]
    # a misleading file name is overruled by the shapes
    twin = name.replace("sam2.1_", "sam2_") if name.startswith("sam2.1_") else "sam2.1" + name[4:]
    assert infer_config(sd, f"{twin}.pt") is CONFIGS[name]
    assert infer_config(sd, f"/some/folder/{name}.pt") is CONFIGS[name]


def test_sam2_0_and_2_1_differ_by_three_tensors():
    v21 = _meta_state_dict("sam2.1_hiera_tiny")
    v20 = _meta_state_dict("sam2_hiera_tiny")
    assert set(v21) - set(v20) == V21_ONLY_KEYS
    assert set(v20) <= set(v21)
    assert (
        infer_config({k: v for k, v in v21.items() if k not in V21_ONLY_KEYS})
        is CONFIGS["sam2_hiera_tiny"]
    )


def test_load_official_tiny_from_a_file(official_tiny):
    path, sd = official_tiny
    t0 = time.perf_counter()
    model = load_model(path, device="cpu")  # neutral file name: inferred from the shapes
    elapsed = time.perf_counter() - t0
    assert model.config is CONFIGS["sam2.1_hiera_tiny"]
    _assert_same_weights(model, sd)
    assert not any(p.is_meta for p in model.parameters())
    assert elapsed < 30, f"loading a 156 MB checkpoint took {elapsed:.1f} s"


def test_sam2_0_file_named_like_2_1(tmp_path: Path, official_tiny):
    _, sd = official_tiny
    v20 = {k: v for k, v in sd.items() if k not in V21_ONLY_KEYS}
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": v20}, path)
    try:
        assert load_model(path, device="cpu").config is CONFIGS["sam2_hiera_tiny"]
        with pytest.raises(CheckpointError) as err:
            load_model(path, config="sam2.1_hiera_tiny", device="cpu")
        msg = _assert_one_line(err)
        assert "does not match config 'sam2.1_hiera_tiny': 3 missing" in msg
    finally:
        path.unlink()


# --------------------------------------------------------------------------- names -> cache


def test_official_name_loads_from_the_cache(cache: Path, official_tiny, monkeypatch):
    src, sd = official_tiny
    dest = cache / "sam2.1_hiera_tiny.pt"
    try:
        os.link(src, dest)  # no 156 MB copy
    except OSError:
        shutil.copyfile(src, dest)
    # any download attempt would fail loudly: the cached file must be used as it is
    _point_registry(monkeypatch, "sam2.1_hiera_tiny", f"http://127.0.0.1:{_closed_port()}/x", src)
    model = load_model("sam2.1_hiera_tiny", device="cpu", progress=None)
    assert model.config is CONFIGS["sam2.1_hiera_tiny"]
    _assert_same_weights(model, sd)
    # without a name, the first cached official SAM 2.1 model is the default
    assert load_model(device="cpu", progress=None).config is CONFIGS["sam2.1_hiera_tiny"]


def test_no_network_names_url_and_cache_path(cache: Path, monkeypatch):
    url = f"http://127.0.0.1:{_closed_port()}/sam2.1_hiera_small.pt"
    _point_registry(monkeypatch, "sam2.1_hiera_small", url)
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        load_model("sam2.1_hiera_small", device="cpu", progress=None)
    assert time.monotonic() - t0 < 30
    msg = str(err.value)
    assert url in msg
    assert str(cache / "sam2.1_hiera_small.pt") in msg
    assert list(cache.iterdir()) == []


def test_downloaded_file_of_the_wrong_model_is_rejected(
    cache: Path, tmp_path, tiny_sd, monkeypatch
):
    served = tmp_path / "served.pt"
    torch.save({"model": tiny_sd}, served)
    _point_registry(monkeypatch, "sam2.1_hiera_tiny", served.as_uri(), served)
    with pytest.raises(DownloadError) as err:
        load_model("sam2.1_hiera_tiny", device="cpu", progress=None)
    msg = str(err.value)
    assert "failed verification" in msg
    assert "does not match config 'sam2.1_hiera_tiny'" in msg
    assert list(cache.iterdir()) == []  # nothing half-verified stays in the cache


def test_missing_bundled_model(cache: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(registry, "bundled_checkpoint_path", lambda: tmp_path / "micro.pt")
    for args in [("micro",), ()]:  # no official model cached: the default is micro
        with pytest.raises(FileNotFoundError) as err:
            load_model(*args, device="cpu")
        msg = str(err.value)
        assert "bundled 'micro' checkpoint is missing" in msg and "micro.pt" in msg
