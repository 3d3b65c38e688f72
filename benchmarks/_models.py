"""Model loading shared by the benchmark scripts."""

from __future__ import annotations

import warnings

import torch


def load(name: str, fallback: str):
    """Load ``name``; if it is unavailable, warn and load ``fallback`` (a model name, checkpoint
    path or random-weight config name; ``random:<config>`` builds any config, e.g.
    ``random:micro`` for the bundled model's architecture)."""
    from napari_sam2 import SAM2Model, load_model
    from napari_sam2.model.config import get_config

    def get(n: str):
        torch.manual_seed(0)  # random-weight models are reproducible
        if n.startswith("random:"):
            return SAM2Model(get_config(n.split(":", 1)[1])).eval()
        return load_model(n)

    try:
        return get(name), name
    except (FileNotFoundError, OSError, ValueError, KeyError) as err:
        warnings.warn(f"model {name!r} unavailable ({err}); using {fallback!r}", stacklevel=2)
        return get(fallback), fallback
