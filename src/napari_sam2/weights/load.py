"""Load SAM 2 models: official checkpoints (Meta's ``{"model": state_dict}`` files), our bundled
micro model, or any compatible file — safely (``torch.load(weights_only=True)``) and strictly.

The public entry point is :func:`load_model`, re-exported as ``napari_sam2.load_model``.
"""

from __future__ import annotations

import functools
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..model.config import CONFIGS, OFFICIAL_NAMES, SAM2Config, config_from_dict, get_config
from ..model.sam2 import SAM2Model
from . import registry
from .registry import BUNDLED_MODEL

__all__ = [
    "CheckpointError",
    "infer_config",
    "load_model",
    "read_checkpoint",
    "resolve_model",
    "resolve_device",
    "save_checkpoint",
]

class CheckpointError(ValueError):
    """A file is not a usable SAM 2 checkpoint (the message says what was found and expected)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into CUDA, then Apple MPS, then CPU; check an explicit request.

    Raises:
        ValueError: the requested device is not available (e.g. ``"cuda"`` without a GPU).
    """
    if isinstance(device, torch.device):
        device = str(device)
    device = device.lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was requested but CUDA is not available (torch "
            f"{torch.__version__}, built for CUDA: {torch.version.cuda or 'no'}); "
            "use device='cpu' or 'auto', or install a CUDA build of PyTorch"
        )
    if device == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise ValueError("device 'mps' was requested but Apple MPS is not available; use 'cpu'")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'mps'") from err


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], SAM2Config | None]:
    """Read a checkpoint file safely.

    Accepts Meta's layout ``{"model": state_dict}``, ours (``{"model": ..., "config": {...}}``)
    and a bare state dict. Only tensors and plain containers are unpickled
    (``weights_only=True``); nothing in the file is executed.

    Returns:
        (state_dict, config stored in the file or None).

    Raises:
        CheckpointError: unreadable, truncated, not a state dict, or a SAM 1 checkpoint.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to unpickle means "not a checkpoint"
        # (garbage bytes make the restricted unpickler raise KeyError, IndexError, ... too)
        text = str(err).strip()
        low = text.lower()
        first = text.splitlines()[0] if text else type(err).__name__
        size = path.stat().st_size
        code = re.search(r"GLOBAL ([\w.]+)", text)
        if code:
            why = (
                f"it refers to Python code ({code.group(1)}), refused for safety "
                "(only tensors and plain containers are loaded)"
            )
        elif isinstance(err, (zipfile.BadZipFile, EOFError)) or "zip" in low:
            why = "it is truncated or corrupt"
        elif "weights only" in low or "weights_only" in low:
            detail = re.search(r"(Unsupported [^\n]*|Trying to load [^\n]*)", text)
            why = (
                "it is corrupt, not a PyTorch checkpoint, or holds Python objects other than "
                "tensors (refused for safety)" + (f" [{detail.group(1)}]" if detail else "")
            )
        else:
            why = f"torch.load failed ({type(err).__name__}: {first})"
        raise CheckpointError(
            f"cannot read {path.name} ({size:,} bytes) as a PyTorch checkpoint: {why}; "
            "expected a SAM 2 .pt file like Meta's sam2.1_hiera_tiny.pt (re-download it)"
        ) from None
    config = None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        if isinstance(obj.get("config"), dict):
            try:
                config = config_from_dict(obj["config"])
            except (TypeError, ValueError) as err:
                raise CheckpointError(f"{path.name}: invalid stored config ({err})") from None
        obj = obj["model"]
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    ):
        if not isinstance(obj, dict):
            found = f"a {type(obj).__name__}"
        elif not obj:
            found = "an empty dict"
        else:
            bad = next(
                (k for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, Tensor))),
                None,
            )
            found = f"a dict with keys {list(obj)[:4]} ({bad!r} is a {type(obj[bad]).__name__})"
        raise CheckpointError(
            f"{path.name} holds {found}, not a model state dict; expected Meta's layout "
            '{"model": {parameter name: tensor}}'
        )
    keys = obj.keys()
    if any(k.startswith("mask_decoder.") for k in keys) and not any(
        k.startswith("sam_mask_decoder.") for k in keys
    ):
        raise CheckpointError(
            f"{path.name} is a SAM 1 (segment-anything) checkpoint; napari-sam2 needs a SAM 2 / "
            "2.1 checkpoint such as sam2.1_hiera_tiny.pt"
        )
    if not any(k.startswith("image_encoder.trunk.") for k in keys):
        raise CheckpointError(
            f"{path.name} has {len(obj)} tensors but none named image_encoder.trunk.*; "
            "it is not a SAM 2 checkpoint"
        )
    return obj, config


def _empty_model(config: SAM2Config) -> SAM2Model:
    """The model with parameters on the ``meta`` device (no memory, no random init)."""
    with torch.device("meta"):
        return SAM2Model(config)


@functools.cache
def _signature(config: SAM2Config) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of ``config``'s model (cached; do not mutate the result)."""
    return {k: tuple(v.shape) for k, v in _empty_model(config).state_dict().items()}


def infer_config(state_dict: dict[str, torch.Tensor], filename: str | None = None) -> SAM2Config:
    """Pick the configuration a state dict was made for.

    The file name is tried first (``sam2.1_hiera_small.pt`` -> that config, if the tensors
    agree), then every known config is compared by parameter names and shapes.

    Raises:
        CheckpointError: no known configuration matches.
    """
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    if filename:
        stem = Path(filename).name.split(".pt")[0]
        if stem in CONFIGS and _signature(CONFIGS[stem]) == shapes:
            return CONFIGS[stem]
    for name in (*OFFICIAL_NAMES, BUNDLED_MODEL):
        if _signature(CONFIGS[name]) == shapes:
            return CONFIGS[name]
    embed = shapes.get("image_encoder.trunk.patch_embed.proj.weight", ("?",))[0]
    n_blocks = len({k.split(".")[3] for k in shapes if k.startswith("image_encoder.trunk.blocks.")})
    raise CheckpointError(
        f"no known SAM 2 configuration matches this checkpoint (Hiera width {embed}, "
        f"{n_blocks} blocks, {len(shapes)} tensors); pass config=... explicitly "
        f"(known: {', '.join(OFFICIAL_NAMES)}, {BUNDLED_MODEL})"
    )


def _check_match(config: SAM2Config, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Raise a one-line :class:`CheckpointError` unless names and shapes match ``config``."""
    expected = _signature(config)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [k for k in expected if k in state_dict and expected[k] != tuple(state_dict[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} with wrong shape (e.g. {k}: file {tuple(state_dict[k].shape)}, "
                f"model {expected[k]})"
            )
        raise CheckpointError(
            f"{source} does not match config {config.name!r}: " + "; ".join(parts)
        )


def _strict_load(config: SAM2Config, state_dict: dict[str, torch.Tensor], source: str) -> SAM2Model:
    """Build ``config``'s model directly from ``state_dict`` (strict names and shapes).

    The model is built on the meta device and the loaded tensors are assigned to it, so no
    random initialisation runs and the weights are not held twice in memory.
    """
    _check_match(config, state_dict, source)
    model = _empty_model(config)
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model


def _default_name() -> str:
    from .download import is_cached

    for name in (
        "sam2.1_hiera_tiny",
        "sam2.1_hiera_small",
        "sam2.1_hiera_base_plus",
        "sam2.1_hiera_large",
    ):
        if is_cached(name):
            return name
    return BUNDLED_MODEL


@torch.inference_mode(False)  # normal (trainable) tensors even when called in inference mode
def load_model(
    name_or_path: str | os.PathLike | None = None,
    *,
    config: SAM2Config | str | None = None,
    device: str | torch.device = "auto",
    dtype: torch.dtype | None = None,
    progress="tqdm",
    compile: bool = False,
) -> SAM2Model:
    """Load a SAM 2 model ready for inference (eval mode).

    Args:
        name_or_path: an official name (``"sam2.1_hiera_tiny"``..., downloaded into the cache on
            first use), ``"micro"`` (bundled), a path to a ``.pt`` file, or None: the first
            cached official SAM 2.1 model, else the bundled micro model.
        config: configuration (object or name) for a file whose config cannot be inferred;
            also used to build a random-weight model when ``name_or_path`` is a config name
            without weights (test configs).
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
        dtype: parameter dtype (default float32; prefer ``precision=`` autocast in sessions).
        progress: download progress (``"tqdm"``, None, or a callback ``(done, total)``).
        compile: compile the per-frame networks with ``torch.compile``
            (:meth:`~napari_sam2.model.sam2.SAM2Model.compile_for_inference`): slow first frames,
            then faster ones; for long movies.

    Returns:
        :class:`~napari_sam2.model.sam2.SAM2Model` on ``device``.
    """
    dev = resolve_device(device)
    if isinstance(config, str):
        config = get_config(config)
    name = _default_name() if name_or_path is None else name_or_path
    path: Path | None = None
    if isinstance(name, str) and name in OFFICIAL_NAMES:
        from .download import ensure_weights

        def verify(p: Path) -> None:
            sd, _ = read_checkpoint(p)
            _check_match(CONFIGS[name], sd, p.name)

        path = ensure_weights(name, progress=progress, verify=verify)
        config = config or CONFIGS[name]
    elif isinstance(name, str) and name == BUNDLED_MODEL:
        path = registry.bundled_checkpoint_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"the bundled '{BUNDLED_MODEL}' checkpoint is missing from the installation "
                f"({path}); reinstall napari-sam2 or load an official model"
            )
    elif isinstance(name, str) and name in CONFIGS and not Path(name).exists():
        model = SAM2Model(CONFIGS[name])  # random weights (tests, training from scratch)
        return _ready(model, dev, dtype, compile)
    else:
        path = Path(name).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"{name!s} is neither a model name ({', '.join(OFFICIAL_NAMES)}, "
                f"{BUNDLED_MODEL}) nor an existing checkpoint file"
            )
    state_dict, stored = read_checkpoint(path)
    config = config or stored or infer_config(state_dict, path.name)
    model = _strict_load(config, state_dict, path.name)
    return _ready(model, dev, dtype, compile)


def _ready(
    model: SAM2Model, device: torch.device, dtype: torch.dtype | None, compile: bool
) -> SAM2Model:
    model = model.to(device=device, dtype=dtype or torch.float32).eval()
    return model.compile_for_inference() if compile else model


def save_checkpoint(path: str | os.PathLike, model: SAM2Model, **extra) -> Path:
    """Save ``model`` in Meta's layout plus its config (readable by :func:`load_model` and, for
    official configs, by Meta's loader). Written atomically."""
    from ..model.config import config_to_dict

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    payload = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config_to_dict(model.config),
        **extra,
    }
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def resolve_model(model: Any = None, device: str = "auto") -> SAM2Model:
    """A :class:`~napari_sam2.model.sam2.SAM2Model` from a model, a name, a path or None.

    Args:
        model: a loaded SAM2Model (returned as is), a name (``"micro"``, ``"sam2.1_hiera_tiny"``,
            a config name such as ``"test_tiny_256"`` for random weights), a checkpoint path, or
            None: the first cached official SAM 2.1 checkpoint, else the bundled micro model.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"`` (ignored for a loaded model).
    """
    if isinstance(model, SAM2Model):
        return model.eval()
    return load_model(model, device=device)
